"""Token layout: the image blocks first, then the text; padding and position ids for batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def image_block(crop_tokens: Sequence[int], placeholder_id: int, separator_id: int) -> list[int]:
    """One image's block: for each kept crop, its placeholders then one separator."""
    ids: list[int] = []
    for n in crop_tokens:
        ids.extend([placeholder_id] * n)
        ids.append(separator_id)
    return ids


def sample_layout(
    text_ids: Sequence[int],
    n_images: int,
    crop_tokens: Sequence[int],
    placeholder_id: int,
    separator_id: int,
) -> tuple[list[int], list[int]]:
    """Input ids and visual-embedding indices of one sample: image blocks in order, then text.

    The index row holds, at each placeholder, the position of the visual embedding placed there
    (counting across all of the sample's images), and -1 elsewhere.
    """
    block = image_block(crop_tokens, placeholder_id, separator_id)
    ids = block * n_images + list(text_ids)
    indices: list[int] = []
    next_index = 0
    for token in ids[: len(block) * n_images]:
        if token == placeholder_id:
            indices.append(next_index)
            next_index += 1
        else:
            indices.append(-1)
    indices.extend([-1] * len(text_ids))
    return ids, indices


def pad_batch(
    rows: Sequence[Sequence[int]],
    index_rows: Sequence[Sequence[int]],
    pad_id: int,
    side: str = "left",
) -> dict[str, torch.Tensor]:
    """Pad samples to one length: `input_ids`, `attention_mask`, `image_patches_indices`.

    Generation pads on the left (the reference's convention), scoring on the right.
    """
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    indices = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, (row, index_row) in enumerate(zip(rows, index_rows, strict=True)):
        span = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
        indices[i, span] = torch.tensor(index_row, dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "image_patches_indices": indices}


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip padding: cumsum(mask) - 1, with 1 at padded positions."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 1)
