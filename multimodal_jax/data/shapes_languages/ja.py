"""Japanese: attributive adjectives before the noun, particles after it, verb last.

Colours are i-adjectives ("赤い", "青い"), na-adjectives ("真っ赤な") or nouns with の
("緑の", "オレンジ色の"); each table entry is already in its attributive form. Places take に
and existence ある (inanimate): "左側に赤い円がある", "赤い円が青い正方形の左にある". The
counter つ appears in "赤い円が一つある". No spaces between words.
"""

from typing import Dict
from typing import Optional
from typing import Tuple

import numpy as np

from multimodal_jax.data.shapes_languages.common import choose
from multimodal_jax.data.shapes_languages.common import word

CODE, NAME = "ja", "日本語"

SHAPE_WORDS: Dict[str, Tuple[str, ...]] = {
    "circle": ("円", "丸", "円形"),
    "square": ("正方形", "四角", "四角形"),
    "triangle": ("三角形", "三角"),
    "diamond": ("ひし形", "菱形", "ダイヤ形"),
    "star": ("星", "星形", "五芒星"),
    "cross": ("十字", "十字形", "プラス記号"),
    "ring": ("輪", "リング", "円環"),
    "crescent": ("三日月", "三日月形"),
}
# Attributive forms.
COLOR_WORDS: Dict[str, Tuple[str, ...]] = {
    "red": ("赤い", "真っ赤な", "深紅の"),
    "green": ("緑の", "緑色の", "エメラルドグリーンの"),
    "blue": ("青い", "青色の", "コバルトブルーの"),
    "yellow": ("黄色い", "黄色の", "金色の"),
    "cyan": ("シアンの", "水色の", "青緑の"),
    "magenta": ("マゼンタの", "ピンクの", "赤紫の"),
    "orange": ("オレンジ色の", "オレンジの", "橙色の"),
    "white": ("白い", "白色の", "真っ白な"),
}
SIZE_WORDS: Dict[str, Tuple[str, ...]] = {
    "small": ("小さい", "小さな", "ごく小さい"),
    "large": ("大きい", "大きな", "巨大な"),
}

POSITION_PHRASES: Dict[str, Tuple[str, ...]] = {
    "centre": ("中央", "真ん中"),
    "left": ("左", "左側", "左半分"),
    "right": ("右", "右側", "右半分"),
    "top": ("上", "上部", "上半分"),
    "bottom": ("下", "下部", "下半分"),
}
# Object 1's place relative to object 2: "XがYの左にある".
RELATION_PHRASES: Dict[str, Tuple[str, ...]] = {
    "left of": ("左", "左側"),
    "right of": ("右", "右側"),
    "above": ("上", "上方"),
    "below": ("下", "下方"),
}
RELATION_TAILS = {"left of": ("右",), "right of": ("左",), "above": ("下",), "below": ("上",)}
RELATION_SIDES = {"left of": ("左", "右"), "right of": ("右", "左"),
                  "above": ("上", "下"), "below": ("下", "上")}

SINGLE_TEMPLATES = (
    "{np}", "{np}。", "{np}の写真。", "{np}の画像。", "{np}の絵。", "{np}のイラスト。",
    "{np}が描かれている。", "画像に{np}がある。", "{np}が一つある。", "{np}が写っている。",
)
SINGLE_POSITION_TEMPLATES = (
    "{pos}に{np}がある。", "画像の{pos}に{np}がある。", "{np}が{pos}にある。",
    "{pos}に{np}が描かれている。", "{pos}の{np}。",
)
PAIR_TEMPLATES = (
    "{np1}が{np2}の{rel}にある", "{np1}が{np2}の{rel}にある。", "{np2}の{rel}に{np1}がある。",
    "{np1}は{np2}の{rel}にある。", "{np2}の{rel}に{np1}が描かれている。",
    "{np1}があり、その{tail}に{np2}がある。", "{side1}に{np1}、{side2}に{np2}がある。",
)
PROMPTS = ("{np}。", "{np}の写真。", "{np}の画像。", "{np}の絵。", "画像に{np}がある。",
           "{np}が写っている。")


def noun_phrase(noun: str, color: str, size: Optional[str] = None) -> str:
    """"小さい赤い円" from ("円", "赤い", "小さい")."""
    return f"{size or ''}{color}{noun}"


def _object(rng: np.random.Generator, shape: str, color: str, size: Optional[str] = None) -> str:
    """An object's noun phrase with drawn words."""
    color_word = word(rng, COLOR_WORDS[color])
    size_word = word(rng, SIZE_WORDS[size], 0.5) if size else None
    return noun_phrase(word(rng, SHAPE_WORDS[shape]), color_word, size_word)


def single_caption(rng: np.random.Generator, shape: str, color: str, size: Optional[str],
                   position: Optional[str]) -> str:
    """"左側に小さい赤い円がある。"; size and position only when given."""
    np_ = _object(rng, shape, color, size)
    if position is None:
        return choose(rng, SINGLE_TEMPLATES).format(np=np_)
    pos = choose(rng, POSITION_PHRASES[position])
    return choose(rng, SINGLE_POSITION_TEMPLATES).format(np=np_, pos=pos)


def pair_caption(rng: np.random.Generator, first: Tuple[str, str], second: Tuple[str, str],
                 relation: str) -> str:
    """"赤い円が青い正方形の左にある。"."""
    np1, np2 = _object(rng, *first), _object(rng, *second)
    side1, side2 = RELATION_SIDES[relation]
    template = choose(rng, PAIR_TEMPLATES)
    return template.format(np1=np1, np2=np2, rel=choose(rng, RELATION_PHRASES[relation]),
                           tail=choose(rng, RELATION_TAILS[relation]), side1=side1, side2=side2)


def zeroshot_prompts(shape: str, color: str) -> Tuple[str, ...]:
    """The class's prompts with canonical words: "赤い円の写真。", ..."""
    np_ = noun_phrase(SHAPE_WORDS[shape][0], COLOR_WORDS[color][0])
    return tuple(t.format(np=np_) for t in PROMPTS)
