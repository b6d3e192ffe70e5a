"""Captions for the captioned-shapes dataset, built from object attributes.

Templates and synonyms vary per example (drawn from the example's rng) so a text model
must read the words rather than match one string per class; two-object captions put
object 1 first and bind each colour to its shape, so swapping words changes the meaning.
The canonical words ("red", "circle") dominate, so zero-shot prompts built from
CLASS_NAMES and ZEROSHOT_TEMPLATES are in distribution.
"""

import re
from typing import Dict
from typing import List
from typing import Sequence
from typing import Tuple

import numpy as np

from multimodal_jax.data.shapes_render import COLORS
from multimodal_jax.data.shapes_render import SHAPES

# Canonical word first; the others are synonyms.
SHAPE_WORDS: Dict[str, Tuple[str, ...]] = {
    "circle": ("circle", "disc", "disk"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "wedge"),
    "diamond": ("diamond", "rhombus", "lozenge"),
    "star": ("star", "pentagram"),
    "cross": ("cross", "plus"),
    "ring": ("ring", "donut", "hoop"),
    "crescent": ("crescent", "moon", "sickle"),
}
COLOR_WORDS: Dict[str, Tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet"),
    "green": ("green", "emerald", "lime"),
    "blue": ("blue", "azure", "cobalt"),
    "yellow": ("yellow", "golden", "lemon"),
    "cyan": ("cyan", "turquoise", "aqua"),
    "magenta": ("magenta", "pink", "fuchsia"),
    "orange": ("orange", "amber", "tangerine"),
    "white": ("white", "ivory", "snowy"),
}
SIZE_WORDS: Dict[str, Tuple[str, ...]] = {
    "small": ("small", "little", "tiny"),
    "large": ("large", "big", "huge"),
}
POSITION_PHRASES: Dict[str, Tuple[str, ...]] = {
    "centre": ("in the centre", "in the center", "in the middle"),
    "left": ("on the left", "at the left", "on the left side", "in the left half"),
    "right": ("on the right", "at the right", "on the right side", "in the right half"),
    "top": ("at the top", "near the top", "in the upper half"),
    "bottom": ("at the bottom", "near the bottom", "in the lower half"),
}
RELATION_PHRASES: Dict[str, Tuple[str, ...]] = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}
# Where object 2 is as seen from object 1 ("a red circle with a blue square to its right").
RELATION_TAILS = {
    "left of": ("to its right", "on its right"),
    "right of": ("to its left", "on its left"),
    "above": ("below it", "under it"),
    "below": ("above it", "over it"),
}
# (side of object 1, side of object 2) for "on the left a ..., on the right a ...".
RELATION_SIDES = {
    "left of": ("on the left", "on the right"),
    "right of": ("on the right", "on the left"),
    "above": ("at the top", "at the bottom"),
    "below": ("at the bottom", "at the top"),
}

SINGLE_TEMPLATES = (
    "{np}",
    "{np}.",
    "a photo of {np}.",
    "a picture of {np}.",
    "an image of {np}.",
    "a drawing of {np}.",
    "a rendering of {np}.",
    "there is {np} in the picture.",
    "the image shows {np}.",
    "a simple picture of {np}.",
)
SINGLE_POSITION_TEMPLATES = (
    "{np} {pos}.",
    "there is {np} {pos}.",
    "a photo of {np} {pos}.",
    "the image shows {np} {pos}.",
    "{pos} there is {np}.",
)
PAIR_TEMPLATES = (
    "{np1} {rel} {np2}",
    "{np1} {rel} {np2}.",
    "a photo of {np1} {rel} {np2}.",
    "there is {np1} {rel} {np2}.",
    "{np1} is {rel} {np2}.",
    "the image shows {np1} {rel} {np2}.",
    "{np1} with {np2} {tail}.",
    "{side1} {np1}, {side2} {np2}.",
)

CLASS_NAMES: Tuple[str, ...] = tuple(f"{c} {s}" for s in SHAPES for c in COLORS)
ZEROSHOT_TEMPLATES: Tuple[str, ...] = (
    "a {}.",
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a drawing of a {}.",
    "a rendering of a {}.",
    "there is a {} in the picture.",
    "the image shows a {}.",
)

CANONICAL_P = 0.7  # probability of the canonical colour / shape word
SIZE_P = 0.5  # probability that a single-object caption mentions the size
POSITION_P = 0.4  # probability that a single-object caption mentions the position


def class_label(shape: str, color: str) -> int:
    """Index of "colour shape" in CLASS_NAMES: shape_idx * len(COLORS) + color_idx."""
    return SHAPES.index(shape) * len(COLORS) + COLORS.index(color)


def _choose(rng: np.random.Generator, options: Sequence[str]) -> str:
    """One of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def _word(rng: np.random.Generator, words: Sequence[str], canonical_p: float) -> str:
    """The canonical (first) word with probability canonical_p, else a synonym."""
    if len(words) == 1 or rng.random() < canonical_p:
        return words[0]
    return _choose(rng, words[1:])


def _with_article(phrase: str) -> str:
    """Prefixes "a" or "an": "a red circle", "an orange ring"."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def noun_phrase(rng: np.random.Generator, shape: str, color: str, size: str = "") -> str:
    """E.g. "a red circle", "a small crimson disc", "an orange ring" (size optional)."""
    words = [_word(rng, COLOR_WORDS[color], CANONICAL_P),
             _word(rng, SHAPE_WORDS[shape], CANONICAL_P)]
    if size:
        words.insert(0, _word(rng, SIZE_WORDS[size], 0.5))
    return _with_article(" ".join(words))


def single_caption(rng: np.random.Generator, shape: str, color: str, size: str,
                   position: str) -> str:
    """A caption for a one-object image; size and position are mentioned at random."""
    np_ = noun_phrase(rng, shape, color, size if rng.random() < SIZE_P else "")
    if rng.random() >= POSITION_P:
        return _choose(rng, SINGLE_TEMPLATES).format(np=np_)
    pos = _choose(rng, POSITION_PHRASES[position])
    return _choose(rng, SINGLE_POSITION_TEMPLATES).format(np=np_, pos=pos)


def pair_caption(rng: np.random.Generator, first: Tuple[str, str], second: Tuple[str, str],
                 relation: str) -> str:
    """A caption for "object 1 <relation> object 2"; objects are (shape, colour) pairs.

    Object 1 is always mentioned first.
    """
    np1 = noun_phrase(rng, *first)
    np2 = noun_phrase(rng, *second)
    side1, side2 = RELATION_SIDES[relation]
    template = _choose(rng, PAIR_TEMPLATES)
    return template.format(
        np1=np1, np2=np2, rel=_choose(rng, RELATION_PHRASES[relation]),
        tail=_choose(rng, RELATION_TAILS[relation]), side1=side1, side2=side2)


_COLOR_OF_WORD = {w: c for c, ws in COLOR_WORDS.items() for w in ws}
_SHAPE_OF_WORD = {w: s for s, ws in SHAPE_WORDS.items() for w in ws}


def parse_objects(caption: str) -> List[Tuple[str, str]]:
    """(shape, colour) of each object in order of mention; the inverse of the captions."""
    objects, color = [], None
    for word in re.findall(r"[a-z]+", caption.lower()):
        if word in _COLOR_OF_WORD:
            color = _COLOR_OF_WORD[word]
        elif word in _SHAPE_OF_WORD:
            objects.append((_SHAPE_OF_WORD[word], color))
            color = None
    return objects


def vocabulary() -> List[str]:
    """Every word any caption or zero-shot prompt can contain, sorted."""
    texts = [*SINGLE_TEMPLATES, *SINGLE_POSITION_TEMPLATES, *PAIR_TEMPLATES,
             *ZEROSHOT_TEMPLATES, "a an"]
    for table in (SHAPE_WORDS, COLOR_WORDS, SIZE_WORDS, POSITION_PHRASES, RELATION_PHRASES,
                  RELATION_TAILS, RELATION_SIDES):
        texts.extend(" ".join(v) for v in table.values())
    words = set()
    for text in texts:
        words.update(re.findall(r"[a-z]+", re.sub(r"\{\w*\}", " ", text)))
    return sorted(words)
