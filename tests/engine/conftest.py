"""Fixtures of the engine tests: the embedded tiny model and its processor, no lmms-eval."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from dragonfly_eval.engine import Engine, EngineSettings
from dragonfly_eval.modeling import DragonflyProcessor
from dragonfly_eval.modeling.loading import load_dragonfly


@pytest.fixture(scope="session")
def tiny_parts():
    """The embedded tiny model (one low-resolution crop per image) and its processor."""
    model = load_dragonfly(
        "dragonfly-tiny", dtype="float32", device=torch.device("cpu"), zoom="low"
    )
    return model, DragonflyProcessor.from_pretrained("dragonfly-tiny", zoom="low")


@pytest.fixture
def make_engine(tiny_parts) -> Callable[..., Engine]:
    """A fresh engine (fresh caches) over the shared tiny model, with the given settings."""

    def make(**settings) -> Engine:
        model, processor = tiny_parts
        return Engine(model, processor, EngineSettings(**{"progress": False, **settings}))

    return make
