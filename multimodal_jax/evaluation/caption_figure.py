"""A PNG of images with their generated captions (green when right, red when wrong, black when
not judged) and the reference caption in grey below, drawn with PIL only."""

from typing import Optional
from typing import Sequence

import numpy as np
from PIL import Image
from PIL import ImageDraw

from multimodal_jax.evaluation.figures import default_font
from multimodal_jax.evaluation.figures import save_png
from multimodal_jax.evaluation.figures import wrap_text

_WHITE, _BLACK, _GREY = (255, 255, 255), (20, 20, 20), (120, 120, 120)
_GREEN, _RED, _LIGHT = (0, 128, 40), (200, 25, 25), (215, 215, 215)


def write(images_uint8, generated: Sequence[str], references: Sequence[str], path: str,
          correct: Optional[Sequence[bool]] = None, columns: int = 4, image_size: int = 96,
          cell_width: int = 220, font_size: int = 13, title: Optional[str] = None) -> str:
    """Saves the grid to ``path`` (images upscaled with nearest neighbour); returns ``path``."""
    images = np.asarray(images_uint8)
    n = len(images)
    if not (n == len(generated) == len(references)) or (correct is not None and len(correct) != n):
        raise ValueError(f"caption_figure.write needs one generated and one reference caption (and "
                         f"flag) per image; got {n} images, {len(generated)} generated, "
                         f"{len(references)} references.")
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}.")
    font, line_h, pad = default_font(font_size), int(font_size * 1.35), 10
    cells = [(wrap_text(g, font, cell_width), wrap_text("true: " + r, font, cell_width))
             for g, r in zip(generated, references)]
    cell_h = image_size + 6 + line_h * max(len(a) + len(b) for a, b in cells) + 4
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    title_h = int(font_size * 2) if title else 0
    canvas = Image.new("RGB", (columns * (cell_width + pad) + pad,
                               title_h + rows * (cell_h + pad) + pad), _WHITE)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, pad // 2), title, fill=_BLACK, font=default_font(int(font_size * 1.2)))
    for i, (gen_lines, ref_lines) in enumerate(cells):
        x = pad + (i % columns) * (cell_width + pad)
        y = title_h + pad + (i // columns) * (cell_h + pad)
        thumb = Image.fromarray(images[i]).resize((image_size, image_size), Image.NEAREST)
        canvas.paste(thumb, (x, y))
        draw.rectangle([x - 1, y - 1, x + image_size, y + image_size], outline=_LIGHT)
        colour = _BLACK if correct is None else (_GREEN if correct[i] else _RED)
        ty = y + image_size + 6
        for line in gen_lines:
            draw.text((x, ty), line, fill=colour, font=font)
            ty += line_h
        for line in ref_lines:
            draw.text((x, ty), line, fill=_GREY, font=font)
            ty += line_h
    save_png(canvas, path)
    return path
