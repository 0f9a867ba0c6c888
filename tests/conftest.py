"""Shared fixtures: the tiny Dragonfly checkpoints, their golden outputs, and cached models.

The fixtures folder is `$DRAGONFLY_FIXTURES` when set, else `../shared/fixtures` beside the
repository. It holds checkpoint folders (`<name>/config.json`, model_type "dragonfly") and, for
some of them, the reference implementation's outputs (`<name>-golden/golden.json` + images).
Everything a parity test compares against is read from there, never written into a test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

FIXTURES_ENV = "DRAGONFLY_FIXTURES"
# The fixture README's tolerances; golden.json may carry its own under "tolerances".
DEFAULT_TOLERANCES = {"pixels": 1e-5, "logits": 1e-3, "loglikelihood": 1e-3}


def fixtures_dir() -> Path:
    """Where the shared model fixtures are looked for."""
    env = os.environ.get(FIXTURES_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


def missing_reason(what: str) -> str:
    """Skip reason naming where fixtures were looked for and how to point elsewhere."""
    return (
        f"no {what} in {fixtures_dir()} (set {FIXTURES_ENV} to the folder holding the tiny "
        "Dragonfly checkpoints and their -golden folders)"
    )


@dataclass
class GoldenSet:
    """One checkpoint and the reference implementation's outputs for it."""

    name: str
    checkpoint: Path
    golden_dir: Path
    _images: dict[str, Image.Image] = field(default_factory=dict, repr=False)

    @cached_property
    def data(self) -> dict[str, Any]:
        return json.loads((self.golden_dir / "golden.json").read_text())

    @property
    def cases(self) -> list[dict[str, Any]]:
        return self.data["cases"]

    @property
    def tolerances(self) -> dict[str, float]:
        return {**DEFAULT_TOLERANCES, **self.data.get("tolerances", {})}

    def case(self, index: int) -> GoldenCase:
        return GoldenCase(self, index)

    def image(self, file_name: str) -> Image.Image:
        """The case's image as stored (its own PIL mode), loaded once."""
        if file_name not in self._images:
            with Image.open(self.golden_dir / file_name) as im:
                im.load()
                self._images[file_name] = im
        return self._images[file_name]


@dataclass(frozen=True)
class GoldenCase:
    """One case of a golden set."""

    golden: GoldenSet
    index: int

    @property
    def data(self) -> dict[str, Any]:
        return self.golden.cases[self.index]

    @property
    def image(self) -> Image.Image:
        return self.golden.image(self.data["image"])


def checkpoint_folders() -> list[Path]:
    """Every Dragonfly checkpoint folder among the fixtures."""
    root = fixtures_dir()
    if not root.is_dir():
        return []
    found = []
    for config in sorted(root.glob("*/config.json")):
        try:
            model_type = json.loads(config.read_text()).get("model_type")
        except json.JSONDecodeError:
            continue
        if model_type == "dragonfly":
            found.append(config.parent)
    return found


def golden_sets() -> list[GoldenSet]:
    """Every checkpoint that has a `<name>-golden/golden.json` beside it."""
    return [
        GoldenSet(folder.name, folder, folder.parent / f"{folder.name}-golden")
        for folder in checkpoint_folders()
        if (folder.parent / f"{folder.name}-golden" / "golden.json").is_file()
    ]


_GOLDEN_SETS = golden_sets()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize `golden_set` over the golden sets and `golden_case` over all their cases."""
    if "golden_case" in metafunc.fixturenames:
        params = [
            pytest.param(GoldenCase(s, i), id=f"{s.name}-{i}-{c['image']}")
            for s in _GOLDEN_SETS
            for i, c in enumerate(s.cases)
        ]
        # Module scope makes pytest run all tests of one case together, so a case's tensors can
        # be computed once and dropped before the next case.
        metafunc.parametrize("golden_case", params or [_skipped("golden outputs")], scope="module")
    elif "golden_set" in metafunc.fixturenames:
        params = [pytest.param(s, id=s.name) for s in _GOLDEN_SETS]
        metafunc.parametrize("golden_set", params or [_skipped("golden outputs")])


def _skipped(what: str):
    return pytest.param(None, marks=pytest.mark.skip(reason=missing_reason(what)), id="absent")


def _checkpoint_of_version(version: int) -> Path:
    from dragonfly_eval.modeling.loading import read_config

    for folder in checkpoint_folders():
        if read_config(folder).version == version:
            return folder
    pytest.skip(missing_reason(f"Dragonfly v{version} checkpoint"))


@pytest.fixture(scope="session")
def checkpoint_for() -> Callable[[int], Path]:
    """Look up the checkpoint of a Dragonfly version (1 or 2); skips the test when absent."""
    return _checkpoint_of_version


@pytest.fixture(scope="session")
def v2_checkpoint() -> Path:
    """A tiny Dragonfly v2 checkpoint folder in the released format."""
    return _checkpoint_of_version(2)


@pytest.fixture(scope="session")
def v1_checkpoint() -> Path:
    """A tiny Dragonfly v1 checkpoint folder in the released format."""
    return _checkpoint_of_version(1)


@pytest.fixture(scope="session")
def load_pair() -> Callable[..., tuple[Any, Any]]:
    """Load (model, processor) of a checkpoint with a zoom setting, once per session."""
    from dragonfly_eval import DragonflyForCausalLM, DragonflyProcessor

    cache: dict[tuple[str, str | None], tuple[Any, Any]] = {}

    def load(checkpoint: Path, zoom: str | None = None) -> tuple[Any, Any]:
        key = (str(checkpoint), zoom)
        if key not in cache:
            cache[key] = (
                DragonflyForCausalLM.from_pretrained(str(checkpoint), zoom=zoom),
                DragonflyProcessor.from_pretrained(str(checkpoint), zoom=zoom),
            )
        return cache[key]

    return load


@pytest.fixture(scope="session")
def v2_pair(v2_checkpoint, load_pair):
    """(model, processor) of the v2 checkpoint at its default zoom."""
    return load_pair(v2_checkpoint)


@pytest.fixture(scope="session")
def v1_pair(v1_checkpoint, load_pair):
    """(model, processor) of the v1 checkpoint at its default zoom."""
    return load_pair(v1_checkpoint)


@pytest.fixture(scope="session")
def offline_env() -> dict[str, str]:
    """Environment for lmms-eval and dragonfly-eval subprocesses: offline (no hub access), with
    this checkout importable."""
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return env
