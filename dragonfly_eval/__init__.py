"""dragonfly-eval: evaluate Dragonfly vision-language models with lmms-eval.

The model classes are imported on first use (PEP 562 module `__getattr__`), so commands that never
touch the model (`leaderboard`, `regress`) start without importing torch or transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DragonflyConfig",
    "DragonflyForCausalLM",
    "DragonflyImageProcessor",
    "DragonflyProcessor",
    "chat_prompt",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """The public model classes, imported from `dragonfly_eval.modeling` when first asked for."""
    if name in __all__:
        return getattr(importlib.import_module("dragonfly_eval.modeling"), name)
    raise AttributeError(f"module 'dragonfly_eval' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
