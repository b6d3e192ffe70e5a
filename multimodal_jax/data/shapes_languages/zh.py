"""Chinese (simplified): a numeral and the noun's measure word, colour before the noun.

"一个红色的圆形", "一颗黄色的星星", "一弯白色的新月": 一 + measure word (个, 颗, 弯), the colour
with or without 的, then the noun; a one-character size word sits next to the noun ("一个红色
的小圆形"), a longer one before the colour ("一个很小的红色圆形"). Places are locative nouns
("左边有…", "…在蓝色正方形的左边"). No spaces between words.
"""

from typing import Dict
from typing import Optional
from typing import Tuple

import numpy as np

from multimodal_jax.data.shapes_languages.common import choose
from multimodal_jax.data.shapes_languages.common import word

CODE, NAME = "zh", "中文"

# (noun, measure word).
SHAPE_WORDS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "circle": (("圆形", "个"), ("圆", "个"), ("圆盘", "个")),
    "square": (("正方形", "个"), ("方块", "个"), ("方形", "个")),
    "triangle": (("三角形", "个"), ("三角", "个")),
    "diamond": (("菱形", "个"), ("斜方形", "个")),
    "star": (("星形", "个"), ("五角星", "个"), ("星星", "颗")),
    "cross": (("十字", "个"), ("十字形", "个"), ("加号", "个")),
    "ring": (("圆环", "个"), ("环", "个"), ("圆圈", "个")),
    "crescent": (("月牙", "个"), ("新月", "弯"), ("弯月", "个")),
}
COLOR_WORDS: Dict[str, Tuple[str, ...]] = {
    "red": ("红色", "深红色", "猩红色"),
    "green": ("绿色", "翠绿色", "黄绿色"),
    "blue": ("蓝色", "天蓝色", "钴蓝色"),
    "yellow": ("黄色", "金黄色", "柠檬黄色"),
    "cyan": ("青色", "蓝绿色"),
    "magenta": ("品红色", "洋红色", "粉红色"),
    "orange": ("橙色", "橘色", "橘黄色"),
    "white": ("白色", "乳白色", "雪白色"),
}
SIZE_WORDS: Dict[str, Tuple[str, ...]] = {
    "small": ("小", "很小的", "小小的"),
    "large": ("大", "很大的", "巨大的"),
}
_DE_P = 0.5  # probability of 的 between the colour and the noun

# Locative nouns.
POSITION_PHRASES: Dict[str, Tuple[str, ...]] = {
    "centre": ("中间", "正中间", "中央"),
    "left": ("左边", "左侧", "左半边"),
    "right": ("右边", "右侧", "右半边"),
    "top": ("上方", "上面", "上半部分"),
    "bottom": ("下方", "下面", "下半部分"),
}
# Object 1's place relative to object 2: "X在Y的左边".
RELATION_PHRASES: Dict[str, Tuple[str, ...]] = {
    "left of": ("左边", "左侧"),
    "right of": ("右边", "右侧"),
    "above": ("上方", "上面"),
    "below": ("下方", "下面"),
}
RELATION_TAILS = {"left of": ("右边",), "right of": ("左边",),
                  "above": ("下方",), "below": ("上方",)}
RELATION_SIDES = {"left of": ("左边", "右边"), "right of": ("右边", "左边"),
                  "above": ("上面", "下面"), "below": ("下面", "上面")}

# {np}: with numeral and measure word ("一个红色的圆形"); {bare}: without ("红色圆形").
SINGLE_TEMPLATES = (
    "{np}", "{np}。", "一张{bare}的照片。", "一幅{bare}的图画。", "{bare}的图片。", "图中有{np}。",
    "图片上是{np}。", "画面里有{np}。", "这是{np}。",
)
SINGLE_POSITION_TEMPLATES = (
    "{pos}有{np}。", "图片{pos}有{np}。", "{bare}在{pos}。", "{np}位于图片{pos}。", "图中{pos}是{np}。",
)
PAIR_TEMPLATES = (
    "{bare1}在{bare2}的{rel}", "{bare1}在{bare2}的{rel}。", "图中{bare1}在{bare2}的{rel}。",
    "{np1}位于{bare2}的{rel}。", "{bare2}的{rel}有{np1}。", "{np1}，它的{tail}有{np2}。",
    "{side1}是{np1}，{side2}是{np2}。",
)
PROMPTS = ("{np}。", "一张{bare}的照片。", "一幅{bare}的图画。", "{bare}的图片。", "图中有{np}。",
           "这是{np}。")


def noun_phrases(noun: str, measure: str, color: str, size: Optional[str] = None,
                 de: bool = True) -> Dict[str, str]:
    """{"np": "一个红色的小圆形", "bare": "红色小圆形"}: with and without 一 + measure word."""
    if size is None:
        return {"np": f"一{measure}{color}{'的' if de else ''}{noun}", "bare": f"{color}{noun}"}
    if len(size) == 1:  # 小 / 大 stand next to the noun
        return {"np": f"一{measure}{color}的{size}{noun}", "bare": f"{color}{size}{noun}"}
    return {"np": f"一{measure}{size}{color}{noun}", "bare": f"{size}{color}{noun}"}


def _object(rng: np.random.Generator, shape: str, color: str, size: Optional[str] = None,
            suffix: str = "") -> Dict[str, str]:
    """An object's two noun phrases with drawn words."""
    color_word = word(rng, COLOR_WORDS[color])
    size_word = word(rng, SIZE_WORDS[size], 0.5) if size else None
    noun, measure = word(rng, SHAPE_WORDS[shape])
    de = rng.random() < _DE_P
    return {k + suffix: v for k, v in noun_phrases(noun, measure, color_word, size_word, de).items()}


def single_caption(rng: np.random.Generator, shape: str, color: str, size: Optional[str],
                   position: Optional[str]) -> str:
    """"图片左边有一个红色的小圆形。"; size and position only when given."""
    phrases = _object(rng, shape, color, size)
    if position is None:
        return choose(rng, SINGLE_TEMPLATES).format(**phrases)
    pos = choose(rng, POSITION_PHRASES[position])
    return choose(rng, SINGLE_POSITION_TEMPLATES).format(pos=pos, **phrases)


def pair_caption(rng: np.random.Generator, first: Tuple[str, str], second: Tuple[str, str],
                 relation: str) -> str:
    """"红色圆形在蓝色正方形的左边。"."""
    phrases = {**_object(rng, *first, suffix="1"), **_object(rng, *second, suffix="2")}
    side1, side2 = RELATION_SIDES[relation]
    template = choose(rng, PAIR_TEMPLATES)
    return template.format(rel=choose(rng, RELATION_PHRASES[relation]), side1=side1, side2=side2,
                           tail=choose(rng, RELATION_TAILS[relation]), **phrases)


def zeroshot_prompts(shape: str, color: str) -> Tuple[str, ...]:
    """The class's prompts with canonical words: "一张红色圆形的照片。", ..."""
    noun, measure = SHAPE_WORDS[shape][0]
    phrases = noun_phrases(noun, measure, COLOR_WORDS[color][0])
    return tuple(t.format(**phrases) for t in PROMPTS)
