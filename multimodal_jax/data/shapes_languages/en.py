"""English: the built-in dataset's own word tables and templates (``shapes_captions``).

Single-object captions take their content (size and position mentioned or not) from the
caller, so that every language of an example says the same thing; word and template choices
are English's own. Zero-shot prompts put the right article before the class name ("an orange
circle").
"""

from typing import Optional
from typing import Tuple

import numpy as np

from multimodal_jax.data import shapes_captions as C
from multimodal_jax.data.shapes_languages.common import choose

CODE, NAME = "en", "English"

_PROMPTS = ("{np}.", "a photo of {np}.", "a picture of {np}.", "an image of {np}.",
            "a drawing of {np}.", "a rendering of {np}.", "there is {np} in the picture.",
            "the image shows {np}.")


def single_caption(rng: np.random.Generator, shape: str, color: str, size: Optional[str],
                   position: Optional[str]) -> str:
    """"a small crimson disc on the left."; size and position only when given."""
    np_ = C.noun_phrase(rng, shape, color, size or "")
    if position is None:
        return choose(rng, C.SINGLE_TEMPLATES).format(np=np_)
    pos = choose(rng, C.POSITION_PHRASES[position])
    return choose(rng, C.SINGLE_POSITION_TEMPLATES).format(np=np_, pos=pos)


def pair_caption(rng: np.random.Generator, first: Tuple[str, str], second: Tuple[str, str],
                 relation: str) -> str:
    """"a red circle to the left of a blue square."; objects are (shape, colour)."""
    return C.pair_caption(rng, first, second, relation)


def zeroshot_prompts(shape: str, color: str) -> Tuple[str, ...]:
    """The class's prompts with canonical words: "a photo of an orange circle.", ..."""
    return tuple(t.format(np=_canonical(shape, color)) for t in _PROMPTS)


def _canonical(shape: str, color: str) -> str:
    """"a red circle", "an orange ring"."""
    phrase = f"{C.COLOR_WORDS[color][0]} {C.SHAPE_WORDS[shape][0]}"
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase
