"""dragonfly-eval: evaluate Dragonfly vision-language models with lmms-eval.

The model classes are imported on first use (PEP 562 module `__getattr__`), so commands that never
touch the model (`leaderboard`, `regress`) start without importing torch or transformers.

Importing the package is enough for transformers' Auto classes to load Dragonfly folders: when
transformers is imported (or at once, when it already is), `dragonfly_eval.modeling` is imported,
and importing it registers `dragonfly` with `AutoConfig`, `AutoModelForCausalLM`,
`AutoImageProcessor` and `AutoProcessor`; then `dragonfly_eval.tiny.checkpoint`, which registers
the embedded model's name `dragonfly-tiny` (modeling sits below the embedded model and never
imports it).
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import warnings
from types import ModuleType
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


def register_auto_classes() -> None:
    """Register the Dragonfly classes with transformers' Auto classes, and the embedded model's
    name with the checkpoint lookup (imports torch)."""
    importlib.import_module("dragonfly_eval.modeling")  # registers them as it is imported
    importlib.import_module("dragonfly_eval.tiny.checkpoint")


class _RegisterAfterTransformers(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it hands the import of `transformers` to the other finders, with a
    loader that registers the Auto classes once transformers has finished importing."""

    def find_spec(self, name: str, path: Any = None, target: ModuleType | None = None) -> Any:
        if name != "transformers":
            return None
        sys.meta_path.remove(self)  # once only, and never for the lookups below
        for finder in sys.meta_path:
            spec = getattr(finder, "find_spec", lambda *_: None)(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _ThenRegister(spec.loader)
                return spec
        return None


class _ThenRegister(importlib.abc.Loader):
    """Runs a module's own loader, then registers the Auto classes."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        try:
            register_auto_classes()
        except Exception as err:  # transformers itself imported fine; say why, do not break it
            warnings.warn(
                f"dragonfly_eval could not register its Auto classes ({err}); "
                "`import dragonfly_eval.modeling` shows the full error",
                stacklevel=2,
            )

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...
        return getattr(self._loader, name)


if "transformers" in sys.modules:
    register_auto_classes()
elif not any(isinstance(f, _RegisterAfterTransformers) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterTransformers())
