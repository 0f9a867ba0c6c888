"""The `vllm.general_plugins` entry point: vLLM calls `register` in each of its processes."""

from __future__ import annotations

MODEL_CLASS = "dragonfly_eval.vllm.model:DragonflyVllmForCausalLM"
ARCHITECTURE = "DragonflyForCausalLM"


def register() -> None:
    """Make `vllm.LLM(model=<Dragonfly folder>)` load Dragonfly: the config class for
    transformers' AutoConfig (model_type "dragonfly") and the model class, named by string so
    that registering imports nothing of vLLM's model code. Safe to call more than once."""
    from vllm import ModelRegistry

    import dragonfly_eval.modeling  # noqa: F401  (registers DragonflyConfig with AutoConfig)

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, MODEL_CLASS)
