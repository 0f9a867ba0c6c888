"""dragonfly-eval: evaluate Dragonfly vision-language models with lmms-eval."""

from dragonfly_eval.modeling import (
    DragonflyConfig,
    DragonflyForCausalLM,
    DragonflyProcessor,
    chat_prompt,
)

__all__ = ["DragonflyConfig", "DragonflyForCausalLM", "DragonflyProcessor", "chat_prompt"]
__version__ = "0.1.0"
