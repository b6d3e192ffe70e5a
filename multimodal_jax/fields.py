"""Small checks that every owner of config fields uses on its own block: field names the code
reads (a misspelt one would be silently ignored), whole positive numbers, and lists (of class
names, templates, splits) read the same way from a config file and a command line. Each raises
``ValueError`` with the field's full name and the fix; ``runtime/config_checks.py`` turns
them into one-paragraph errors."""

import ast
import difflib
from typing import Iterable


def is_int(value) -> bool:
    """An ``int`` and not a ``bool`` (which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_known(block, known: Iterable[str], where: str) -> None:
    """Every field of ``block`` is among ``known``; unknown ones are named with the closest
    known name."""
    known = sorted(known)
    unknown = sorted(set(block.keys()) - set(known))
    if not unknown:
        return
    hints = [f" (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(u, known, n=1)) else ""
             for u in unknown]
    listed = ", ".join(f"{u!r}{h}" for u, h in zip(unknown, hints))
    raise ValueError(f"{where} has unknown field(s) {listed}; its fields are {known}.")


def check_positive_ints(block, names: Iterable[str], where: str) -> None:
    """``block.<name>`` is a positive integer, or absent / None, for each of ``names``."""
    for name in names:
        value = block.get(name)
        if not (value is None or (is_int(value) and value > 0)):
            raise ValueError(f"{where}.{name} must be a positive integer, got {value!r}.")


def parse_list(text: str) -> tuple:
    """A list as users write it on a command line: a Python literal (``('a', 'b')``, ``[1, 2]``,
    ``(('.*', 'fsdp'),)``) when it starts with a bracket or a quote, else comma-separated items
    (``red circle,blue square``, ``0.5,0.5,0.5``; surrounding spaces dropped, items that read as
    numbers become numbers). The empty string is the empty list."""
    text = text.strip()
    if not text:
        return ()
    if text[0] in "([\"'":
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(f"{text!r} is not a Python literal; write a list as a,b,c or as "
                             "a literal such as ('a', 'b') (quote items that hold commas).") from None
        if isinstance(value, (list, tuple)):
            return tuple(value)
        if isinstance(value, (str, int, float)):
            return (value,)
        raise ValueError(f"{text!r} is a {type(value).__name__}, not a list.")
    return tuple(_number_or_text(item.strip()) for item in text.split(","))


def _number_or_text(item: str):
    """``item`` as an int or float where it reads as one, else the text itself."""
    try:
        value = ast.literal_eval(item)
    except (ValueError, SyntaxError):
        return item
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else item


def string_list(value, where: str, allow_empty: bool = False) -> tuple[str, ...]:
    """``value`` as a tuple of non-empty strings: a tuple or list of them, or one string read by
    ``parse_list`` (``"red circle,blue square"``); ``ValueError`` naming ``where`` otherwise."""
    example = f"{where}=\"red circle,blue square\" or {where}=\"('red circle', 'blue square')\""
    if isinstance(value, str):
        value = parse_list(value)
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{where} must be a list of strings, got {value!r} "
                         f"({type(value).__name__}); e.g. {example}.")
    bad = [item for item in value if not (isinstance(item, str) and item.strip())]
    if bad:
        raise ValueError(f"{where} must hold non-empty strings, got {bad[0]!r} in {tuple(value)!r}; "
                         f"e.g. {example}.")
    if not value and not allow_empty:
        raise ValueError(f"{where} is empty; give at least one, e.g. {example}.")
    return tuple(value)
