"""The drawing helpers the renderers share: named colours, the four shapes, the bundled font."""

from __future__ import annotations

import math

from PIL import ImageDraw, ImageFont

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 40),
    "purple": (140, 60, 180),
    "orange": (240, 130, 30),
}
SHAPES = ("circle", "square", "triangle", "star")


def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled default font at `size` pixels (the same glyphs on every machine)."""
    return ImageFont.load_default(size=size)


def draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    box: tuple[int, int, int, int],
    fill: tuple[int, int, int],
) -> None:
    """Fill one of SHAPES inside `box` (x0, y0, x1, y1) with `fill`."""
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)
    elif shape == "star":
        cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = math.pi / 5 * k - math.pi / 2
            points.append(
                (round(cx + radius * math.cos(angle)), round(cy + radius * math.sin(angle)))
            )
        draw.polygon(points, fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")
