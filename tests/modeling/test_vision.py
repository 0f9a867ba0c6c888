"""Visual tokens: penultimate tower layer, 4x4 mean pooling (v2), zoom-in patch selection (v1)."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from dragonfly_eval.modeling.vision import (
    pool_crop_tokens,
    tower_features,
    v1_select_high,
    v1_visual_tokens,
    v2_visual_tokens,
)


def grid_tokens(grid: int, channels: int, lead: tuple[int, ...] = ()) -> torch.Tensor:
    """Tokens [*lead, 1 + grid^2, channels] whose value is the token's index (CLS = 0)."""
    n = 1 + grid * grid
    values = torch.arange(n, dtype=torch.float32).view(n, 1).expand(n, channels)
    return values.expand(*lead, n, channels).clone()


def test_pooling_keeps_cls_and_averages_4x4_cells_row_major():
    tokens = grid_tokens(24, 2)  # patch (r, c) holds 1 + 24 r + c
    pooled = pool_crop_tokens(tokens)
    assert pooled.shape == (37, 2)
    assert pooled[0].tolist() == [0.0, 0.0]
    for i in range(6):
        for j in range(6):
            # mean over r in 4i..4i+3, c in 4j..4j+3 of 1 + 24 r + c
            expected = 1 + 24 * (4 * i + 1.5) + (4 * j + 1.5)
            assert pooled[1 + 6 * i + j].tolist() == [expected, expected]


def test_pooling_averages_channels_separately():
    tokens = torch.zeros(1 + 8 * 8, 3)
    tokens[1:, 1] = 1.0
    tokens[1 + 0 * 8 + 4, 2] = 16.0  # one patch in cell (0, 1)
    pooled = pool_crop_tokens(tokens)
    assert pooled.shape == (5, 3)
    assert pooled[1:, 1].tolist() == [1.0] * 4
    assert pooled[1:, 2].tolist() == [0.0, 1.0, 0.0, 0.0]


def test_pooling_keeps_leading_dimensions():
    tokens = torch.randn(2, 40, 577, 8)
    pooled = pool_crop_tokens(tokens)
    assert pooled.shape == (2, 40, 37, 8)
    torch.testing.assert_close(pooled[1, 7], pool_crop_tokens(tokens[1, 7]))


def test_pooling_refuses_a_non_square_grid():
    with pytest.raises(ValueError, match="square"):
        pool_crop_tokens(torch.zeros(1, 50 + 1 + 3, 4))


def test_v2_visual_tokens_keep_the_low_crop_whole_and_pool_the_rest():
    projected = torch.randn(2, 41, 577, 4)
    visual = v2_visual_tokens(projected)
    assert visual.shape == (2, 577 + 40 * 37, 4)
    torch.testing.assert_close(visual[:, :577], projected[:, 0])
    for k in (0, 1, 39):  # crop 1 + k in sequence order
        start = 577 + 37 * k
        torch.testing.assert_close(
            visual[:, start : start + 37], pool_crop_tokens(projected[:, 1 + k])
        )


@pytest.mark.parametrize(("n_crops", "length"), [(1, 577), (5, 577 + 4 * 37)])
def test_v2_visual_tokens_for_fewer_zoom_levels(n_crops, length):
    assert v2_visual_tokens(torch.randn(3, n_crops, 577, 4)).shape == (3, length, 4)


def test_pooling_commutes_with_the_affine_projector():
    # The model pools before projecting (11x fewer tokens to project); the reference projected
    # first. With a bias-carrying linear layer both orders must agree.
    torch.manual_seed(0)
    projector = torch.nn.Linear(16, 8)
    feats = torch.randn(1, 5, 577, 16)
    with torch.no_grad():
        torch.testing.assert_close(
            projector(v2_visual_tokens(feats)),
            v2_visual_tokens(projector(feats)),
            atol=1e-5,
            rtol=0,
        )


def crops_with_summaries(summaries: torch.Tensor, decoys: torch.Tensor) -> torch.Tensor:
    """[B, n, D] summaries -> [B, n, 4, D] tokens whose mean is the summary; the first token
    (CLS) alone is summary + decoy."""
    tokens = summaries[:, :, None, :].repeat(1, 1, 4, 1)
    tokens[:, :, 0] += decoys
    tokens[:, :, 1] -= decoys
    return tokens


def v1_features(scores: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Medium [B, 4, T, D] and high [B, 24, T, D] features where medium crop k's summary dotted
    with high crop j (in block k) is scores[b][j]. High crops score 100 against every other
    medium crop (selection that ignores the blocks picks wrong ones), and their CLS tokens alone
    would rank each block in reverse (selection from CLS instead of the mean picks wrong ones).
    """
    b = len(scores)
    medium = torch.zeros(b, 4, 4)
    medium[:, torch.arange(4), torch.arange(4)] = 1.0
    high = torch.zeros(b, 24, 4)
    decoys = torch.zeros(b, 24, 4)
    for row, row_scores in enumerate(scores):
        for j, score in enumerate(row_scores):
            block = j // 6
            high[row, j] = 100.0
            high[row, j, block] = score
            decoys[row, j, block] = -2 * score
    return crops_with_summaries(medium, torch.zeros_like(medium)), crops_with_summaries(
        high, decoys
    )


def expected_selection(scores: list[float]) -> list[int]:
    keep = []
    for k in range(4):
        block = sorted(range(6 * k, 6 * k + 6), key=lambda j: -scores[j])[:3]
        keep.extend(block)
    return sorted(keep)


def test_v1_keeps_the_top_3_of_each_medium_crops_block_sorted():
    scores = [
        [
            float(x)
            for x in [5, 1, 4, 2, 6, 3, 9, 8, 7, 1, 2, 3, 1, 1, 9, 9, 9, 2, 0, 1, 2, 3, 4, 5]
        ],
        [
            float(x)
            for x in [1, 2, 3, 4, 5, 6, 6, 5, 4, 3, 2, 1, 3, 9, 3, 9, 0, 9, -1, -2, -3, 7, 8, 9]
        ],
    ]
    medium, high = v1_features(scores)
    keep = v1_select_high(medium, high)
    assert keep.shape == (2, 12)
    assert (
        keep[0].tolist()
        == expected_selection(scores[0])
        == [0, 2, 4, 6, 7, 8, 14, 15, 16, 21, 22, 23]
    )
    assert (
        keep[1].tolist()
        == expected_selection(scores[1])
        == [3, 4, 5, 6, 7, 8, 13, 15, 17, 21, 22, 23]
    )


def test_v1_selection_is_three_per_block():
    torch.manual_seed(1)
    keep = v1_select_high(torch.randn(3, 4, 50, 16), torch.randn(3, 24, 50, 16))
    for row in keep.tolist():
        assert row == sorted(row)
        assert [sum(6 * k <= j < 6 * k + 6 for j in row) for k in range(4)] == [3, 3, 3, 3]


def test_v1_visual_tokens_place_low_medium_then_kept_high_crops():
    scores = [[float((7 * j) % 11) for j in range(24)]]
    medium, high = v1_features(scores)
    t, d = medium.shape[2], medium.shape[3]
    low = torch.full((1, 1, t, d), -7.0)
    projected = torch.cat([low, medium, high], dim=1)  # [1, 29, T, D]
    visual = v1_visual_tokens(projected, select=True)
    assert visual.shape == (1, 17 * t, d)
    kept = expected_selection(scores[0])
    expected = torch.cat([projected[:, :5], high[:, kept]], dim=1).reshape(1, -1, d)
    torch.testing.assert_close(visual, expected)


def test_v1_without_selection_keeps_every_crop():
    projected = torch.randn(2, 29, 50, 8)
    torch.testing.assert_close(
        v1_visual_tokens(projected, select=False), projected.reshape(2, 29 * 50, 8)
    )
    low_medium = projected[:, :5]
    torch.testing.assert_close(
        v1_visual_tokens(low_medium, select=True), low_medium.reshape(2, 5 * 50, 8)
    )


@pytest.fixture(scope="module")
def two_layer_tower() -> CLIPVisionModel:
    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=56,
        patch_size=14,
        projection_dim=16,
    )
    return CLIPVisionModel(config).eval()


def test_tower_features_are_the_penultimate_layer_before_post_layernorm(two_layer_tower):
    # A one-layer copy of the first layer ends where the two-layer tower's penultimate layer is.
    config = two_layer_tower.config
    one_layer = CLIPVisionModel(
        CLIPVisionConfig(**{**config.to_dict(), "num_hidden_layers": 1})
    ).eval()
    state = {k: v for k, v in two_layer_tower.state_dict().items() if ".layers.1." not in k}
    one_layer.load_state_dict(state)
    pixels = torch.randn(3, 3, 56, 56)
    with torch.no_grad():
        feats = tower_features(two_layer_tower, pixels)
        expected = one_layer(pixels).last_hidden_state
    assert feats.shape == (3, 1 + 16, 16)
    torch.testing.assert_close(feats, expected, atol=1e-5, rtol=0)


def test_tower_features_in_chunks_equal_one_call(two_layer_tower):
    pixels = torch.randn(7, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(
            tower_features(two_layer_tower, pixels, chunk_size=3),
            tower_features(two_layer_tower, pixels),
            atol=1e-5,
            rtol=0,
        )
