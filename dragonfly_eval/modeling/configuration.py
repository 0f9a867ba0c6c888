"""`DragonflyConfig`: the released checkpoints' config.json, as plain data."""

from __future__ import annotations

from typing import Any

from transformers import CLIPVisionConfig, LlamaConfig, PretrainedConfig

# The fields that size the network; each must be a positive integer (head_dim may be unset).
TEXT_SIZES = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
)
VISION_SIZES = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "image_size",
    "patch_size",
    "num_channels",
)


class DragonflyConfig(PretrainedConfig):
    """Configuration of a Dragonfly checkpoint.

    `text_config` is the Llama language model. `image_encoder` is what the released config names
    (the CLIP hub id the tower was built from, or a path); `vision_config` is the tower's resolved
    `CLIPVisionConfig`, filled in at load time (see `loading.resolve_vision_config`) and saved with
    the model so a saved checkpoint is self-contained. Leftover fields of the released configs
    (`image_size: 300`, `patch_size: 30`, top-level Llama fields) are kept but unused.
    """

    model_type = "dragonfly"
    sub_configs = {"text_config": LlamaConfig, "vision_config": CLIPVisionConfig}

    def __init__(
        self,
        text_config: dict[str, Any] | LlamaConfig | None = None,
        image_encoder: str | None = None,
        vision_config: dict[str, Any] | CLIPVisionConfig | None = None,
        tie_word_embeddings: bool = False,
        **kwargs: Any,
    ) -> None:
        if isinstance(text_config, dict):
            text_config = LlamaConfig(**{k: v for k, v in text_config.items() if k != "model_type"})
        self.text_config = text_config if text_config is not None else LlamaConfig()
        if "rope_scaling" in kwargs and kwargs["rope_scaling"] is None:
            del kwargs["rope_scaling"]
            # The released v2 config says `rope_scaling: null` at the top level: the model was
            # trained without Llama-3.1's rope scaling, whatever the text config inherited.
            params = getattr(self.text_config, "rope_parameters", None)
            if isinstance(params, dict):
                theta = params.get("rope_theta", 500000.0)
                self.text_config.rope_parameters = {"rope_type": "default", "rope_theta": theta}
            else:  # transformers versions before rope_parameters
                self.text_config.rope_scaling = None
        if isinstance(vision_config, dict):
            vision_config = CLIPVisionConfig(
                **{k: v for k, v in vision_config.items() if k != "model_type"}
            )
        self.vision_config = vision_config
        self.image_encoder = image_encoder
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)

    @property
    def version(self) -> int:
        """1 for the ViT-B/32 224 px release (patch selection), 2 for ViT-L/14 336 px (pooling).

        Read from the vision tower: v1 towers see 7x7 patches per crop, v2 towers 24x24.
        """
        if self.vision_config is None:
            raise ValueError(
                "vision_config is not resolved yet; load the model with from_pretrained"
            )
        grid = self.vision_config.image_size // self.vision_config.patch_size
        return 1 if grid < 12 else 2

    def invalid_sizes(self) -> list[str]:
        """The size fields that are not positive integers, as `text_config.hidden_size=-4`."""
        found = []
        for prefix, sub, names in (
            ("text_config", self.text_config, TEXT_SIZES),
            ("vision_config", self.vision_config, VISION_SIZES),
        ):
            for name in names:
                value = getattr(sub, name, None)
                if name == "head_dim" and value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    found.append(f"{prefix}.{name}={value!r}")
        return found

    def parameter_counts(self) -> dict[str, int]:
        """Parameters of the network this config builds, by part, computed from the sizes alone
        (nothing is allocated): the CLIP tower, the projector and the Llama language model.
        Call `invalid_sizes` first."""
        return {
            "vision tower": _clip_vision_parameters(self.vision_config),
            "projector": (self.vision_config.hidden_size + 1) * self.text_config.hidden_size,
            "language model": _llama_parameters(self.text_config),
        }


def _clip_vision_parameters(v: CLIPVisionConfig) -> int:
    """transformers' CLIPVisionModel: embeddings, pre/post layer norms, encoder layers."""
    h, i = v.hidden_size, v.intermediate_size
    positions = (v.image_size // v.patch_size) ** 2 + 1
    embeddings = h + v.num_channels * h * v.patch_size**2 + positions * h
    layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * (2 * h)
    return embeddings + 2 * (2 * h) + v.num_hidden_layers * layer


def _llama_parameters(t: LlamaConfig) -> int:
    """transformers' LlamaForCausalLM: embeddings, decoder layers, final norm, lm_head."""
    h, i = t.hidden_size, t.intermediate_size
    head_dim = getattr(t, "head_dim", None) or h // t.num_attention_heads
    q, kv = t.num_attention_heads * head_dim, t.num_key_value_heads * head_dim
    attention = h * q + 2 * h * kv + q * h
    if getattr(t, "attention_bias", False):
        attention += q + 2 * kv + h
    mlp = 3 * h * i + ((2 * i + h) if getattr(t, "mlp_bias", False) else 0)
    layer = attention + mlp + 2 * h
    embeddings = t.vocab_size * h * (1 if t.tie_word_embeddings else 2)  # lm_head shares it
    return embeddings + t.num_hidden_layers * layer + h
