"""Numbers read from text (command lines, URL query strings, JSON): finite or refused.

Python's ``float()`` and ``json.loads`` accept ``nan``, ``inf`` and ``Infinity``, and
``str.isdigit`` is true for ``"²"``, which ``int()`` refuses. Every boundary that turns
text into a number goes through these, so each refuses the same things with a
``ValueError`` that names the text.
"""

from __future__ import annotations

import math

__all__ = ["finite_float", "whole_number", "refuse_json_constant", "MAX_NUMBER_TEXT"]

#: Longest number text accepted (and shown in an error): no pixel, rate or id needs more.
MAX_NUMBER_TEXT = 32


def _shown(text: str) -> str:
    return repr(text[:MAX_NUMBER_TEXT])


def finite_float(text: str) -> float:
    """``text`` as a finite float; ``ValueError`` for NaN, infinity or anything not a number."""
    if len(text) > MAX_NUMBER_TEXT:
        raise ValueError(f"{_shown(text)}... is too long for a number")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{_shown(text)} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{_shown(text)} is not a finite number")
    return value


def whole_number(text: str) -> int:
    """``text`` as a non-negative int written in ASCII digits only."""
    if not (0 < len(text) <= MAX_NUMBER_TEXT and text.isascii() and text.isdigit()):
        raise ValueError(f"{_shown(text)} is not a whole number")
    return int(text)


def refuse_json_constant(name: str) -> float:
    """``json.loads(..., parse_constant=refuse_json_constant)``: JSON has no NaN or
    Infinity, though Python's parser accepts them by default."""
    raise ValueError(f"{name} is not a number JSON allows; send a finite number")
