"""Parallel captions of one scene in several languages, and the transfer split of one of them.

What a caption says (the objects, and for one object whether it mentions the size and the
position) is drawn once per example, so the captions of an example are translations of one
another and its ``gloss`` names their shared meaning; how each language says it (template,
synonyms) is drawn from that language's own stream, seeded by the example and the language
code, so adding a language changes no other language's captions.

Transfer: in the ``xfer_language``, training captions never mention a (shape, colour) pair of
the builder's ``XFER_PAIRS`` (``checkerboard_pairs``: half of the pairs training shows); the
other languages mention every pair. A train example that shows such a pair has an empty
caption in that language.
"""

import dataclasses
from typing import Dict
from typing import FrozenSet
from typing import Optional
from typing import Sequence
from typing import Tuple

import numpy as np

from multimodal_jax.data.shapes_captions import POSITION_P
from multimodal_jax.data.shapes_captions import SIZE_P
from multimodal_jax.data.shapes_languages import language
from multimodal_jax.data.shapes_render import COLORS
from multimodal_jax.data.shapes_render import SHAPES

Pair = Tuple[str, str]  # (shape, colour)


def checkerboard_pairs(excluded: Sequence[Pair]) -> FrozenSet[Pair]:
    """(shape, colour) pairs whose indices sum to an even number, less ``excluded``: each
    shape keeps about half of its colours and each colour about half of its shapes."""
    return frozenset((s, c) for i, s in enumerate(SHAPES) for j, c in enumerate(COLORS)
                     if (i + j) % 2 == 0 and (s, c) not in excluded)


@dataclasses.dataclass(frozen=True)
class Content:
    """What every language's caption of one example says."""

    first: Pair
    second: Optional[Pair] = None  # object 2, None for one object
    relation: str = "none"
    size: Optional[str] = None  # mentioned size of a lone object, None if unsaid
    position: Optional[str] = None  # mentioned position of a lone object, None if unsaid

    def pairs(self) -> Tuple[Pair, ...]:
        """The (shape, colour) pairs the caption names."""
        return (self.first,) if self.second is None else (self.first, self.second)

    def gloss(self) -> str:
        """The meaning in canonical English words: "small red circle, left",
        "red circle left of blue square"; equal glosses mean interchangeable captions."""
        (shape, color) = self.first
        if self.second is not None:
            return f"{color} {shape} {self.relation} {self.second[1]} {self.second[0]}"
        words = [w for w in (self.size, color, shape) if w]
        return " ".join(words) + (f", {self.position}" if self.position else "")


def sample_content(rng: np.random.Generator, scene: Dict) -> Content:
    """The content of a scene's captions (size and position of one object said at random, with
    the English captions' probabilities)."""
    if scene["second"] is not None:
        return Content(scene["first"], scene["second"], scene["relation"])
    size = scene["size"] if rng.random() < SIZE_P else None
    position = scene["position"] if rng.random() < POSITION_P else None
    return Content(scene["first"], size=size, position=position)


def language_seed(code: str) -> int:
    """A fixed number per language code, salting its stream ("en" -> 25966)."""
    return int.from_bytes(code.encode("ascii"), "big")


def caption(rng: np.random.Generator, code: str, content: Content) -> str:
    """``content`` said in language ``code``."""
    module = language(code)
    if content.second is not None:
        return module.pair_caption(rng, content.first, content.second, content.relation)
    return module.single_caption(rng, *content.first, content.size, content.position)


def captions(seed: Sequence[int], languages: Sequence[str], content: Content,
             withheld: FrozenSet[str] = frozenset()) -> Tuple[str, ...]:
    """One caption per language (in ``languages`` order), each from the stream
    ``default_rng([*seed, language_seed(code)])``; "" for the ``withheld`` languages."""
    return tuple("" if code in withheld else
                 caption(np.random.default_rng([*seed, language_seed(code)]), code, content)
                 for code in languages)


def withheld_languages(split: str, content: Content, xfer_language: str,
                       xfer_pairs: FrozenSet[Pair]) -> FrozenSet[str]:
    """The languages with no caption for this example: the transfer language, on a train
    example that names one of its withheld pairs."""
    if split == "train" and xfer_language and set(content.pairs()) & xfer_pairs:
        return frozenset({xfer_language})
    return frozenset()


def zeroshot_prompts(code: str) -> Tuple[Tuple[str, ...], ...]:
    """Prompts per class in label order (shape-major, as ``class_label``) in language ``code``."""
    module = language(code)
    return tuple(module.zeroshot_prompts(s, c) for s in SHAPES for c in COLORS)

