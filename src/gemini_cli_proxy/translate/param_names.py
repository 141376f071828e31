"""A chat-side error renamed to the parameter a door's client wrote. Pure.

The Responses and Messages doors turn their request into the core's chat form; an error the chat
side finds there names a chat parameter (`messages[5].tool_calls[0].function.arguments`). Each door
records where each chat parameter came from (`input[3].arguments`) and renames the error's `param`,
and every parameter its message quotes, by the longest recorded prefix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ..errors import ProxyError

# An origin ending so takes no sub-path of the chat parameter (`previous_response_id`, not `...[3].x`).
EXACT: Final = "="
_QUOTED_PARAM: Final = re.compile(r"'([A-Za-z_][^'\s]*)'")


def _prefixes(param: str) -> list[tuple[str, str]]:
    """(prefix, rest) for `param` and each shorter prefix ending before a `.` or `[`."""
    out = [(param, "")]
    for at in range(len(param) - 1, 0, -1):
        if param[at] in ".[":
            out.append((param[:at], param[at:]))
    return out


def rename(param: str, origins: Mapping[str, str], top_level: Mapping[str, str]) -> str:
    """`param` as the client wrote it: by `origins` (this request's), else `top_level` (the door's)."""
    for prefix, rest in _prefixes(param):
        found = origins.get(prefix) or top_level.get(prefix)
        if found is not None:
            return found[:-1] if found.endswith(EXACT) else found + rest
    return param


def renamed(error: ProxyError, origins: Mapping[str, str], top_level: Mapping[str, str]) -> ProxyError:
    param = rename(error.param, origins, top_level) if error.param else error.param
    message = _QUOTED_PARAM.sub(
        lambda match: f"'{rename(match.group(1), origins, top_level)}'", error.message
    )
    if param == error.param and message == error.message:
        return error
    return ProxyError(error.status, message, code=error.code, param=param, retry_after=error.retry_after)


@dataclass(frozen=True, slots=True)
class ParamNames:
    """A door's renaming: `top_level`, the chat params that are its params under another name."""

    top_level: Mapping[str, str]

    def rename(self, param: str, origins: Mapping[str, str]) -> str:
        return rename(param, origins, self.top_level)

    def renamed(self, error: ProxyError, origins: Mapping[str, str]) -> ProxyError:
        return renamed(error, origins, self.top_level)
