"""Spanish: nouns with their gender, the colour after the noun and agreeing with it.

"un pequeño círculo rojo", "una pequeña estrella roja": article and size adjective before
the noun (the apocopated "gran" has one form), colour after it, each agreeing in gender;
invariable colour words ("naranja", "rosa", "verde lima") keep one form.
"""

from typing import Dict
from typing import Optional
from typing import Tuple

import numpy as np

from multimodal_jax.data.shapes_languages.common import choose
from multimodal_jax.data.shapes_languages.common import word

CODE, NAME = "es", "español"

# (noun, gender): m or f.
SHAPE_WORDS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "circle": (("círculo", "m"), ("disco", "m")),
    "square": (("cuadrado", "m"), ("bloque", "m")),
    "triangle": (("triángulo", "m"), ("cuña", "f")),
    "diamond": (("rombo", "m"), ("diamante", "m")),
    "star": (("estrella", "f"), ("pentagrama", "m")),
    "cross": (("cruz", "f"), ("signo más", "m")),
    "ring": (("anillo", "m"), ("aro", "m"), ("rosquilla", "f")),
    "crescent": (("media luna", "f"), ("luna creciente", "f"), ("hoz", "f")),
}
# (masculine, feminine) of each colour word.
COLOR_WORDS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "red": (("rojo", "roja"), ("carmesí", "carmesí"), ("escarlata", "escarlata")),
    "green": (("verde", "verde"), ("esmeralda", "esmeralda"), ("verde lima", "verde lima")),
    "blue": (("azul", "azul"), ("azul cobalto", "azul cobalto")),
    "yellow": (("amarillo", "amarilla"), ("dorado", "dorada"),
               ("amarillo limón", "amarillo limón")),
    "cyan": (("cian", "cian"), ("turquesa", "turquesa"), ("aguamarina", "aguamarina")),
    "magenta": (("magenta", "magenta"), ("rosa", "rosa"), ("fucsia", "fucsia")),
    "orange": (("naranja", "naranja"), ("anaranjado", "anaranjada"), ("ámbar", "ámbar")),
    "white": (("blanco", "blanca"), ("marfil", "marfil"), ("níveo", "nívea")),
}
SIZE_WORDS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "small": (("pequeño", "pequeña"), ("diminuto", "diminuta")),
    "large": (("gran", "gran"), ("enorme", "enorme")),
}
ARTICLE = {"m": "un", "f": "una"}

POSITION_PHRASES: Dict[str, Tuple[str, ...]] = {
    "centre": ("en el centro", "en el medio"),
    "left": ("a la izquierda", "en el lado izquierdo", "en la mitad izquierda"),
    "right": ("a la derecha", "en el lado derecho", "en la mitad derecha"),
    "top": ("arriba", "en la parte superior", "en la mitad superior"),
    "bottom": ("abajo", "en la parte inferior", "en la mitad inferior"),
}
RELATION_PHRASES: Dict[str, Tuple[str, ...]] = {
    "left of": ("a la izquierda de",),
    "right of": ("a la derecha de",),
    "above": ("encima de", "sobre", "por encima de"),
    "below": ("debajo de", "bajo", "por debajo de"),
}
RELATION_TAILS = {"left of": ("a su derecha",), "right of": ("a su izquierda",),
                  "above": ("debajo",), "below": ("encima",)}
RELATION_SIDES = {"left of": ("a la izquierda", "a la derecha"),
                  "right of": ("a la derecha", "a la izquierda"),
                  "above": ("arriba", "abajo"), "below": ("abajo", "arriba")}

SINGLE_TEMPLATES = (
    "{np}", "{np}.", "una foto de {np}.", "una imagen de {np}.", "un dibujo de {np}.",
    "una ilustración de {np}.", "hay {np} en la imagen.", "la imagen muestra {np}.",
    "se ve {np}.", "una imagen sencilla de {np}.",
)
SINGLE_POSITION_TEMPLATES = (
    "{np} {pos}.", "hay {np} {pos}.", "una foto de {np} {pos}.", "la imagen muestra {np} {pos}.",
    "{pos} hay {np}.",
)
PAIR_TEMPLATES = (
    "{np1} {rel} {np2}", "{np1} {rel} {np2}.", "una foto de {np1} {rel} {np2}.",
    "hay {np1} {rel} {np2}.", "{np1} está {rel} {np2}.", "la imagen muestra {np1} {rel} {np2}.",
    "{np1} con {np2} {tail}.", "{side1} {np1}, {side2} {np2}.",
)
PROMPTS = ("{np}.", "una foto de {np}.", "una imagen de {np}.", "un dibujo de {np}.",
           "hay {np} en la imagen.", "la imagen muestra {np}.", "se ve {np}.")


def noun_phrase(noun: str, gender: str, color: Tuple[str, str],
                size: Optional[Tuple[str, str]] = None) -> str:
    """"una pequeña estrella roja" from ("estrella", "f", ("rojo", "roja"), ("pequeño", ...))."""
    form = 0 if gender == "m" else 1
    return " ".join([ARTICLE[gender], *([size[form]] if size else []), noun, color[form]])


def _object(rng: np.random.Generator, shape: str, color: str, size: Optional[str] = None) -> str:
    """An object's noun phrase with drawn words."""
    color_word = word(rng, COLOR_WORDS[color])
    size_word = word(rng, SIZE_WORDS[size], 0.5) if size else None
    noun, gender = word(rng, SHAPE_WORDS[shape])
    return noun_phrase(noun, gender, color_word, size_word)


def single_caption(rng: np.random.Generator, shape: str, color: str, size: Optional[str],
                   position: Optional[str]) -> str:
    """"hay una pequeña estrella roja a la izquierda."; size and position only when given."""
    np_ = _object(rng, shape, color, size)
    if position is None:
        return choose(rng, SINGLE_TEMPLATES).format(np=np_)
    pos = choose(rng, POSITION_PHRASES[position])
    return choose(rng, SINGLE_POSITION_TEMPLATES).format(np=np_, pos=pos)


def pair_caption(rng: np.random.Generator, first: Tuple[str, str], second: Tuple[str, str],
                 relation: str) -> str:
    """"un círculo rojo a la izquierda de un cuadrado azul."; object 1 is named first."""
    np1, np2 = _object(rng, *first), _object(rng, *second)
    side1, side2 = RELATION_SIDES[relation]
    template = choose(rng, PAIR_TEMPLATES)
    return template.format(np1=np1, np2=np2, rel=choose(rng, RELATION_PHRASES[relation]),
                           tail=choose(rng, RELATION_TAILS[relation]), side1=side1, side2=side2)


def zeroshot_prompts(shape: str, color: str) -> Tuple[str, ...]:
    """The class's prompts with canonical words: "una foto de una estrella roja.", ..."""
    noun, gender = SHAPE_WORDS[shape][0]
    np_ = noun_phrase(noun, gender, COLOR_WORDS[color][0])
    return tuple(t.format(np=np_) for t in PROMPTS)
