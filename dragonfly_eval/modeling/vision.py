"""From pixels to visual embeddings: tower features, 4x4 mean pooling (v2), patch selection (v1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dragonfly_eval.modeling.released import POOL_KERNEL, V1_BLOCK, V1_TOP_K, VISION_FEATURE_LAYER


def _encoder(tower: nn.Module) -> nn.Module:
    inner = getattr(tower, "vision_model", tower)  # transformers 4.x nests the transformer
    return inner.encoder


def tower_features(
    tower: nn.Module,
    pixels: torch.Tensor,
    chunk_size: int | None = None,
    feature_layer: int = VISION_FEATURE_LAYER,
) -> torch.Tensor:
    """Tokens of the CLIP tower's `hidden_states[feature_layer]` (the penultimate layer as
    released): [N, 1+P, C].

    The layers after that one are never used, so they are not run: the tower's
    `last_hidden_state` (taken before post-layernorm) with those layers left out is exactly
    `hidden_states[feature_layer]` of the full tower. `chunk_size` bounds how many crops go
    through at once.
    """
    encoder = _encoder(tower)
    layers = encoder.layers
    kept = feature_layer if feature_layer >= 0 else len(layers) + 1 + feature_layer
    encoder.layers = layers[:kept]
    try:
        parts = pixels.split(chunk_size) if chunk_size else [pixels]
        return torch.cat([tower(part).last_hidden_state for part in parts])
    finally:
        encoder.layers = layers


def pool_crop_tokens(tokens: torch.Tensor, kernel: int = POOL_KERNEL) -> torch.Tensor:
    """Keep the CLS token and mean-pool the square patch grid: [..., 1+g*g, C] -> [..., 1+(g/k)^2, C]."""
    *lead, n, c = tokens.shape
    grid = int(round((n - 1) ** 0.5))
    if grid * grid != n - 1:
        raise ValueError(f"expected CLS + a square patch grid, got {n} tokens")
    cls, patches = tokens[..., :1, :], tokens[..., 1:, :]
    patches = patches.reshape(-1, grid, grid, c).permute(0, 3, 1, 2)  # [M, C, g, g]
    pooled = F.avg_pool2d(patches, kernel_size=kernel, stride=kernel)  # [M, C, g/k, g/k]
    pooled = pooled.flatten(2).transpose(1, 2).reshape(*lead, -1, c)  # row-major cells
    return torch.cat([cls, pooled], dim=-2)


def v2_visual_tokens(
    projected: torch.Tensor, n_low: int = 1, kernel: int = POOL_KERNEL
) -> torch.Tensor:
    """v2 layout: low crop(s) keep every token, other crops are CLS + pooled grid.

    projected: [B, n_crops, 1+P, D] -> [B, n_low*(1+P) + (n_crops-n_low)*(1+P/16), D]
    """
    b, _, _, d = projected.shape
    low = projected[:, :n_low].reshape(b, -1, d)
    rest = projected[:, n_low:]
    if rest.shape[1] == 0:
        return low
    return torch.cat([low, pool_crop_tokens(rest, kernel).reshape(b, -1, d)], dim=1)


def v1_select_high(
    medium: torch.Tensor, high: torch.Tensor, block: int = V1_BLOCK, top_k: int = V1_TOP_K
) -> torch.Tensor:
    """Indices of the high crops v1 keeps: per medium crop k, the top `top_k` of the high crops
    [block*k, block*k + block) (top 3 of 6 as released).

    medium: [B, 4, T, D], high: [B, 24, T, D] projected tokens. A crop's summary is the mean of
    its tokens; the score is the dot product of summaries. Returns [B, 12] indices, sorted.
    """
    med_summary = medium.float().mean(dim=2)  # [B, 4, D]
    high_summary = high.float().mean(dim=2)  # [B, 24, D]
    b, n_medium, _ = med_summary.shape
    blocks = high_summary.reshape(b, n_medium, block, -1)  # [B, 4, 6, D]
    scores = torch.einsum("bkd,bkjd->bkj", med_summary, blocks)  # [B, 4, 6]
    top = scores.topk(top_k, dim=-1).indices  # [B, 4, 3]
    offsets = torch.arange(n_medium, device=top.device).view(1, -1, 1) * block
    return (top + offsets).reshape(b, -1).sort(dim=-1).values  # [B, 12]


def v1_visual_tokens(
    projected: torch.Tensor,
    select: bool,
    n_low: int = 1,
    n_medium: int = 4,
    block: int = V1_BLOCK,
    top_k: int = V1_TOP_K,
) -> torch.Tensor:
    """v1 layout: every kept crop keeps all its tokens; with `select`, `top_k` of each medium
    crop's `block` high crops (12 of the 24 as released).

    projected: [B, n_crops, T, D] -> [B, kept_crops*T, D]
    """
    b, n_crops, t, d = projected.shape
    if not select or n_crops <= n_low + n_medium:
        return projected.reshape(b, -1, d)
    low_medium = projected[:, : n_low + n_medium]
    high = projected[:, n_low + n_medium :]
    keep = v1_select_high(projected[:, n_low : n_low + n_medium], high, block, top_k)
    kept = torch.gather(high, 1, keep[:, :, None, None].expand(-1, -1, t, d))  # [B, 12, T, D]
    return torch.cat([low_medium, kept], dim=1).reshape(b, -1, d)
