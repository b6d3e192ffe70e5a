"""Small checks that every owner of config fields uses on its own block: field names the code
reads (a misspelt one would be silently ignored) and whole positive numbers. Each raises
``ValueError`` with the field's full name and the fix; ``runtime/config_checks.py`` turns
them into one-paragraph errors."""

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
