"""Entry points `lmms_eval.models: dragonfly` and `dragonfly_vllm`: how lmms-eval finds this
project's model classes (by path: registering imports neither torch nor vLLM)."""

from lmms_eval.models.registry_v2 import ModelManifest

MANIFEST = ModelManifest(
    model_id="dragonfly",
    simple_class_path="dragonfly_eval.harness.model.Dragonfly",
)
VLLM_MANIFEST = ModelManifest(
    model_id="dragonfly_vllm",
    simple_class_path="dragonfly_eval.harness.vllm_model.DragonflyVllm",
)
