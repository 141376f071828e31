"""Which Responses API tool a function declared to Gemini stands for. Pure.

The Responses door turns every tool a client names into a chat-style function (the one core then
declares it to Gemini): a `function` as itself, each function of a `namespace` (Codex groups its
tools so) under a flat name, a `custom` tool (freeform text input) as a function of one string
parameter. A call Gemini makes is translated back into the item the client expects: a
`function_call` (with its `namespace`) or a `custom_tool_call`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

# The one parameter a custom tool's function takes: the tool's freeform input.
CUSTOM_INPUT: Final = "input"


@dataclass(frozen=True, slots=True)
class ToolOrigin:
    kind: Literal["function", "custom"]
    name: str  # the tool's (or the namespace member's) own name, as the client knows it
    namespace: str | None = None


# The function name the chat request declares -> the Responses tool it stands for.
ToolNames = Mapping[str, ToolOrigin]
