"""Entry point `lmms_eval.models: dragonfly`: how lmms-eval finds this project's model class."""

from lmms_eval.models.registry_v2 import ModelManifest

MANIFEST = ModelManifest(
    model_id="dragonfly",
    simple_class_path="dragonfly_eval.harness.model.Dragonfly",
)
