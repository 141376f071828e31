"""The walk over streamed chat chunks that every door building its own events from them makes. Pure.

The Responses and Messages doors turn the core's chat chunks into their API's events: both read the
first answer's deltas in the same order (reasoning, text, refusal, tool calls) and keep its finish
reason; only what each delta becomes differs, and that is theirs to say.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class DeltaHandler(Protocol):
    """What a door's stream translator does with each kind of delta of the first answer."""

    def on_reasoning(self, text: str) -> None: ...

    def on_content(self, text: str) -> None: ...

    def on_refusal(self, text: str) -> None: ...

    def on_tool_call(self, call: dict[str, Any]) -> None: ...


def walk_deltas(chunks: Sequence[dict[str, Any]], handle: DeltaHandler) -> str | None:
    """Hand each delta of the first answer (`choices[0]`, index 0) to `handle`, in order; the last
    finish reason the chunks carry, or None. The usage chunk (no choices) and other answers (n > 1,
    which one message or Response has no place for) are passed over."""
    finish: str | None = None
    for chunk in chunks:
        choices = chunk.get("choices")
        if not choices:
            continue
        choice = choices[0]
        if choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta")
        if delta:
            reasoning = delta.get("reasoning_content")
            if reasoning:
                handle.on_reasoning(reasoning)
            content = delta.get("content")
            if content:
                handle.on_content(content)
            refusal = delta.get("refusal")
            if refusal:
                handle.on_refusal(refusal)
            for call in delta.get("tool_calls") or ():
                handle.on_tool_call(call)
        reason = choice.get("finish_reason")
        if reason:
            finish = reason
    return finish
