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


@pytest.fixture(scope="session")
def random_tiny_parts(tiny_parts):
    """dragonfly-tiny's architecture with untrained weights (transformers' initialisation from a
    fixed seed): its answers run on to the token limit, which the stop-string tests need (the
    trained model answers in a few tokens and stops)."""
    from dragonfly_eval.tiny.train import initial_model

    model, _ = initial_model(0)
    model.config.zoom = "low"
    trained, processor = tiny_parts
    model.language_model.generation_config = trained.language_model.generation_config
    return model.eval(), processor


@pytest.fixture
def make_engine(tiny_parts) -> Callable[..., Engine]:
    """A fresh engine (fresh caches) over the shared tiny model, with the given settings."""

    def make(**settings) -> Engine:
        model, processor = tiny_parts
        return Engine(model, processor, EngineSettings(**{"progress": False, **settings}))

    return make
