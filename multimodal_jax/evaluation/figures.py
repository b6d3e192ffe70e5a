"""PNG figures for evaluation results, drawn with PIL only: a retrieval grid, a confusion heat map,
a table of scores, and relevance maps over images (``relevance_overlay``, ``relevance_grid``).

They are meant to be looked at next to the numbers: which captions an image retrieves and
which classes the model mixes up. Text uses PIL's default font (scalable in Pillow >= 10.1).
"""

from typing import List
from typing import Optional
from typing import Sequence
from typing import Tuple

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

from multimodal_jax import paths

_WHITE, _BLACK = (255, 255, 255), (20, 20, 20)
_GREY, _LIGHT = (110, 110, 110), (215, 215, 215)
_GREEN, _RED = (0, 128, 40), (200, 25, 25)
# Sequential white -> dark blue colour map (ColorBrewer "Blues" anchors).
_BLUES = np.array([(255, 255, 255), (222, 235, 247), (158, 202, 225), (66, 146, 198),
                   (33, 113, 181), (8, 48, 107)], np.float64)
_EMPTY_ROW = (236, 236, 236)


def save_png(canvas: Image.Image, path: str) -> None:
    """Writes ``canvas`` as a PNG file at ``path``, local or in a bucket (``paths.py``)."""
    with paths.as_path(path).open("wb") as f:
        canvas.save(f, format="PNG")


def default_font(size: int):
    """PIL's default font at ``size`` px (a fixed small bitmap font on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def _text_width(font, text: str) -> float:
    return font.getlength(text)


def _split_word(word: str, font, width: float) -> List[str]:
    """A word too long for one line cut into pieces that fit (at least one character each)."""
    pieces = []
    while len(word) > 1 and _text_width(font, word) > width:
        cut = max([i for i in range(1, len(word)) if _text_width(font, word[:i]) <= width], default=1)
        pieces.append(word[:cut])
        word = word[cut:]
    return pieces + [word]


def wrap_text(text: str, font, width: float, max_lines: Optional[int] = None) -> List[str]:
    """Greedy word wrap to ``width`` pixels; a word longer than a line is split by characters.
    With ``max_lines``, the lines after it are dropped and the last kept one ends in an ellipsis."""
    lines, line = [], ""
    for word in (p for w in text.split() for p in _split_word(w, font, width)):
        candidate = f"{line} {word}" if line else word
        if line and _text_width(font, candidate) > width:
            lines.append(line)
            candidate = word
        line = candidate
    lines.append(line)
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:-1] + "…"
    return lines


def to_uint8(images, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo the input normalisation x = (pixel / 255 - mean) / std: uint8 [..., H, W, 3].

    mean and std are per channel on the [0, 1] scale, as in the data config (CLIP_MEAN, ...).
    """
    images = np.asarray(images, np.float32)
    pixels = (images * np.asarray(std, np.float32) + np.asarray(mean, np.float32)) * 255.0
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def _as_rgb_uint8(images) -> np.ndarray:
    """Images as uint8 [N, H, W, 3]; grayscale [N, H, W] or [N, H, W, 1] is repeated to RGB."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(
            f"Figures need uint8 images, got {images.dtype}. Use to_uint8(images, mean, std) "
            f"to undo the input normalisation first.")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be [N, H, W, 3] (or grayscale); got shape {images.shape}.")
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def _draw_mark(draw: ImageDraw.ImageDraw, x: int, y: int, size: int, ok: bool) -> None:
    """A check mark (ok) or a cross, so right/wrong reads without colour too."""
    w = max(2, size // 6)
    if ok:
        draw.line([(x, y + size * 0.55), (x + size * 0.38, y + size * 0.9), (x + size, y + size * 0.1)],
                  fill=_GREEN, width=w, joint="curve")
    else:
        pad = size * 0.12
        draw.line([(x + pad, y + pad), (x + size - pad, y + size - pad)], fill=_RED, width=w)
        draw.line([(x + pad, y + size - pad), (x + size - pad, y + pad)], fill=_RED, width=w)


def _cell_lines(caption: str, retrieved: Sequence[str], correct: Sequence[bool], font,
                width: float, indent: float) -> List[Tuple[str, str, float, Optional[bool]]]:
    """The cell's text as (kind, text, x offset, correct) lines, wrapped to the cell width."""
    lines = [("label", "caption", 0.0, None)]
    lines += [("caption", t, 0.0, None) for t in wrap_text(caption, font, width)]
    lines.append(("label", f"top-{len(retrieved)} retrieved", 0.0, None))
    for rank, (text, ok) in enumerate(zip(retrieved, correct), 1):
        number = f"{rank}. "
        hang = _text_width(font, number)  # continuation lines line up with the text, not the number
        wrapped = wrap_text(text, font, width - indent - hang)
        kind = "hit" if ok else "miss"
        lines.append((kind, number + wrapped[0], indent, bool(ok)))
        lines += [(kind, t, indent + hang, None) for t in wrapped[1:]]
    return lines


def retrieval_grid(images, captions: Sequence[str], retrieved: Sequence[Sequence[str]],
                   correct: Sequence[Sequence[bool]], path: str, image_size: int = 96,
                   columns: int = 4, cell_width: int = 300, font_size: int = 13,
                   title: Optional[str] = None) -> str:
    """Save a grid PNG: each image (nearest-upscaled to image_size) above its true caption and
    its retrieved captions, green with a check if correct, red with a cross if not. Returns path."""
    images = _as_rgb_uint8(images)
    n = len(images)
    if not (len(captions) == len(retrieved) == len(correct) == n):
        raise ValueError(
            f"retrieval_grid needs one caption, one retrieved list and one correct list per image; "
            f"got {n} images, {len(captions)} captions, {len(retrieved)} retrieved, {len(correct)} correct.")
    for i, (r, c) in enumerate(zip(retrieved, correct)):
        if len(r) != len(c):
            raise ValueError(f"Image {i}: {len(r)} retrieved captions but {len(c)} correct flags.")
    if n == 0:
        raise ValueError("retrieval_grid got no images.")
    font, small = default_font(font_size), default_font(max(8, font_size - 2))
    line_h, pad = int(font_size * 1.35), 12
    cell_width = max(cell_width, image_size)
    indent = font_size * 1.4
    text_w = cell_width
    cells = [_cell_lines(captions[i], retrieved[i], correct[i], font, text_w, indent) for i in range(n)]
    labels_per_cell = [sum(kind == "label" for kind, *_ in lines) for lines in cells]
    cell_h = [image_size + 8 + line_h * len(lines) + 4 * k for lines, k in zip(cells, labels_per_cell)]
    columns = max(1, min(columns, n))
    rows = [list(range(r, min(r + columns, n))) for r in range(0, n, columns)]
    row_h = [max(cell_h[i] for i in row) for row in rows]
    title_h = int(font_size * 2.2) if title else 0
    width = columns * (cell_width + 2 * pad) + pad
    height = title_h + sum(h + 2 * pad for h in row_h) + pad

    canvas = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad + 4, pad), title, fill=_BLACK, font=default_font(int(font_size * 1.3)))
    y0 = title_h + pad
    for row, h in zip(rows, row_h):
        for col, i in enumerate(row):
            x = pad + col * (cell_width + 2 * pad)
            draw.rectangle([x, y0, x + cell_width + pad, y0 + h + pad], outline=_LIGHT, fill=_WHITE)
            cx, cy = x + pad // 2, y0 + pad // 2
            thumb = Image.fromarray(images[i]).resize((image_size, image_size), Image.NEAREST)
            canvas.paste(thumb, (cx, cy))
            draw.rectangle([cx - 1, cy - 1, cx + image_size, cy + image_size], outline=_LIGHT)
            ty = cy + image_size + 8
            for kind, text, dx, ok in cells[i]:
                if kind == "label":
                    ty += 4
                    draw.text((cx, ty + 1), text.upper(), fill=_GREY, font=small)
                else:
                    colour = {"caption": _BLACK, "hit": _GREEN, "miss": _RED}[kind]
                    if ok is not None:
                        _draw_mark(draw, cx + 1, ty + line_h * 0.2, int(font_size * 0.8), ok)
                    draw.text((cx + dx, ty), text, fill=colour, font=font)
                ty += line_h
        y0 += h + 2 * pad
    save_png(canvas, path)
    return path


def _colour(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 along the white -> dark-blue colour map."""
    pos = np.clip(values, 0.0, 1.0) * (len(_BLUES) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_BLUES) - 2)
    frac = (pos - lo)[..., None]
    return np.round(_BLUES[lo] * (1 - frac) + _BLUES[lo + 1] * frac).astype(np.uint8)


def _rotated_text(text: str, font, fill) -> Image.Image:
    """An RGBA image of ``text`` rotated 90 degrees counter-clockwise (reads bottom to top)."""
    left, top, right, bottom = font.getbbox(text)
    tile = Image.new("RGBA", (int(right) + 2, int(bottom) + 2), (0, 0, 0, 0))
    ImageDraw.Draw(tile).text((1, 1), text, fill=fill, font=font)
    return tile.rotate(90, expand=True)


def confusion_matrix_png(matrix, class_names: Sequence[str], path: str, title: Optional[str] = None,
                         group_size: Optional[int] = None, gamma: float = 0.5,
                         cell: Optional[int] = None) -> str:
    """Save a row-normalised confusion heat map (rows = true class, columns = predicted) as PNG.

    Colour = fraction of the row, shown with exponent ``gamma`` (0.5: small confusions stay
    visible; the colour bar is labelled in true fractions). Counts are printed in the cells
    when they are big enough; ``group_size`` draws separators every that many classes (8 for
    the shapes dataset, whose labels are shape-major). Returns path.
    """
    matrix = np.asarray(matrix, np.float64)
    c = len(class_names)
    if matrix.shape != (c, c):
        raise ValueError(f"matrix must be [C, C] for {c} class names; got shape {matrix.shape}.")
    if c == 0:
        raise ValueError("confusion_matrix_png got no classes.")
    cell = cell or int(np.clip(900 // c, 14, 48))
    font = default_font(int(np.clip(cell - 2, 10, 14)))
    big, title_font = default_font(15), default_font(18)
    row_sums = matrix.sum(axis=1, keepdims=True)
    fraction = np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0)

    label_w = int(max(font.getlength(name) for name in class_names)) + 8
    total = matrix.sum()
    accuracy = np.trace(matrix) / total if total else float("nan")
    header = title or "Confusion matrix"
    sub = f"{c} classes, {int(total)} examples, accuracy {accuracy:.1%}; each row normalised"
    if (row_sums == 0).any():
        sub += f"; grey rows: no examples ({int((row_sums == 0).sum())})"
    pad, bar_w = 16, 16
    left = pad + 24 + label_w
    top = pad + 52
    grid = c * cell
    bar_h = max(grid, 220)  # the colour bar keeps readable ticks even for a few classes
    width = max(left + grid + pad + 20 + bar_w + 64, pad * 2 + int(default_font(12).getlength(sub)))
    height = max(top + grid + 6 + label_w + 28, top + bar_h) + pad

    canvas = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, pad), header, fill=_BLACK, font=title_font)
    draw.text((pad, pad + 26), sub, fill=_GREY, font=default_font(12))

    # Heat map: one block per cell, upscaled with nearest neighbour.
    rgb = _colour(fraction ** gamma)
    rgb[row_sums[:, 0] == 0] = _EMPTY_ROW
    heat = Image.fromarray(rgb).resize((grid, grid), Image.NEAREST)
    canvas.paste(heat, (left, top))
    faint = (238, 238, 238) if cell < 28 else (250, 250, 250)
    for k in range(1, c):  # faint cell lines help follow a row or column across the map
        draw.line([(left + k * cell, top), (left + k * cell, top + grid)], fill=faint)
        draw.line([(left, top + k * cell), (left + grid, top + k * cell)], fill=faint)
    if cell >= 28:
        for i in range(c):
            for j in range(c):
                if matrix[i, j]:
                    value = matrix[i, j]
                    text = f"{int(value)}" if value == int(value) else f"{value:.2g}"
                    colour = _WHITE if fraction[i, j] ** gamma > 0.55 else _BLACK
                    draw.text((left + j * cell + cell / 2, top + i * cell + cell / 2), text,
                              fill=colour, font=font, anchor="mm")
    if group_size and 0 < group_size < c:
        for k in range(group_size, c, group_size):
            draw.line([(left + k * cell, top), (left + k * cell, top + grid)], fill=_GREY, width=1)
            draw.line([(left, top + k * cell), (left + grid, top + k * cell)], fill=_GREY, width=1)
    draw.rectangle([left - 1, top - 1, left + grid, top + grid], outline=_GREY)

    # Row labels (true class) to the left, column labels (predicted) below, rotated.
    for i, name in enumerate(class_names):
        draw.text((left - 6, top + i * cell + cell / 2), name, fill=_BLACK, font=font, anchor="rm")
        tile = _rotated_text(name, font, _BLACK)
        x = int(left + i * cell + (cell - tile.width) / 2)
        canvas.paste(tile, (x, top + grid + 6 + label_w - tile.height), tile)
    draw.text((left + grid / 2, top + grid + 10 + label_w), "predicted class",
              fill=_BLACK, font=big, anchor="mt")
    axis = _rotated_text("true class", big, _BLACK)
    canvas.paste(axis, (pad, int(top + grid / 2 - axis.height / 2)), axis)

    # Colour bar with ticks at true fractions.
    bx = left + grid + pad + 20
    ramp = np.linspace(1.0, 0.0, bar_h)[:, None]
    canvas.paste(Image.fromarray(np.repeat(_colour(ramp), bar_w, axis=1)), (bx, top))
    draw.rectangle([bx - 1, top - 1, bx + bar_w, top + bar_h], outline=_GREY)
    tick_font = default_font(11)
    for value in (0.0, 0.05, 0.25, 0.5, 1.0):
        y = top + (1.0 - value ** gamma) * (bar_h - 1)
        draw.line([(bx + bar_w, y), (bx + bar_w + 4, y)], fill=_GREY)
        draw.text((bx + bar_w + 7, y), f"{value:g}", fill=_BLACK, font=tick_font, anchor="lm")
    bar_label = _rotated_text("fraction of true class", tick_font, _GREY)
    canvas.paste(bar_label, (bx + bar_w + 42, int(top + bar_h / 2 - bar_label.height / 2)), bar_label)
    save_png(canvas, path)
    return path


def score_table_png(values, row_labels: Sequence[str], col_labels: Sequence[str], path: str,
                    title: str, subtitle: str = "", cell: int = 56) -> str:
    """Save a table of scores in [0, 1] as a heat map with the percentages written in its cells
    (NaN cells grey, marked "-"); rows and columns labelled. Returns path."""
    values = np.asarray(values, np.float64)
    if values.shape != (len(row_labels), len(col_labels)) or not values.size:
        raise ValueError(f"values must be [{len(row_labels)}, {len(col_labels)}] for the labels "
                         f"given; got shape {values.shape}.")
    font, title_font, small = default_font(13), default_font(18), default_font(12)
    pad = 16
    label_w = int(max(font.getlength(label) for label in row_labels)) + 10
    left, top = pad + label_w, pad + 52 + 22
    width = max(left + cell * len(col_labels) + pad,
                pad * 2 + int(max(title_font.getlength(title), small.getlength(subtitle))))
    height = top + cell * len(row_labels) + pad
    canvas = Image.new("RGB", (width, height), _WHITE)
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, pad), title, fill=_BLACK, font=title_font)
    draw.text((pad, pad + 26), subtitle, fill=_GREY, font=small)
    missing = np.isnan(values)
    rgb = _colour(np.where(missing, 0.0, values))
    rgb[missing] = _EMPTY_ROW
    for i, row in enumerate(values):
        draw.text((left - 8, top + i * cell + cell / 2), row_labels[i], fill=_BLACK, font=font,
                  anchor="rm")
        for j, value in enumerate(row):
            x, y = left + j * cell, top + i * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=tuple(int(c) for c in rgb[i, j]),
                           outline=_LIGHT)
            text = "-" if np.isnan(value) else f"{100 * value:.1f}"
            colour = _WHITE if not np.isnan(value) and value > 0.55 else _BLACK
            draw.text((x + cell / 2, y + cell / 2), text, fill=colour, font=font, anchor="mm")
    for j, label in enumerate(col_labels):
        draw.text((left + j * cell + cell / 2, top - 6), label, fill=_BLACK, font=font, anchor="mb")
    save_png(canvas, path)
    return path


# Dark -> red -> yellow -> white ("hot"), for relevance maps over an image.
_HOT = np.array([(0, 0, 0), (120, 0, 10), (220, 40, 0), (255, 170, 0), (255, 255, 160)], np.float64)


def heat(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB along the dark -> red -> yellow -> white map."""
    pos = np.clip(values, 0.0, 1.0) * (len(_HOT) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_HOT) - 2)
    frac = (pos - lo)[..., None]
    return np.round(_HOT[lo] * (1 - frac) + _HOT[lo + 1] * frac).astype(np.uint8)


def relevance_overlay(image, relevance, scale: int = 8, alpha: float = 0.6) -> np.ndarray:
    """uint8 ``[H*scale, W*scale, 3]``: ``image`` (uint8 ``[H, W, 3]``) under its relevance map
    (``[gh, gw]`` over patches, min-max scaled, each patch one flat block: the map's own
    resolution), blended with weight ``alpha``."""
    image = _as_rgb_uint8(np.asarray(image)[None])[0]
    relevance = np.asarray(relevance, np.float64)
    span = relevance.max() - relevance.min()
    scaled = (relevance - relevance.min()) / span if span > 0 else np.zeros_like(relevance)
    height, width = image.shape[:2]
    blocks = np.kron(scaled, np.ones((height // scaled.shape[0], width // scaled.shape[1])))
    big = np.kron(image, np.ones((scale, scale, 1), np.uint8))
    colours = np.kron(heat(blocks), np.ones((scale, scale, 1), np.uint8))
    return np.round((1 - alpha) * big + alpha * colours).astype(np.uint8)


def _peak_box(relevance, size: int) -> tuple:
    """The pixel box ``(x0, y0, x1, y1)`` of the map's peak patch in a ``size`` px square."""
    relevance = np.asarray(relevance)
    row, col = np.unravel_index(int(np.argmax(relevance)), relevance.shape)
    ph, pw = size / relevance.shape[0], size / relevance.shape[1]
    return (col * pw, row * ph, (col + 1) * pw - 1, (row + 1) * ph - 1)


def relevance_grid(images, prompts: Sequence[str], maps: dict, path: str, masks=None,
                   scale: int = 6) -> str:
    """A PNG: one row per image and prompt, the image (its target object's outline in green
    when ``masks`` are given) then each method's overlay with its peak patch boxed (green when
    the peak holds part of the target, red when not). ``maps``: ``{method: [N, gh, gw]}``."""
    images = _as_rgb_uint8(images)
    size = images.shape[1] * scale
    font, small = default_font(13), default_font(11)
    pad, label_h, gap = 10, 34, 6
    columns = ["image"] + list(maps)
    width = pad * 2 + len(columns) * (size + gap)
    canvas = Image.new("RGB", (width, pad + 18 + len(images) * (size + label_h) + pad), _WHITE)
    draw = ImageDraw.Draw(canvas)
    for j, name in enumerate(columns):
        draw.text((pad + j * (size + gap) + size / 2, pad), name, fill=_BLACK, font=font, anchor="mt")
    for i, image in enumerate(images):
        y = pad + 18 + i * (size + label_h)
        target = None if masks is None else np.asarray(masks[i], bool)
        tiles = [np.kron(image, np.ones((scale, scale, 1), np.uint8))]
        tiles += [relevance_overlay(image, maps[m][i], scale) for m in maps]
        for j, tile in enumerate(tiles):
            x = pad + j * (size + gap)
            canvas.paste(Image.fromarray(tile), (x, y))
            if j == 0 and target is not None:
                _outline(draw, target, x, y, scale)
            elif j > 0:
                box = _peak_box(maps[columns[j]][i], size)
                hit = None if target is None else bool(_covers(target, maps[columns[j]][i]))
                colour = _BLACK if hit is None else (_GREEN if hit else _RED)
                draw.rectangle([x + box[0], y + box[1], x + box[2], y + box[3]], outline=colour, width=2)
        for k, line in enumerate(wrap_text(prompts[i], small, width - 2 * pad, max_lines=2)):
            draw.text((pad, y + size + 3 + 13 * k), line, fill=_BLACK, font=small)
    save_png(canvas, path)
    return path


def _covers(mask: np.ndarray, relevance) -> bool:
    """Whether the peak patch of ``relevance`` holds any pixel of ``mask``."""
    relevance = np.asarray(relevance)
    row, col = np.unravel_index(int(np.argmax(relevance)), relevance.shape)
    ph, pw = mask.shape[0] // relevance.shape[0], mask.shape[1] // relevance.shape[1]
    return bool(mask[row * ph:(row + 1) * ph, col * pw:(col + 1) * pw].any())


def _outline(draw: ImageDraw.ImageDraw, mask: np.ndarray, x: int, y: int, scale: int) -> None:
    """Marks the border pixels of ``mask`` (scaled by ``scale``) in green."""
    inner = mask.copy()
    inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    for r, c in zip(*np.nonzero(mask & ~inner)):
        draw.rectangle([x + c * scale, y + r * scale, x + (c + 1) * scale - 1, y + (r + 1) * scale - 1],
                       outline=_GREEN)

