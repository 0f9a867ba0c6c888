"""The ablation table's positions per image (the leaderboard is torch-free, so it keeps them as
numbers) are the ones the model's geometry makes for each zoom setting."""

from __future__ import annotations

import pytest

from dragonfly_eval.leaderboard.ablate import VISUAL_TOKENS
from dragonfly_eval.modeling import released
from dragonfly_eval.modeling.geometry import crop_token_counts, zoom_levels

# each release's tower (dragonfly-spec.md): v1 ViT-B/32 on 224 px crops, v2 ViT-L/14 on 336 px
TOWERS = {1: "openai/clip-vit-base-patch32", 2: "openai/clip-vit-large-patch14-336"}


def grid(version: int) -> int:
    """Patches a side of one crop: 7 for v1, 24 for v2."""
    return released.CROP_SIZE[version] // released.KNOWN_TOWERS[TOWERS[version]]["patch_size"]


def positions(version: int, zoom: str) -> int | None:
    """Sequence positions of one image block: each crop's tokens and one separator per crop."""
    try:
        zoom_levels(version, zoom)
    except ValueError:
        return None  # not a setting of this version
    counts = crop_token_counts(version, zoom, grid(version))
    return sum(counts) + len(counts)


@pytest.mark.parametrize("zoom", sorted(VISUAL_TOKENS))
def test_the_ablation_table_states_the_positions_the_model_makes(zoom):
    assert VISUAL_TOKENS[zoom] == (positions(1, zoom), positions(2, zoom))
