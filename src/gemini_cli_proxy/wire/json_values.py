"""Arbitrary JSON from a client, checked against what can be sent on to Google. Pure: no I/O.

The parsers on the way in accept more than orjson, which writes every request to Google, can write:
pydantic takes integers of any size and `NaN` / `Infinity` / `1e400` (as floats), orjson.loads
takes integers beyond 64 bits (as floats, silently rounded) and 1024 levels of nesting. orjson then
raises on an integer outside [-2**63, 2**64 - 1] and on nesting past 255 levels, and writes a
non-finite float as `null`, changing the client's value without a word. So every value that is not
typed by the request model is walked here, and the first such value is named by its path.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

import orjson

INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**64 - 1
# Nesting allowed inside a JSON text the proxy decodes itself (tool call arguments, tool results).
# orjson writes at most 255 levels, and Gemini's request puts such a value about 10 levels deep.
MAX_DEPTH: Final = 128
# A key that reads unambiguously after a dot; any other is written as ["key"].
_PLAIN_KEY: Final = re.compile(r"[A-Za-z0-9_$@\-]+")
_SCALARS: Final = (str, bool, type(None))
# What may stand either side of a `null` token in orjson's compact output.
_BEFORE_TOKEN: Final = frozenset({b"", b":", b"[", b","})
_AFTER_TOKEN: Final = frozenset({b"", b",", b"]", b"}"})

Path = list[str | int]


def _problem(value: Any) -> str | None:
    """What is wrong with one scalar, or None."""
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            return f"the integer {_short(value)} is outside the 64-bit range"
    elif isinstance(value, float) and not math.isfinite(value):
        return "a number must be finite (not NaN or Infinity, and within about ±1.8e308)"
    return None


def _short(number: int) -> str:
    text = str(number)
    return text if len(text) <= 24 else f"{text[:10]}...({len(text)} digits)"


def _walk(value: Any, path: Path, depth: int, max_depth: int | None) -> str | None:
    """The problem at `path` (extended in place to where it was found), or None."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return _problem(value)
    if max_depth is not None and depth >= max_depth:
        return f"it nests deeper than {max_depth} levels"
    for key, item in items:
        if isinstance(item, _SCALARS):
            continue  # the common case, without a call
        path.append(key)
        problem = _walk(item, path, depth + 1, max_depth)
        if problem is not None:
            return problem
        path.pop()
    return None


def render(param: str, path: Path) -> str:
    """`param` and the path below it as OpenAI spells params: `tools[0].function.parameters.x`."""
    out = param
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            escaped = part.replace("\\", "\\\\").replace('"', '\\"')
            out += f'["{escaped}"]'
    return out


def _has_bare_null(encoded: bytes) -> bool:
    """A `null` token in orjson's compact output (as opposed to the word inside a string, mostly)."""
    at = encoded.find(b"null")
    while at != -1:
        before, after = encoded[at - 1 : at] if at else b"", encoded[at + 4 : at + 5]
        if before in _BEFORE_TOKEN and after in _AFTER_TOKEN:
            return True
        at = encoded.find(b"null", at + 4)
    return False


def _surely_sendable(value: Any) -> bool:
    """A first pass in C for the common case, nothing wrong (tool schemas are walked on every
    request): orjson refuses an integer out of range itself, and writes a non-finite float as a
    bare null, so output without one has none. A real None (or a string holding `:null,`) leaves
    the answer to the walk: correct, only slower."""
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return False
    return not _has_bare_null(encoded)


def find_unsendable(value: Any, *, max_depth: int | None = None) -> tuple[Path, str] | None:
    """(path, problem) of the first part of `value` that cannot be sent on as it is, or None.
    `max_depth` bounds the nesting; None when the caller's parser bounded it already (pydantic's
    JSON parser stops at about 200 levels, well within orjson's 255 and Python's recursion limit)."""
    if max_depth is None and _surely_sendable(value):
        return None
    path: Path = []
    problem = _walk(value, path, 0, max_depth)
    return None if problem is None else (path, problem)
