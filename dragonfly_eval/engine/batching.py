"""Request bookkeeping for the engine: dense batches planned, the original order restored."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")


def plan_batches(
    n: int,
    group_key: Callable[[int], Hashable],
    sort_key: Callable[[int], tuple],
    batch_size: int,
) -> list[list[int]]:
    """Split request indices 0..n-1 into batches: same group within a batch, sorted by `sort_key`.

    Groups keep their first-appearance order; results are put back with `restore_order`.
    """
    groups: dict[Hashable, list[int]] = {}
    for i in range(n):
        groups.setdefault(group_key(i), []).append(i)
    batches = []
    for members in groups.values():
        members.sort(key=sort_key)
        batches.extend(members[i : i + batch_size] for i in range(0, len(members), batch_size))
    return batches


def restore_order(batches: Sequence[Sequence[int]], results: Sequence[Sequence[T]]) -> list[T]:
    """Results of `plan_batches` batches, back in request order."""
    n = sum(len(b) for b in batches)
    out: list = [None] * n
    for indices, values in zip(batches, results, strict=True):
        for i, value in zip(indices, values, strict=True):
            out[i] = value
    return out
