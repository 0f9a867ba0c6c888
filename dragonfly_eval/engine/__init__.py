"""The evaluation engine without lmms-eval: typed requests, batch planning, prefetch, encoding
and prefix caches, out-of-memory and numerics policy, the generate and score loops."""

from dragonfly_eval.engine.engine import Engine, EngineSettings
from dragonfly_eval.engine.requests import GenRequest, GenSettings, ScoreRequest

__all__ = ["Engine", "EngineSettings", "GenRequest", "GenSettings", "ScoreRequest"]
