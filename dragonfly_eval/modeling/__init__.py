"""The Dragonfly model: config, zoom-in encoding, processor. Never imports lmms-eval.

Importing the package registers the classes with transformers' Auto classes, so
`AutoConfig`, `AutoModelForCausalLM`, `AutoImageProcessor` and `AutoProcessor` `from_pretrained`
load Dragonfly checkpoint folders.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForCausalLM,
    AutoProcessor,
)

from dragonfly_eval.modeling.configuration import DragonflyConfig
from dragonfly_eval.modeling.image_processing import DragonflyImageProcessor
from dragonfly_eval.modeling.modeling import DragonflyForCausalLM
from dragonfly_eval.modeling.processing import DragonflyProcessor, chat_prompt

AutoConfig.register("dragonfly", DragonflyConfig, exist_ok=True)
AutoModelForCausalLM.register(DragonflyConfig, DragonflyForCausalLM, exist_ok=True)
AutoImageProcessor.register(
    DragonflyConfig, image_processor_classes={"pil": DragonflyImageProcessor}, exist_ok=True
)
AutoProcessor.register(DragonflyConfig, DragonflyProcessor, exist_ok=True)

__all__ = [
    "DragonflyConfig",
    "DragonflyForCausalLM",
    "DragonflyImageProcessor",
    "DragonflyProcessor",
    "chat_prompt",
]
