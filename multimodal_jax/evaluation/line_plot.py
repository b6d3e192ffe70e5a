"""A line chart PNG drawn with PIL only (no matplotlib here): a few scores in [0, 1] against one
swept setting, e.g. the GAN's precision, recall and attribute accuracy against truncation psi."""

from typing import Sequence

import numpy as np
from PIL import Image
from PIL import ImageDraw

from multimodal_jax.evaluation import figures

# Distinguishable on white and for the common colour-vision deficiencies (Okabe-Ito).
COLOURS = ((0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0),
           (86, 180, 233))
_WHITE, _BLACK, _GRID = (255, 255, 255), (20, 20, 20), (225, 225, 225)


def _scale(values, low: float, high: float, start: int, end: int) -> np.ndarray:
    """Maps ``values`` in [low, high] linearly onto pixel positions [start, end]."""
    span = (high - low) or 1.0
    return start + (np.asarray(values, np.float64) - low) / span * (end - start)


def write(x: Sequence[float], series: dict[str, Sequence[float]], path: str, x_label: str,
          title: str = "", width: int = 680, height: int = 400) -> None:
    """``series`` (name -> one value in [0, 1] per ``x``) as lines with dots over ``x``, a
    legend and gridlines every 0.1, saved to ``path``."""
    if not series or len(series) > len(COLOURS):
        raise ValueError(f"line_plot.write draws 1 to {len(COLOURS)} series, got {len(series)}.")
    for name, values in series.items():
        if len(values) != len(x):
            raise ValueError(f"Series {name!r} has {len(values)} values for {len(x)} x positions.")
    font, small = figures.default_font(14), figures.default_font(12)
    left, right, top, bottom = 56, width - 170, 36 if title else 16, height - 44
    canvas = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((left, 10), title, fill=_BLACK, font=font)
    for tick in np.linspace(0, 1, 11):
        y = float(_scale(tick, 0, 1, bottom, top))
        draw.line([(left, y), (right, y)], fill=_GRID)
        draw.text((left - 32, y - 7), f"{tick:.1f}", fill=_BLACK, font=small)
    x_lo, x_hi = float(min(x)), float(max(x))
    xs = _scale(x, x_lo, x_hi, left + 8, right - 8)
    for value, px in zip(x, xs):
        draw.line([(px, bottom), (px, bottom + 4)], fill=_BLACK)
        draw.text((px - 10, bottom + 8), f"{value:g}", fill=_BLACK, font=small)
    draw.rectangle([left, top, right, bottom], outline=_BLACK)
    draw.text(((left + right) / 2 - 20, height - 20), x_label, fill=_BLACK, font=font)
    for i, (name, values) in enumerate(series.items()):
        colour = COLOURS[i]
        points = list(zip(xs, _scale(np.clip(values, 0, 1), 0, 1, bottom, top)))
        draw.line(points, fill=colour, width=2)
        for px, py in points:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        y = top + 6 + 20 * i
        draw.line([(right + 12, y + 7), (right + 36, y + 7)], fill=colour, width=3)
        draw.text((right + 42, y), name, fill=_BLACK, font=small)
    figures.save_png(canvas, path)
