"""The picture ``winoeval sample`` writes: samples in a padded grid, small images upscaled (nearest
neighbour, so pixels stay pixels), and a title saying what was drawn. PIL is imported inside."""

from __future__ import annotations

import inspect
from typing import Any, Sequence

CELL = 112  # small images are upscaled by a whole factor to about this many pixels
PAD = 6
MARGIN = 12
BACKGROUND = (236, 236, 236)


def upscale_factor(width: int, height: int, cell: int = CELL) -> int:
    """The whole factor that brings an image's longest side closest to ``cell`` without passing it (≥ 1)."""
    return max(1, cell // max(width, height))


def make_grid(images: Sequence[Any], title: str, cols: int | None = None, cell: int = CELL):
    """Images (PIL, all one size) in rows of ``cols`` (default: up to 8), each upscaled by
    :func:`upscale_factor` and separated by ``PAD`` pixels, under a title line. Returns an RGB image."""
    from PIL import Image, ImageDraw, ImageFont

    if not images:
        raise ValueError("no images to put in a grid")
    w, h = images[0].size
    k = upscale_factor(w, h, cell)
    cw, ch = w * k, h * k
    cols = cols or min(len(images), 8)
    rows = -(-len(images) // cols)
    font = ImageFont.load_default(size=15)
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), title, font=font)
    title_h = box[3] - box[1] + 10
    width = max(2 * MARGIN + cols * cw + (cols - 1) * PAD, box[2] - box[0] + 2 * MARGIN)
    height = 2 * MARGIN + title_h + rows * ch + (rows - 1) * PAD
    grid = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    draw.text((MARGIN, MARGIN - box[1]), title, fill=(20, 20, 20), font=font)
    left = (width - (cols * cw + (cols - 1) * PAD)) // 2
    for n, im in enumerate(images):
        r, c = divmod(n, cols)
        cell_im = im.convert("RGB").resize((cw, ch), Image.NEAREST)
        grid.paste(cell_im, (left + c * (cw + PAD), MARGIN + title_h + r * (ch + PAD)))
    return grid


def sample_title(model: str, label: str, guidance: float, seed: int, n: int) -> str:
    return f"{model} · label {label!r} · guidance w = {guidance:g} · seed {seed} · {n} samples"


def accepts(func, name: str) -> bool:
    """Whether ``func`` takes a keyword argument ``name`` (plugins' ``sample`` may predate ``progress``)."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
