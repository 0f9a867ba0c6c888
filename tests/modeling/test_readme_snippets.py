"""The "Using the model directly" snippet (docs/using-the-model.md) runs as a user writes it: the package import
registers the Auto classes, a used processor saves, and a folder saved at two zooms is refused
when it is loaded, saying so."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "using-the-model.md"
SNIPPET_MARK = "import dragonfly_eval  # registers the Auto classes"


def _auto_snippet() -> tuple[str, list[str]]:
    """The page's Auto-classes snippet and the lines the text under it says it prints."""
    text = PAGE.read_text(encoding="utf-8")
    for match in re.finditer(r"^```python\n(.*?)^```\n", text, flags=re.S | re.M):
        if match.group(1).startswith(SNIPPET_MARK):
            after = text[match.end() :].lstrip()
            assert after.startswith("prints "), "the snippet is not followed by what it prints"
            prints = after[: after.index(". ")]
            return match.group(1), re.findall(r"`([^`]+)`", prints)
    raise AssertionError(f"{PAGE.name} has no python block starting {SNIPPET_MARK!r}")


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env
    )


def test_the_docs_auto_class_snippet_runs_and_prints_what_it_says(tmp_path, offline_env):
    code, expected = _auto_snippet()
    code = code.replace('"/tmp/my-dragonfly"', repr(str(tmp_path / "saved")))
    done = _python(code, offline_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == expected


def test_a_used_processor_can_be_saved_copied_and_pickled(tmp_path, offline_env):
    code = f"""
import copy, pickle
from PIL import Image
import dragonfly_eval
from transformers import AutoProcessor
from dragonfly_eval.modeling.loading import resolve_checkpoint

processor = AutoProcessor.from_pretrained(resolve_checkpoint("dragonfly-tiny"))
first = processor(text=["a"], images=[Image.new("RGB", (900, 700), "teal")])
processor.save_pretrained({str(tmp_path)!r})
twin = copy.deepcopy(processor)
thawed = pickle.loads(pickle.dumps(processor))
for other in (twin, thawed, AutoProcessor.from_pretrained({str(tmp_path)!r})):
    again = other(text=["a"], images=[Image.new("RGB", (900, 700), "teal")])
    assert all((a == b).all() for a, b in zip(first["image_patches"], again["image_patches"]))
print("ok")
"""
    done = _python(code, offline_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("loader", ["AutoProcessor", "DragonflyProcessor"])
def test_a_processor_saved_at_another_zoom_than_its_model_is_refused_at_load(
    tmp_path, offline_env, loader
):
    folder = str(tmp_path / "mixed")
    code = f"""
import dragonfly_eval
from transformers import AutoModelForCausalLM, AutoProcessor
from dragonfly_eval import DragonflyProcessor
from dragonfly_eval.modeling.loading import resolve_checkpoint

tiny = resolve_checkpoint("dragonfly-tiny")
AutoModelForCausalLM.from_pretrained(tiny).save_pretrained({folder!r})  # zoom=full
AutoProcessor.from_pretrained(tiny, zoom="low").save_pretrained({folder!r})
assert {loader}.from_pretrained({folder!r}, zoom="full").zoom == "full"  # chosen explicitly
try:
    {loader}.from_pretrained({folder!r})
except ValueError as err:
    print(err)
"""
    done = _python(code, offline_env)
    assert done.returncode == 0, done.stderr[-3000:]
    message = done.stdout.strip()
    assert message.startswith(f"{folder}: the saved processor"), message
    assert "zoom='low'" in message and "zoom='full'" in message
    assert "pass zoom='full'" in message
