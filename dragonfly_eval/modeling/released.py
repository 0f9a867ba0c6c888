"""The settings of the released Dragonfly checkpoints: the defaults of `DragonflyConfig`'s fields.

Plain data, so the geometry and the kernels (`geometry.py`, `vision.py`) can default to the
released values while the model always passes its config's values.
"""

from __future__ import annotations

from typing import Any

VISION_FEATURE_LAYER = -2  # the tower's penultimate layer (`hidden_states[-2]`)
POOL_KERNEL = 4  # v2 pools each non-low crop's patch grid 4x4 (24x24 -> 6x6 on ViT-L/14-336)
V1_BLOCK = 6  # v1 scores the block of 6 high crops [6k, 6k+6) against medium crop k
V1_TOP_K = 3  # v1 keeps the top 3 high crops of each medium crop's block
# Candidate layouts as (columns, rows) of crops; a resolution is the layout times the crop size.
MEDIUM_GRIDS = ((2, 2), (1, 4), (4, 1))
V1_HIGH_GRIDS = ((6, 4), (4, 6), (3, 8), (8, 3), (2, 12), (12, 2))
HIGH_SCALE = 3  # v2: the high level is three times the chosen medium resolution
IMAGE_TOKEN = "<|reserved_special_token_0|>"
SEPARATOR_TOKEN = "<|reserved_special_token_1|>"
VISION_CHUNK_SIZE = 64  # crops per tower call, to bound activation memory
ZOOMS = {1: ("select", "full", "low+medium", "low"), 2: ("full", "low+medium", "low")}
DEFAULT_ZOOM = {1: "select", 2: "full"}  # what the releases were trained with
CROP_SIZE = {1: 224, 2: 336}
RESCALE_FACTOR = 1 / 255  # uint8 pixels to [0, 1]

# The CLIP towers of the released checkpoints (facts from the public CLIP configs).
KNOWN_TOWERS: dict[str, dict[str, Any]] = {
    "openai/clip-vit-large-patch14-336": dict(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=336,
        patch_size=14,
        projection_dim=768,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    ),
    "openai/clip-vit-base-patch32": dict(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        image_size=224,
        patch_size=32,
        projection_dim=512,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    ),
}
