"""Gemini stream events -> OpenAI chat.completion.chunk objects, incrementally. Pure.

OpenAI's stream shape, which strict clients check: the first chunk of each choice carries
`delta.role`, then content deltas, then one chunk with an empty delta and the `finish_reason`;
with `stream_options.include_usage` every chunk has `usage: null` and one last chunk has
`choices: []` and the usage.
"""

from __future__ import annotations

from typing import Any

from ..wire.gemini import GenerateContentResponse, Part, UsageMetadata
from .output import openai_logprobs
from .response import (
    FINISH_REASONS,
    NOTABLE_REASONS,
    THINK_CLOSE,
    THINK_OPEN,
    ReasoningOutput,
    arguments_json,
    block_message,
    block_reason,
    candidate_parts,
    choice_finish,
    empty_failure,
    filter_message,
    usage,
)
from .signatures import call_key, text_key
from .tools import NameMap, tool_call


class StreamTranslator:
    """Feed it Gemini's events in order; it returns the OpenAI chunks each one produces."""

    __slots__ = (
        "_base",
        "_calls",
        "_content",
        "_conversation",
        "_finished",
        "_include_usage",
        "_names",
        "_output",
        "_started",
        "_text_signature",
        "_thinking",
        "_usage_meta",
        "notes",
        "signatures",
    )

    def __init__(
        self,
        *,
        model: str,
        completion_id: str,
        created: int,
        include_usage: bool,
        names: NameMap | None = None,
        reasoning_output: ReasoningOutput = "reasoning_content",
        conversation: str = "",
    ) -> None:
        self._base: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
        }
        if include_usage:
            self._base["usage"] = None
        self._include_usage = include_usage
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._usage_meta: UsageMetadata | None = None
        self._names = names or NameMap(())
        self._output = reasoning_output
        self._conversation = conversation
        self._thinking: set[int] = set()  # choices inside an open <think> tag
        self._content: dict[int, list[str]] = {}
        self._text_signature: dict[int, str] = {}
        # (key, thought signature) pairs worth remembering; see translate.signatures.
        self.signatures: list[tuple[str, str]] = []
        self._calls: dict[int, int] = {}  # choice index -> tool calls sent so far
        self.notes: list[str] = []

    def _chunk(self, index: int, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        chunk = dict(self._base)
        chunk["choices"] = [{"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}]
        return chunk

    def _open(self, index: int, out: list[dict[str, Any]]) -> None:
        if index not in self._started:
            self._started.add(index)
            out.append(self._chunk(index, {"role": "assistant", "content": "", "refusal": None}))

    def feed(self, event: GenerateContentResponse) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        meta = event.get("usageMetadata")
        if isinstance(meta, dict):
            self._usage_meta = meta  # Google's usage is cumulative: the last one is the total.
        blocked = block_reason(event)
        if blocked is not None:
            self.notes.append(f"prompt blocked: {blocked}")
            self._open(0, out)
            out.append(self._chunk(0, {"refusal": block_message(event, blocked)}))
            self._close(0, "content_filter", out)
            return out
        for position, candidate in enumerate(event.get("candidates") or ()):
            index = int(candidate.get("index", position))
            if index in self._finished:
                continue
            self._open(index, out)
            first_new = len(out)
            for part in candidate_parts(candidate):
                if isinstance(part.get("functionCall"), dict):
                    self._end_think(index, out)
                    out.append(self._chunk(index, {"tool_calls": [self._tool_call_delta(index, part)]}))
                    continue
                signature = part.get("thoughtSignature")
                if isinstance(signature, str) and not part.get("thought"):
                    self._text_signature[index] = signature  # Gemini 3 signs text replies too
                # Empty text parts are normal (Gemini 3 ends streams with one); they add no text.
                text = part.get("text")
                if text:
                    self._text(index, text, bool(part.get("thought")), out)
            logprobs = openai_logprobs(candidate.get("logprobsResult"))
            if logprobs is not None and len(out) > first_new:
                out[first_new]["choices"][0]["logprobs"] = logprobs
            reason = candidate.get("finishReason")
            if reason:
                if reason in NOTABLE_REASONS or FINISH_REASONS.get(reason) == "content_filter":
                    self.notes.append(f"finish reason: {reason}")
                if reason in NOTABLE_REASONS and not (self._content.get(index) or index in self._calls):
                    raise empty_failure(reason, candidate)
                finish = choice_finish(reason, index in self._calls)
                if finish == "content_filter":
                    out.append(self._chunk(index, {"refusal": filter_message(reason)}))
                self._close(index, finish, out)
        return out

    def _tool_call_delta(self, index: int, part: Part) -> dict[str, Any]:
        """Gemini sends each call whole: its first (and only) delta has id, type, name, arguments."""
        position = self._calls.get(index, 0)
        self._calls[index] = position + 1
        call = tool_call(part, self._names, arguments_json(part))
        if "extra_content" in call:
            self.signatures.append(
                (call_key(call["id"]), call["extra_content"]["google"]["thought_signature"])
            )
        return {"index": position, **call}

    def _content_chunk(self, index: int, text: str) -> dict[str, Any]:
        # What the client will send back as this message's content, to find its signature by.
        self._content.setdefault(index, []).append(text)
        return self._chunk(index, {"content": text})

    def _text(self, index: int, text: str, thought: bool, out: list[dict[str, Any]]) -> None:
        if not thought:
            self._end_think(index, out)
            out.append(self._content_chunk(index, text))
        elif self._output == "reasoning_content":
            out.append(self._chunk(index, {"reasoning_content": text}))
        elif self._output == "think_tags":
            opening = "" if index in self._thinking else THINK_OPEN
            self._thinking.add(index)
            out.append(self._content_chunk(index, opening + text))

    def _end_think(self, index: int, out: list[dict[str, Any]]) -> None:
        if index in self._thinking:
            self._thinking.discard(index)
            out.append(self._content_chunk(index, THINK_CLOSE))

    def _close(self, index: int, reason: str, out: list[dict[str, Any]]) -> None:
        self._end_think(index, out)
        self._finished.add(index)
        signature = self._text_signature.get(index)
        if signature is not None and self._content.get(index):
            self.signatures.append((text_key("".join(self._content[index]), self._conversation), signature))
        out.append(self._chunk(index, {}, reason))

    def usage(self) -> dict[str, Any]:
        """OpenAI usage from the last usageMetadata seen so far."""
        return usage(self._usage_meta)

    def finish(self) -> list[dict[str, Any]]:
        """Chunks that close the stream after Google's last event: open choices, then usage."""
        out: list[dict[str, Any]] = []
        if not self._started:
            self._open(0, out)
        for index in sorted(self._started - self._finished):
            self._close(index, "tool_calls" if index in self._calls else "stop", out)
        if self._include_usage:
            chunk = dict(self._base)
            chunk["choices"] = []
            chunk["usage"] = usage(self._usage_meta)
            out.append(chunk)
        return out
