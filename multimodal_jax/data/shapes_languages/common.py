"""What every language of the multilingual captions shares: drawing a template or a word.

A word table lists the canonical word first and its synonyms after it; captions use the
canonical word most of the time (as the English captions do), so zero-shot prompts written
with canonical words are in distribution.
"""

from typing import Sequence
from typing import TypeVar

import numpy as np

from multimodal_jax.data.shapes_captions import CANONICAL_P

T = TypeVar("T")


def choose(rng: np.random.Generator, options: Sequence[T]) -> T:
    """One of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def word(rng: np.random.Generator, words: Sequence[T], canonical_p: float = CANONICAL_P) -> T:
    """The canonical (first) entry with probability ``canonical_p``, else a synonym."""
    if len(words) == 1 or rng.random() < canonical_p:
        return words[0]
    return choose(rng, words[1:])
