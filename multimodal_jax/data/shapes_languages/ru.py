"""Russian: nouns with gender and case forms, adjectives declined to agree with them.

No articles; adjectives precede the noun and agree in gender and case. Each slot governs a
case: nominative ("на картинке красный круг"), genitive ("фотография красного круга",
"слева от синего квадрата") or instrumental ("над синим квадратом"). The short participle
"виден / видна / видно" and the pronouns "него / неё", "ним / ней" agree with the noun's gender.
"""

from typing import Dict
from typing import Optional
from typing import Tuple

import numpy as np

from multimodal_jax.data.shapes_languages.common import choose
from multimodal_jax.data.shapes_languages.common import word

CODE, NAME = "ru", "русский"

# (nominative, genitive, instrumental, gender) of each noun.
SHAPE_WORDS: Dict[str, Tuple[Tuple[str, str, str, str], ...]] = {
    "circle": (("круг", "круга", "кругом", "m"), ("диск", "диска", "диском", "m")),
    "square": (("квадрат", "квадрата", "квадратом", "m"),
               ("квадратик", "квадратика", "квадратиком", "m")),
    "triangle": (("треугольник", "треугольника", "треугольником", "m"),
                 ("клин", "клина", "клином", "m")),
    "diamond": (("ромб", "ромба", "ромбом", "m"), ("ромбик", "ромбика", "ромбиком", "m")),
    "star": (("звезда", "звезды", "звездой", "f"), ("звёздочка", "звёздочки", "звёздочкой", "f"),
             ("пентаграмма", "пентаграммы", "пентаграммой", "f")),
    "cross": (("крест", "креста", "крестом", "m"), ("крестик", "крестика", "крестиком", "m"),
              ("плюс", "плюса", "плюсом", "m")),
    "ring": (("кольцо", "кольца", "кольцом", "n"), ("колечко", "колечка", "колечком", "n"),
             ("бублик", "бублика", "бубликом", "m")),
    "crescent": (("полумесяц", "полумесяца", "полумесяцем", "m"),
                 ("месяц", "месяца", "месяцем", "m"), ("серп", "серпа", "серпом", "m")),
}
# Adjectives by their masculine nominative; ``decline`` gives the other forms.
COLOR_WORDS: Dict[str, Tuple[str, ...]] = {
    "red": ("красный", "алый", "багровый"),
    "green": ("зелёный", "изумрудный", "салатовый"),
    "blue": ("синий", "лазурный", "кобальтовый"),
    "yellow": ("жёлтый", "золотистый", "лимонный"),
    "cyan": ("голубой", "бирюзовый"),
    "magenta": ("пурпурный", "розовый"),
    "orange": ("оранжевый", "янтарный", "мандариновый"),
    "white": ("белый", "белоснежный"),
}
SIZE_WORDS: Dict[str, Tuple[str, ...]] = {
    "small": ("маленький", "небольшой", "крошечный"),
    "large": ("большой", "крупный", "огромный"),
}
CASES = ("nom", "gen", "ins")
VISIBLE = {"m": "виден", "f": "видна", "n": "видно"}
PRONOUN = {("m", "gen"): "него", ("n", "gen"): "него", ("f", "gen"): "неё",
           ("m", "ins"): "ним", ("n", "ins"): "ним", ("f", "ins"): "ней"}

POSITION_PHRASES: Dict[str, Tuple[str, ...]] = {
    "centre": ("в центре", "посередине"),
    "left": ("слева", "в левой части", "в левой половине"),
    "right": ("справа", "в правой части", "в правой половине"),
    "top": ("сверху", "вверху", "в верхней части"),
    "bottom": ("снизу", "внизу", "в нижней части"),
}
# (preposition, the case it governs) for object 1's place relative to object 2.
RELATION_PHRASES: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "left of": (("слева от", "gen"),),
    "right of": (("справа от", "gen"),),
    "above": (("над", "ins"), ("выше", "gen")),
    "below": (("под", "ins"), ("ниже", "gen")),
}
# Where object 2 is, seen from object 1, with a pronoun for object 1: "справа от него".
RELATION_TAILS = {"left of": ("справа от", "gen"), "right of": ("слева от", "gen"),
                  "above": ("под", "ins"), "below": ("над", "ins")}
RELATION_SIDES = {"left of": ("слева", "справа"), "right of": ("справа", "слева"),
                  "above": ("сверху", "снизу"), "below": ("снизу", "сверху")}

SINGLE_TEMPLATES = (
    "{nom}", "{nom}.", "фотография {gen}.", "изображение {gen}.", "рисунок {gen}.",
    "на картинке {nom}.", "на картинке {visible} {nom}.", "на изображении есть {nom}.",
    "простой рисунок: {nom}.",
)
SINGLE_POSITION_TEMPLATES = (
    "{nom} {pos}.", "{pos} {nom}.", "{pos} находится {nom}.", "на картинке {pos} {nom}.",
    "{pos} {visible} {nom}.",
)
PAIR_TEMPLATES = (
    "{nom1} {rel}", "{nom1} {rel}.", "на картинке {nom1} {rel}.", "{nom1} находится {rel}.",
    "фотография: {nom1} {rel}.", "{nom1}, а {tail} — {nom2}.", "{side1} {nom1}, {side2} {nom2}.",
)
PROMPTS = ("{nom}.", "фотография {gen}.", "изображение {gen}.", "рисунок {gen}.",
           "на картинке {nom}.", "на картинке {visible} {nom}.")


def decline(adjective: str, gender: str, case: str) -> str:
    """An adjective given in the masculine nominative, in ``gender`` and ``case`` (singular).

    Hard stems ("красный", stressed "голубой"), soft stems ("синий") and stems in a velar or
    sibilant ("маленький", "большой"), where spelling turns ы into и.
    """
    stem, ending = adjective[:-2], adjective[-2:]
    soft = ending == "ий" and stem[-1] not in "гкхжшчщ"
    if case == "nom":
        if gender == "m":
            return adjective
        return stem + {"f": "яя" if soft else "ая", "n": "ее" if soft else "ое"}[gender]
    if gender == "f":  # genitive and instrumental alike
        return stem + ("ей" if soft else "ой")
    if case == "gen":
        return stem + ("его" if soft else "ого")
    return stem + ("им" if soft or stem[-1] in "гкхжшчщ" else "ым")


def noun_phrase(noun: Tuple[str, str, str, str], adjectives: Tuple[str, ...], case: str) -> str:
    """"маленькой красной звездой" from (звезда's forms, ("маленький", "красный"), "ins")."""
    gender = noun[3]
    form = noun[CASES.index(case)]
    return " ".join([*(decline(a, gender, case) for a in adjectives), form])


def _object(rng: np.random.Generator, shape: str, color: str, size: Optional[str] = None):
    """(noun's forms, adjectives) with drawn words."""
    adjectives = (word(rng, COLOR_WORDS[color]),)
    if size:
        adjectives = (word(rng, SIZE_WORDS[size], 0.5),) + adjectives
    return word(rng, SHAPE_WORDS[shape]), adjectives


def _phrases(noun, adjectives, suffix: str = "") -> Dict[str, str]:
    """The noun phrase in every case, and the participle agreeing with it."""
    out = {case + suffix: noun_phrase(noun, adjectives, case) for case in CASES}
    out["visible" + suffix] = VISIBLE[noun[3]]
    return out


def single_caption(rng: np.random.Generator, shape: str, color: str, size: Optional[str],
                   position: Optional[str]) -> str:
    """"на картинке видна маленькая красная звезда."; size and position only when given."""
    phrases = _phrases(*_object(rng, shape, color, size))
    if position is None:
        return choose(rng, SINGLE_TEMPLATES).format(**phrases)
    pos = choose(rng, POSITION_PHRASES[position])
    return choose(rng, SINGLE_POSITION_TEMPLATES).format(pos=pos, **phrases)


def pair_caption(rng: np.random.Generator, first: Tuple[str, str], second: Tuple[str, str],
                 relation: str) -> str:
    """"красный круг слева от синего квадрата."; object 1 is named first."""
    noun1, adjectives1 = _object(rng, *first)
    noun2, adjectives2 = _object(rng, *second)
    preposition, case = choose(rng, RELATION_PHRASES[relation])
    tail_preposition, tail_case = RELATION_TAILS[relation]
    side1, side2 = RELATION_SIDES[relation]
    template = choose(rng, PAIR_TEMPLATES)
    return template.format(
        rel=f"{preposition} {noun_phrase(noun2, adjectives2, case)}",
        tail=f"{tail_preposition} {PRONOUN[noun1[3], tail_case]}", side1=side1, side2=side2,
        **_phrases(noun1, adjectives1, "1"), **_phrases(noun2, adjectives2, "2"))


def zeroshot_prompts(shape: str, color: str) -> Tuple[str, ...]:
    """The class's prompts with canonical words: "фотография красной звезды.", ..."""
    phrases = _phrases(SHAPE_WORDS[shape][0], (COLOR_WORDS[color][0],))
    return tuple(t.format(**phrases) for t in PROMPTS)
