"""Commands that never touch the model start without importing torch or transformers."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import sys
from dragonfly_eval.cli import main
try:
    main({argv!r})
except SystemExit as done:
    assert done.code in (0, None), done.code
heavy = sorted(m for m in ("torch", "transformers", "lmms_eval") if m in sys.modules)
assert not heavy, heavy
"""


@pytest.mark.parametrize(
    "argv", [["leaderboard", "--help"], ["regress", "--help"]], ids=["leaderboard", "regress"]
)
def test_model_free_commands_never_import_torch(argv):
    out = subprocess.run(
        [sys.executable, "-c", CHECK.format(argv=argv)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage:" in out.stdout


@pytest.mark.parametrize("module", ["dragonfly_eval.progress", "dragonfly_eval.run_store"])
def test_modules_shared_by_engine_harness_and_runner_import_no_torch(module):
    """The progress bar (engine and runner) and the run's files (harness writes, runner reads)
    sit below the torch side and the runner alike."""
    code = (
        f"import sys, {module}; "
        "print(sorted(m for m in ('torch', 'transformers', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["[]"]


def test_the_package_exports_its_classes_lazily():
    code = (
        "import sys, dragonfly_eval; assert 'torch' not in sys.modules; "
        "from dragonfly_eval import DragonflyConfig; assert 'torch' in sys.modules; "
        "print(DragonflyConfig.model_type)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "dragonfly"


def test_importing_the_package_is_enough_for_the_auto_classes():
    """`import dragonfly_eval` imports no torch, yet AutoConfig, AutoModelForCausalLM and
    AutoProcessor imported after it load a Dragonfly folder (and so does an import of
    transformers that came first)."""
    from dragonfly_eval.modeling.loading import resolve_checkpoint

    folder = str(resolve_checkpoint("dragonfly-tiny"))
    load = (
        "from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor; "
        f"print(AutoConfig.from_pretrained({folder!r}).model_type, "
        f"type(AutoModelForCausalLM.from_pretrained({folder!r})).__name__, "
        f"type(AutoProcessor.from_pretrained({folder!r})).__name__)"
    )
    for code in (
        f"import sys, dragonfly_eval; assert 'torch' not in sys.modules; {load}",
        f"import transformers, dragonfly_eval; {load}",
    ):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split() == ["dragonfly", "DragonflyForCausalLM", "DragonflyProcessor"]
