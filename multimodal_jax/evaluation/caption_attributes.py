"""Attribute accuracy of generated captions on the built-in dataset: the shape, colour, size and
position words are read back from the text and compared with the image's features.

Per image (``judge``):
- ``shape_color``: the caption names exactly the image's objects as (shape, colour) pairs,
  synonyms included, in any order (which object of a pair the dataset calls "object 1" cannot
  be seen in the image); ``shape`` / ``color``: the same for shapes / colours alone;
- ``size`` / ``position`` (one-object images, whose captions may state them): the size word or
  position phrase the caption states, if any, is right (pairs are always small, and their
  position phrases describe the relation);
- ``all``: ``shape_color``, and every size or position the caption states is right.
"""

import re
from typing import Optional
from typing import Sequence

import numpy as np

from multimodal_jax.data import shapes_captions
from multimodal_jax.data.shapes_render import COLORS
from multimodal_jax.data.shapes_render import POSITIONS
from multimodal_jax.data.shapes_render import SHAPES
from multimodal_jax.data.shapes_render import SIZES

# Columns of the eval labels the captioning evaluation asks the pipeline for (label first).
LABEL_KEYS = ("label", "label2", "size", "position", "num_objects")
_SIZE_OF_WORD = {w: s for s, words in shapes_captions.SIZE_WORDS.items() for w in words}
_PHRASES = sorted(((p, pos) for pos, ps in shapes_captions.POSITION_PHRASES.items() for p in ps),
                  key=lambda item: -len(item[0]))


def _words(caption: str) -> list[str]:
    return re.findall(r"[a-z]+", caption.lower())


def read_size(caption: str) -> Optional[str]:
    """The size ("small" / "large") of the first size word in the caption, else None."""
    return next((_SIZE_OF_WORD[w] for w in _words(caption) if w in _SIZE_OF_WORD), None)


def read_position(caption: str) -> Optional[str]:
    """The position of the first position phrase in the caption (the longest one where several
    start at the same word), else None."""
    text = " " + " ".join(_words(caption)) + " "
    found = [(text.find(f" {p} "), -len(p), pos) for p, pos in _PHRASES if f" {p} " in text]
    return min(found)[2] if found else None


def _sorted(pairs) -> list:
    return sorted(pairs, key=lambda p: tuple(str(x) for x in p))


def judge(caption: str, objects: Sequence[tuple[str, str]], size: str, position: str) -> dict:
    """Which attributes ``caption`` gets right for an image of ``objects`` ((shape, colour)
    pairs); ``size`` / ``position`` are None where the caption does not state them."""
    read = shapes_captions.parse_objects(caption)
    single = len(objects) == 1
    stated_size = read_size(caption) if single else None
    stated_position = read_position(caption) if single else None
    out = {
        "shape": sorted(s for s, _ in read) == sorted(s for s, _ in objects),
        "color": sorted(str(c) for _, c in read) == sorted(c for _, c in objects),
        "shape_color": _sorted(read) == _sorted(objects),
        "size": None if stated_size is None else stated_size == size,
        "position": None if stated_position is None else stated_position == position,
    }
    out["all"] = out["shape_color"] and out["size"] is not False and out["position"] is not False
    return out


def image_attributes(row) -> tuple[list[tuple[str, str]], str, str]:
    """One eval label row (``LABEL_KEYS``) -> (objects, size, position)."""
    label, label2, size, position, _ = (int(v) for v in row)
    objects = [(SHAPES[label // len(COLORS)], COLORS[label % len(COLORS)])]
    if label2 >= 0:
        objects.append((SHAPES[label2 // len(COLORS)], COLORS[label2 % len(COLORS)]))
    return objects, SIZES[size], POSITIONS[position]


def attribute_metrics(captions: Sequence[str], labels) -> dict[str, float]:
    """Shares of images whose caption gets each attribute right (``attr_acc_*``). Size and
    position accuracies count the one-object captions that state them (``size_stated`` /
    ``position_stated``: how many do); ``attr_acc_shape_color_{1,2}obj`` split by object count."""
    labels = np.asarray(labels).reshape(len(captions), len(LABEL_KEYS))
    verdicts = [judge(c, *image_attributes(row)) for c, row in zip(captions, labels)]
    pairs = labels[:, 1] >= 0
    mean = lambda key, rows: float(np.mean([verdicts[i][key] for i in rows]))  # noqa: E731
    everyone = range(len(verdicts))
    out = {f"attr_acc_{k}": mean(k, everyone) for k in ("shape", "color", "shape_color", "all")}
    for count, rows in (("1obj", np.flatnonzero(~pairs)), ("2obj", np.flatnonzero(pairs))):
        if rows.size:
            out[f"attr_acc_shape_color_{count}"] = mean("shape_color", rows)
    singles = max(int(np.sum(~pairs)), 1)
    for key in ("size", "position"):
        stated = [v[key] for v in verdicts if v[key] is not None]
        out[f"{key}_stated"] = len(stated) / singles
        if stated:
            out[f"attr_acc_{key}"] = float(np.mean(stated))
    return out
