"""The languages of the built-in dataset's multilingual captions, one module each.

Every module has ``CODE`` (ISO 639-1) and ``NAME``, its own word tables (canonical word first,
then synonyms) and templates, and three functions:

    single_caption(rng, shape, color, size, position) -> str   # size / position: None = unsaid
    pair_caption(rng, (shape, color), (shape, color), relation) -> str
    zeroshot_prompts(shape, color) -> tuple of prompts with canonical words

The caller decides what a caption says (``shapes_multilingual``); the language decides how.
"""

from types import ModuleType
from typing import Dict
from typing import Tuple

from multimodal_jax.data.shapes_languages import de
from multimodal_jax.data.shapes_languages import en
from multimodal_jax.data.shapes_languages import es
from multimodal_jax.data.shapes_languages import fr
from multimodal_jax.data.shapes_languages import ja
from multimodal_jax.data.shapes_languages import ru
from multimodal_jax.data.shapes_languages import zh

LANGUAGES: Dict[str, ModuleType] = {m.CODE: m for m in (en, de, fr, es, ru, zh, ja)}
CODES: Tuple[str, ...] = tuple(LANGUAGES)


def language(code: str) -> ModuleType:
    """The module of language ``code``, or a ValueError listing the known codes."""
    if code not in LANGUAGES:
        raise ValueError(f"Unknown caption language {code!r}; the built-in dataset has {CODES}.")
    return LANGUAGES[code]
