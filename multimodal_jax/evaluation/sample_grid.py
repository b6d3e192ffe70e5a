"""A PNG grid of generated images with the caption each was generated from under it."""

from typing import Sequence

import numpy as np
from PIL import Image
from PIL import ImageDraw

from multimodal_jax.evaluation.figures import default_font
from multimodal_jax.evaluation.figures import save_png
from multimodal_jax.evaluation.figures import wrap_text

_WHITE, _BLACK = (255, 255, 255), (30, 30, 30)


def write(images_uint8, captions: Sequence[str], path: str, columns: int = 8,
          cell: int = 96, text_lines: int = 3, font_size: int = 11) -> None:
    """Writes ``images_uint8`` (``[N, H, W, 3]``) upscaled to ``cell`` px (nearest, so pixels
    stay visible), ``columns`` per row, each with its wrapped caption below."""
    images = np.asarray(images_uint8)
    n = len(images)
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    font, pad = default_font(font_size), 4
    text_h = text_lines * (font_size + 2) + pad
    canvas = Image.new("RGB", (columns * (cell + pad) + pad, rows * (cell + text_h + pad) + pad), _WHITE)
    draw = ImageDraw.Draw(canvas)
    for i, (image, caption) in enumerate(zip(images, captions)):
        x = pad + (i % columns) * (cell + pad)
        y = pad + (i // columns) * (cell + text_h + pad)
        canvas.paste(Image.fromarray(image).resize((cell, cell), Image.NEAREST), (x, y))
        for j, line in enumerate(wrap_text(caption, font, cell, text_lines)):
            draw.text((x, y + cell + 2 + j * (font_size + 2)), line, fill=_BLACK, font=font)
    save_png(canvas, path)
