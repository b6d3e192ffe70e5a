"""German: nouns with their gender, adjectives declined after the indefinite article.

A noun phrase is rendered in the case its slot governs: nominative ("auf dem Bild ist ein
roter Kreis"), accusative ("das Bild zeigt einen roten Kreis"), dative ("ein Foto von einer
roten Raute", "links von einem blauen Quadrat"). Adjectives take the mixed declension after
"ein/eine/ein": -er/-e/-es (nominative), -en/-e/-es (accusative), -en (dative). Nouns are
capitalised; captions start in lower case like the English ones.
"""

from typing import Dict
from typing import Optional
from typing import Tuple

import numpy as np

from multimodal_jax.data.shapes_languages.common import choose
from multimodal_jax.data.shapes_languages.common import word

CODE, NAME = "de", "Deutsch"

# (noun, gender): m, f or n.
SHAPE_WORDS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "circle": (("Kreis", "m"), ("Scheibe", "f")),
    "square": (("Quadrat", "n"), ("Viereck", "n"), ("Kästchen", "n")),
    "triangle": (("Dreieck", "n"), ("Keil", "m")),
    "diamond": (("Raute", "f"), ("Rhombus", "m"), ("Karo", "n")),
    "star": (("Stern", "m"), ("Pentagramm", "n")),
    "cross": (("Kreuz", "n"), ("Pluszeichen", "n")),
    "ring": (("Ring", "m"), ("Reif", "m"), ("Kringel", "m")),
    "crescent": (("Halbmond", "m"), ("Mondsichel", "f"), ("Sichel", "f")),
}
# Adjective stems, declined by ENDING ("rot" -> "roter", "cyanfarben" -> "cyanfarbener").
COLOR_WORDS: Dict[str, Tuple[str, ...]] = {
    "red": ("rot", "karminrot", "scharlachrot"),
    "green": ("grün", "smaragdgrün", "limonengrün"),
    "blue": ("blau", "azurblau", "kobaltblau"),
    "yellow": ("gelb", "goldgelb", "zitronengelb"),
    "cyan": ("cyanfarben", "türkisfarben", "türkisblau"),
    "magenta": ("magentafarben", "pinkfarben", "rosafarben"),
    "orange": ("orangefarben", "bernsteinfarben"),
    "white": ("weiß", "elfenbeinfarben", "schneeweiß"),
}
SIZE_WORDS: Dict[str, Tuple[str, ...]] = {
    "small": ("klein", "winzig"),
    "large": ("groß", "riesig"),
}
ARTICLE = {("m", "nom"): "ein", ("m", "acc"): "einen", ("m", "dat"): "einem",
           ("f", "nom"): "eine", ("f", "acc"): "eine", ("f", "dat"): "einer",
           ("n", "nom"): "ein", ("n", "acc"): "ein", ("n", "dat"): "einem"}
ENDING = {("m", "nom"): "er", ("m", "acc"): "en", ("m", "dat"): "en",
          ("f", "nom"): "e", ("f", "acc"): "e", ("f", "dat"): "en",
          ("n", "nom"): "es", ("n", "acc"): "es", ("n", "dat"): "en"}
CASES = ("nom", "acc", "dat")

POSITION_PHRASES: Dict[str, Tuple[str, ...]] = {
    "centre": ("in der Mitte", "im Zentrum"),
    "left": ("links", "auf der linken Seite", "in der linken Hälfte"),
    "right": ("rechts", "auf der rechten Seite", "in der rechten Hälfte"),
    "top": ("oben", "im oberen Bereich", "in der oberen Hälfte"),
    "bottom": ("unten", "im unteren Bereich", "in der unteren Hälfte"),
}
# Prepositions of object 1's place, all with the dative: "links von einem blauen Quadrat".
RELATION_PHRASES: Dict[str, Tuple[str, ...]] = {
    "left of": ("links von", "links neben"),
    "right of": ("rechts von", "rechts neben"),
    "above": ("über", "oberhalb von"),
    "below": ("unter", "unterhalb von"),
}
# Where object 2 is, seen from object 1: "ein roter Kreis, rechts daneben ein blaues Quadrat".
RELATION_TAILS = {"left of": ("rechts daneben",), "right of": ("links daneben",),
                  "above": ("darunter",), "below": ("darüber",)}
RELATION_SIDES = {"left of": ("links", "rechts"), "right of": ("rechts", "links"),
                  "above": ("oben", "unten"), "below": ("unten", "oben")}

SINGLE_TEMPLATES = (
    "{nom}", "{nom}.", "ein Foto von {dat}.", "ein Bild von {dat}.", "eine Zeichnung von {dat}.",
    "eine Darstellung von {dat}.", "auf dem Bild ist {nom}.", "das Bild zeigt {acc}.",
    "zu sehen ist {nom}.", "ein einfaches Bild von {dat}.",
)
SINGLE_POSITION_TEMPLATES = (
    "{nom} {pos}.", "{pos} ist {nom}.", "das Bild zeigt {acc} {pos}.", "{pos} sieht man {acc}.",
    "{pos} befindet sich {nom}.",
)
PAIR_TEMPLATES = (
    "{nom1} {rel} {dat2}", "{nom1} {rel} {dat2}.", "ein Foto von {dat1} {rel} {dat2}.",
    "{nom1} ist {rel} {dat2}.", "{nom1} befindet sich {rel} {dat2}.",
    "das Bild zeigt {acc1} {rel} {dat2}.", "{nom1}, {tail} {nom2}.",
    "{side1} {nom1}, {side2} {nom2}.",
)
PROMPTS = ("{nom}.", "ein Foto von {dat}.", "ein Bild von {dat}.", "eine Zeichnung von {dat}.",
           "auf dem Bild ist {nom}.", "das Bild zeigt {acc}.", "zu sehen ist {nom}.")


def noun_phrase(noun: str, gender: str, adjectives: Tuple[str, ...], case: str) -> str:
    """"einen kleinen roten Kreis" from ("Kreis", "m", ("klein", "rot"), "acc")."""
    ending = ENDING[gender, case]
    return " ".join([ARTICLE[gender, case], *(a + ending for a in adjectives), noun])


def _cases(rng: np.random.Generator, shape: str, color: str, size: Optional[str] = None,
           suffix: str = "") -> Dict[str, str]:
    """The object's noun phrase in every case, words drawn once: {"nom": ..., "acc": ...}."""
    adjectives = (word(rng, COLOR_WORDS[color]),)
    if size:
        adjectives = (word(rng, SIZE_WORDS[size], 0.5),) + adjectives
    noun, gender = word(rng, SHAPE_WORDS[shape])
    return {case + suffix: noun_phrase(noun, gender, adjectives, case) for case in CASES}


def single_caption(rng: np.random.Generator, shape: str, color: str, size: Optional[str],
                   position: Optional[str]) -> str:
    """"das Bild zeigt eine kleine rote Raute."; size and position only when given."""
    phrases = _cases(rng, shape, color, size)
    if position is None:
        return choose(rng, SINGLE_TEMPLATES).format(**phrases)
    pos = choose(rng, POSITION_PHRASES[position])
    return choose(rng, SINGLE_POSITION_TEMPLATES).format(pos=pos, **phrases)


def pair_caption(rng: np.random.Generator, first: Tuple[str, str], second: Tuple[str, str],
                 relation: str) -> str:
    """"ein roter Kreis links von einem blauen Quadrat."; object 1 is named first."""
    phrases = {**_cases(rng, *first, suffix="1"), **_cases(rng, *second, suffix="2")}
    side1, side2 = RELATION_SIDES[relation]
    template = choose(rng, PAIR_TEMPLATES)
    return template.format(rel=choose(rng, RELATION_PHRASES[relation]), side1=side1, side2=side2,
                           tail=choose(rng, RELATION_TAILS[relation]), **phrases)


def zeroshot_prompts(shape: str, color: str) -> Tuple[str, ...]:
    """The class's prompts with canonical words: "das Bild zeigt einen roten Kreis.", ..."""
    noun, gender = SHAPE_WORDS[shape][0]
    phrases = {case: noun_phrase(noun, gender, (COLOR_WORDS[color][0],), case) for case in CASES}
    return tuple(t.format(**phrases) for t in PROMPTS)
