"""French: nouns with their gender, colour adjectives after the noun and agreeing with it.

"un petit cercle rouge", "une petite étoile verte": the article and the size adjective stand
before the noun, the colour after it; each agrees in gender (invariable colour words such as
"orange", "cyan" or "bleu cobalt" keep one form). "de" elides before the article ("une photo
d'une étoile", "à gauche d'un carré").
"""

from typing import Dict
from typing import Optional
from typing import Tuple

import numpy as np

from multimodal_jax.data.shapes_languages.common import choose
from multimodal_jax.data.shapes_languages.common import word

CODE, NAME = "fr", "français"

# (noun, gender): m or f.
SHAPE_WORDS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "circle": (("cercle", "m"), ("disque", "m"), ("rond", "m")),
    "square": (("carré", "m"), ("bloc", "m")),
    "triangle": (("triangle", "m"),),
    "diamond": (("losange", "m"), ("carreau", "m")),
    "star": (("étoile", "f"), ("pentagramme", "m")),
    "cross": (("croix", "f"), ("signe plus", "m")),
    "ring": (("anneau", "m"), ("couronne", "f")),
    "crescent": (("croissant", "m"), ("croissant de lune", "m"), ("faucille", "f")),
}
# (masculine, feminine) of each colour word.
COLOR_WORDS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "red": (("rouge", "rouge"), ("cramoisi", "cramoisie"), ("écarlate", "écarlate")),
    "green": (("vert", "verte"), ("émeraude", "émeraude"), ("vert citron", "vert citron")),
    "blue": (("bleu", "bleue"), ("azur", "azur"), ("bleu cobalt", "bleu cobalt")),
    "yellow": (("jaune", "jaune"), ("doré", "dorée"), ("jaune citron", "jaune citron")),
    "cyan": (("cyan", "cyan"), ("turquoise", "turquoise"), ("bleu-vert", "bleu-vert")),
    "magenta": (("magenta", "magenta"), ("rose", "rose"), ("fuchsia", "fuchsia")),
    "orange": (("orange", "orange"), ("ambre", "ambre"), ("mandarine", "mandarine")),
    "white": (("blanc", "blanche"), ("ivoire", "ivoire")),
}
SIZE_WORDS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "small": (("petit", "petite"), ("minuscule", "minuscule")),
    "large": (("grand", "grande"), ("gros", "grosse"), ("énorme", "énorme")),
}
ARTICLE = {"m": "un", "f": "une"}

POSITION_PHRASES: Dict[str, Tuple[str, ...]] = {
    "centre": ("au centre", "au milieu"),
    "left": ("à gauche", "sur la gauche", "dans la moitié gauche"),
    "right": ("à droite", "sur la droite", "dans la moitié droite"),
    "top": ("en haut", "dans la partie supérieure", "dans la moitié supérieure"),
    "bottom": ("en bas", "dans la partie inférieure", "dans la moitié inférieure"),
}
# Written directly before object 2's "un/une": "d'" is "de" elided.
RELATION_PHRASES: Dict[str, Tuple[str, ...]] = {
    "left of": ("à gauche d'", "sur la gauche d'"),
    "right of": ("à droite d'", "sur la droite d'"),
    "above": ("au-dessus d'",),
    "below": ("au-dessous d'", "en dessous d'", "sous "),
}
RELATION_TAILS = {"left of": ("à sa droite",), "right of": ("à sa gauche",),
                  "above": ("en dessous",), "below": ("au-dessus",)}
RELATION_SIDES = {"left of": ("à gauche", "à droite"), "right of": ("à droite", "à gauche"),
                  "above": ("en haut", "en bas"), "below": ("en bas", "en haut")}

SINGLE_TEMPLATES = (
    "{np}", "{np}.", "une photo d'{np}.", "une image d'{np}.", "un dessin d'{np}.",
    "une illustration d'{np}.", "il y a {np} sur l'image.", "l'image montre {np}.",
    "on voit {np}.", "une image simple d'{np}.",
)
SINGLE_POSITION_TEMPLATES = (
    "{np} {pos}.", "il y a {np} {pos}.", "une photo d'{np} {pos}.", "l'image montre {np} {pos}.",
    "{pos}, on voit {np}.",
)
PAIR_TEMPLATES = (
    "{np1} {rel}{np2}", "{np1} {rel}{np2}.", "une photo d'{np1} {rel}{np2}.",
    "il y a {np1} {rel}{np2}.", "{np1} se trouve {rel}{np2}.", "l'image montre {np1} {rel}{np2}.",
    "{np1} avec {np2} {tail}.", "{side1} {np1}, {side2} {np2}.",
)
PROMPTS = ("{np}.", "une photo d'{np}.", "une image d'{np}.", "un dessin d'{np}.",
           "il y a {np} sur l'image.", "l'image montre {np}.", "on voit {np}.")


def noun_phrase(noun: str, gender: str, color: Tuple[str, str],
                size: Optional[Tuple[str, str]] = None) -> str:
    """"une petite étoile verte" from ("étoile", "f", ("vert", "verte"), ("petit", "petite"))."""
    form = 0 if gender == "m" else 1
    words = [ARTICLE[gender], *([size[form]] if size else []), noun, color[form]]
    return " ".join(words)


def _object(rng: np.random.Generator, shape: str, color: str, size: Optional[str] = None) -> str:
    """An object's noun phrase with drawn words."""
    color_word = word(rng, COLOR_WORDS[color])
    size_word = word(rng, SIZE_WORDS[size], 0.5) if size else None
    noun, gender = word(rng, SHAPE_WORDS[shape])
    return noun_phrase(noun, gender, color_word, size_word)


def single_caption(rng: np.random.Generator, shape: str, color: str, size: Optional[str],
                   position: Optional[str]) -> str:
    """"il y a une petite étoile verte à gauche."; size and position only when given."""
    np_ = _object(rng, shape, color, size)
    if position is None:
        return choose(rng, SINGLE_TEMPLATES).format(np=np_)
    pos = choose(rng, POSITION_PHRASES[position])
    return choose(rng, SINGLE_POSITION_TEMPLATES).format(np=np_, pos=pos)


def pair_caption(rng: np.random.Generator, first: Tuple[str, str], second: Tuple[str, str],
                 relation: str) -> str:
    """"un cercle rouge à gauche d'un carré bleu."; object 1 is named first."""
    np1, np2 = _object(rng, *first), _object(rng, *second)
    side1, side2 = RELATION_SIDES[relation]
    template = choose(rng, PAIR_TEMPLATES)
    return template.format(np1=np1, np2=np2, rel=choose(rng, RELATION_PHRASES[relation]),
                           tail=choose(rng, RELATION_TAILS[relation]), side1=side1, side2=side2)


def zeroshot_prompts(shape: str, color: str) -> Tuple[str, ...]:
    """The class's prompts with canonical words: "une photo d'une étoile rouge.", ..."""
    noun, gender = SHAPE_WORDS[shape][0]
    np_ = noun_phrase(noun, gender, COLOR_WORDS[color][0])
    return tuple(t.format(np=np_) for t in PROMPTS)
