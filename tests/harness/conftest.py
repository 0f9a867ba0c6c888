"""Fixtures for the harness tests (request helpers live in harness_kit.py).

Models are loaded once per session and shared, so a test that changes a setting does it with
`monkeypatch` (restored afterwards).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness_kit import GenerateSpy, Requests
from loguru import logger


@pytest.fixture
def kit() -> Requests:
    """A fresh in-memory task for the test."""
    return Requests()


@pytest.fixture
def spy_generate(monkeypatch) -> Callable[[Any], GenerateSpy]:
    """Wrap a harness's `model.generate` in a GenerateSpy for the test."""

    def install(harness: Any) -> GenerateSpy:
        spy = GenerateSpy(harness.model.generate)
        monkeypatch.setattr(harness.model, "generate", spy)
        return spy

    return install


@pytest.fixture
def log_lines() -> list[str]:
    """loguru records emitted during the test, as "LEVEL message" lines."""
    lines: list[str] = []
    sink = logger.add(
        lambda message: lines.append(str(message).rstrip("\n")), format="{level} {message}"
    )
    yield lines
    logger.remove(sink)


@pytest.fixture(scope="session")
def load_harness() -> Callable[..., Any]:
    """Dragonfly harness instances on the CPU, one per (checkpoint, settings) per session."""
    from dragonfly_eval.harness.model import Dragonfly

    cache: dict[tuple, Any] = {}

    def load(checkpoint: Path, **settings: Any) -> Any:
        key = (str(checkpoint), tuple(sorted(settings.items())))
        if key not in cache:
            cache[key] = Dragonfly(pretrained=str(checkpoint), device="cpu", **settings)
        return cache[key]

    return load


@pytest.fixture(scope="session")
def v2_harness(v2_checkpoint, load_harness):
    """The v2 fixture with batching, image reuse and prefetching on (batch_size 4)."""
    return load_harness(v2_checkpoint, batch_size=4)


@pytest.fixture(scope="session")
def v2_harness_direct(v2_checkpoint, load_harness):
    """Like v2_harness, but every batch goes through `model.generate` with its full layout
    (no prefix KV reuse), so that a GenerateSpy sees each call's inputs."""
    return load_harness(v2_checkpoint, batch_size=4, prefix_cache=False)


@pytest.fixture(scope="session")
def v2_harness_plain(v2_checkpoint, load_harness):
    """The v2 fixture one request at a time: batch_size 1, no image or prefix cache, no
    prefetch."""
    return load_harness(
        v2_checkpoint, batch_size=1, image_cache=False, prefetch=False, prefix_cache=False
    )
