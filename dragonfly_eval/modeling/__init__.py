"""The Dragonfly model: config, zoom-in encoding, processor. Never imports lmms-eval."""

from transformers import AutoConfig, AutoModelForCausalLM

from dragonfly_eval.modeling.configuration import DragonflyConfig
from dragonfly_eval.modeling.modeling import DragonflyForCausalLM
from dragonfly_eval.modeling.processing import DragonflyProcessor, chat_prompt

AutoConfig.register("dragonfly", DragonflyConfig, exist_ok=True)
AutoModelForCausalLM.register(DragonflyConfig, DragonflyForCausalLM, exist_ok=True)

__all__ = ["DragonflyConfig", "DragonflyForCausalLM", "DragonflyProcessor", "chat_prompt"]
