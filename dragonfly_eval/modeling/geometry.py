"""Zoom-in geometry in integers: the resolutions an image is resized to, the grid of crops each
level is cut into, and how many crops and visual tokens one image gives. Pure Python (no torch,
numpy or Pillow), so anything that only counts can import it.

Crop order is the contract of the released checkpoints: [low, medium..., high...], each level cut
row-major (top row first, left to right).
"""

from __future__ import annotations

from dataclasses import dataclass

from dragonfly_eval.modeling import released

Resolution = tuple[int, int]  # (width, height)
Grid = tuple[int, int]  # (columns, rows) of crops


@dataclass(frozen=True)
class ZoomGeometry:
    """The zoom-in layout of one Dragonfly version, fixed by the vision tower's crop size."""

    version: int
    crop_size: int
    medium_candidates: tuple[Resolution, ...]
    high_candidates: tuple[Resolution, ...] | None  # None: high = 3x the medium resolution
    high_scale: int = 3

    @property
    def levels(self) -> tuple[str, ...]:
        return ("low", "medium", "high")


def make_geometry(
    version: int,
    crop_size: int,
    medium_grids: tuple[Grid, ...] = released.MEDIUM_GRIDS,
    high_grids: tuple[Grid, ...] | None = None,
    high_scale: int = released.HIGH_SCALE,
) -> ZoomGeometry:
    """A zoom geometry from candidate layouts in crops ((columns, rows)); `high_grids` None
    means the high level is `high_scale` times the chosen medium resolution."""
    se = crop_size

    def resolutions(grids):
        return tuple((int(cols) * se, int(rows) * se) for cols, rows in grids)

    return ZoomGeometry(
        version=version,
        crop_size=se,
        medium_candidates=resolutions(medium_grids),
        high_candidates=None if high_grids is None else resolutions(high_grids),
        high_scale=high_scale,
    )


def v2_geometry(crop_size: int = released.CROP_SIZE[2]) -> ZoomGeometry:
    """v2: medium among 2x2 / 1x4 / 4x1 crops, high at three times the medium resolution (36 crops)."""
    return make_geometry(2, crop_size)


def v1_geometry(crop_size: int = released.CROP_SIZE[1]) -> ZoomGeometry:
    """v1: medium as in v2, high among six layouts of 24 crops each."""
    return make_geometry(1, crop_size, high_grids=released.V1_HIGH_GRIDS)


def geometry_for(version: int, crop_size: int | None = None) -> ZoomGeometry:
    """The released zoom geometry of a Dragonfly version (its tower's crop size by default)."""
    if version == 1:
        return v1_geometry(crop_size or released.CROP_SIZE[1])
    return v2_geometry(crop_size or released.CROP_SIZE[2])


def crops_per_image(version: int, zoom: str, geometry: ZoomGeometry | None = None) -> int:
    """Crops cut per image for a version and zoom setting (before v1's selection)."""
    counts = crops_per_level(geometry or geometry_for(version))
    return sum(counts[level] for level in zoom_levels(version, zoom))


def level_sizes(
    geometry: ZoomGeometry, size: Resolution, levels: tuple[str, ...]
) -> list[Resolution]:
    """Target (width, height) of each wanted level, in crop order [low, medium, high]."""
    targets = level_resolutions(geometry, size)
    return [targets[name] for name in ("low", "medium", "high") if name in levels]


def select_resolution(size: Resolution, candidates: tuple[Resolution, ...]) -> Resolution:
    """The LLaVA-NeXT best fit: most effective pixels, then least waste, then list order."""
    w, h = size
    best: Resolution | None = None
    best_key: tuple[int, int] | None = None
    for cand_w, cand_h in candidates:
        scale = min(cand_w / w, cand_h / h)
        effective = min(int(w * scale) * int(h * scale), w * h)
        wasted = cand_w * cand_h - effective
        key = (effective, -wasted)
        if best_key is None or key > best_key:
            best, best_key = (cand_w, cand_h), key
    assert best is not None, "no candidate resolutions"
    return best


def level_resolutions(geometry: ZoomGeometry, size: Resolution) -> dict[str, Resolution]:
    """Target (width, height) of each zoom level for an image of `size`."""
    se = geometry.crop_size
    medium = select_resolution(size, geometry.medium_candidates)
    if geometry.high_candidates is None:
        high = (medium[0] * geometry.high_scale, medium[1] * geometry.high_scale)
    else:
        high = select_resolution(size, geometry.high_candidates)
    return {"low": (se, se), "medium": medium, "high": high}


def crops_per_level(geometry: ZoomGeometry) -> dict[str, int]:
    """Crop counts per level; they do not depend on the image (41 for v2, 29 for v1)."""
    se = geometry.crop_size
    medium_w, medium_h = geometry.medium_candidates[0]
    if geometry.high_candidates is None:
        high = (medium_w * geometry.high_scale // se) * (medium_h * geometry.high_scale // se)
    else:
        counts = {(w // se) * (h // se) for w, h in geometry.high_candidates}
        assert len(counts) == 1, "high candidates must all give the same crop count"
        high = counts.pop()
    return {"low": 1, "medium": (medium_w // se) * (medium_h // se), "high": high}


def zoom_levels(version: int, zoom: str) -> tuple[str, ...]:
    """The levels a zoom setting cuts. v1's `select` cuts all three and keeps 12 high crops later."""
    valid = released.ZOOMS.get(version, ())
    if zoom not in valid:
        raise ValueError(
            f"zoom={zoom!r} is not valid for Dragonfly v{version}; choose from {valid}"
        )
    return {
        "full": ("low", "medium", "high"),
        "select": ("low", "medium", "high"),
        "low+medium": ("low", "medium"),
        "low": ("low",),
    }[zoom]


def default_zoom(version: int) -> str:
    """What the released checkpoints were trained with: v1 selects, v2 keeps everything."""
    return released.DEFAULT_ZOOM[version]


def crop_token_counts(
    version: int,
    zoom: str,
    grid: int,
    geometry: ZoomGeometry | None = None,
    pool_kernel: int = released.POOL_KERNEL,
    top_k: int = released.V1_TOP_K,
) -> list[int]:
    """Visual tokens of each crop the LLM sees, in sequence order (a grid x grid tower).

    v2: the low crop keeps CLS + grid^2 tokens, every other crop CLS + (grid/pool_kernel)^2.
    v1: every kept crop keeps CLS + grid^2; `select` keeps the low and medium crops and
    `top_k` high crops per medium crop (1 + 4 + 12 as released).
    """
    counts = crops_per_level(geometry or geometry_for(version))
    levels = zoom_levels(version, zoom)
    full = 1 + grid * grid
    if version == 1:
        n_high = counts["medium"] * top_k if zoom == "select" else counts["high"]
        n_crops = sum(counts[name] for name in levels if name != "high")
        n_crops += n_high if "high" in levels else 0
        return [full] * n_crops
    pooled = 1 + (grid // pool_kernel) ** 2
    n_rest = sum(counts[name] for name in levels if name != "low")
    return [full] + [pooled] * n_rest
