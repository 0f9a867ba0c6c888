"""The shape of dragonfly-tiny: Dragonfly v2's zoom geometry (41 crops of 336 px, patch 14, 577
tokens per crop, 2098 positions per image) with small widths. `v2_config` also serves the
benchmarks' scaled-down models."""

from __future__ import annotations

from transformers import CLIPVisionConfig, LlamaConfig

from dragonfly_eval.modeling.configuration import DragonflyConfig


def v2_config(vision: dict, text: dict, image_encoder: str) -> DragonflyConfig:
    """A Dragonfly v2 config (336 px crops, patch 14, Llama-3 special ids, no rope scaling) with
    the tower and language-model widths given; for the embedded model and benchmarks."""
    vision_config = CLIPVisionConfig(
        **vision, image_size=336, patch_size=14, hidden_act="quick_gelu"
    )
    text_config = LlamaConfig(
        **text,
        max_position_embeddings=8192,
        rope_theta=500000.0,
        bos_token_id=0,
        eos_token_id=1,
        tie_word_embeddings=False,
    )
    return DragonflyConfig(
        text_config=text_config.to_dict(),
        vision_config=vision_config.to_dict(),
        image_encoder=image_encoder,
        rope_scaling=None,
    )


def tiny_config(vocab_size: int) -> DragonflyConfig:
    """Dragonfly v2 geometry with small widths: a 2-layer CLIP tower 32 wide, a 2-layer Llama 64
    wide with heads of 32 (the smallest head size vLLM's CPU attention runs)."""
    return v2_config(
        vision=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            projection_dim=32,
        ),
        text=dict(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=32,
            rms_norm_eps=1e-6,
        ),
        image_encoder="dragonfly-tiny",
    )
