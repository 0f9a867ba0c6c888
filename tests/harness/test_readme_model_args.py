"""The README's model_args table documents exactly the arguments the model class accepts."""

import re
from pathlib import Path

from dragonfly_eval.harness.model import valid_model_args

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_model_args() -> list[str]:
    """The names in the first column of the table under the README's "## model_args"."""
    section = re.split(r"^#+ model_args\n", README.read_text(encoding="utf-8"), flags=re.M)[1]
    section = re.split(r"^#", section, maxsplit=1, flags=re.MULTILINE)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])]


def test_readme_model_args_table_lists_every_accepted_arg():
    names = readme_model_args()
    assert len(names) == len(set(names))
    assert sorted(names) == valid_model_args()
