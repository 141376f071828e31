"""Gemini GenerateContentResponse -> OpenAI chat.completion. Pure: no I/O, no clock.

Real replies are ragged (see ../shared/gemini-recordings): a candidate may have `content: {}` or
no `parts`, a blocked prompt has no `candidates` key at all, so every lookup here is defensive.
"""

from __future__ import annotations

import json
from typing import Any, Final, Literal, NamedTuple

import orjson

from ..errors import ProxyError, upstream_error
from ..wire.gemini import Candidate, GenerateContentResponse, Part, UsageMetadata
from .output import openai_logprobs
from .signatures import call_key, text_key
from .tools import NameMap, tool_call

FINISH_REASONS: Final[dict[str, str]] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "LANGUAGE": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "IMAGE_OTHER": "content_filter",
    "MALFORMED_FUNCTION_CALL": "stop",
    "UNEXPECTED_TOOL_CALL": "stop",
    "TOO_MANY_TOOL_CALLS": "stop",
    "OTHER": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
}
# Reasons that end a reply for a cause the OpenAI finish_reason cannot say; worth a log line.
NOTABLE_REASONS: Final = frozenset(
    {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS", "OTHER"}
)


def empty_failure(reason: str, candidate: Candidate) -> ProxyError:
    """Gemini gave up (e.g. MALFORMED_FUNCTION_CALL) without any content: an agent must not read
    that as a final empty answer."""
    detail = candidate.get("finishMessage")
    suffix = f": {detail}" if isinstance(detail, str) and detail else "."
    return upstream_error(f"Gemini ended its reply with {reason} and no content{suffix}")


def finish_reason(gemini_reason: str) -> str:
    return FINISH_REASONS.get(gemini_reason, "stop")


def usage(metadata: UsageMetadata | None) -> dict[str, Any]:
    """OpenAI usage from Gemini's usageMetadata (thinking counts as completion, as OpenAI bills it)."""
    meta = metadata or {}
    prompt = meta.get("promptTokenCount", 0) + meta.get("toolUsePromptTokenCount", 0)
    thoughts = meta.get("thoughtsTokenCount", 0)
    completion = meta.get("candidatesTokenCount", 0) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": meta.get("cachedContentTokenCount", 0)},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def block_reason(response: GenerateContentResponse) -> str | None:
    """The reason Google refused the prompt itself, when it did (200, no candidates)."""
    feedback = response.get("promptFeedback")
    if isinstance(feedback, dict) and not response.get("candidates"):
        reason = feedback.get("blockReason")
        return str(reason) if reason else None
    return None


def block_message(response: GenerateContentResponse, reason: str) -> str:
    feedback = response.get("promptFeedback")
    detail = feedback.get("blockReasonMessage") if isinstance(feedback, dict) else None
    return f"Gemini blocked the prompt ({reason})" + (
        f": {detail}" if isinstance(detail, str) and detail else "."
    )


def filter_message(reason: str) -> str:
    return f"Gemini stopped the reply ({reason})."


def split_parts(parts: list[Part]) -> tuple[str, str]:
    """(answer text, thought text) of a candidate's parts; thoughts never go into the answer."""
    answer: list[str] = []
    thoughts: list[str] = []
    for part in parts:
        text = part.get("text")
        if text:
            (thoughts if part.get("thought") else answer).append(text)
    return "".join(answer), "".join(thoughts)


def candidate_parts(candidate: Candidate) -> list[Part]:
    content = candidate.get("content")
    if not isinstance(content, dict):
        return []
    parts = content.get("parts")
    return parts if isinstance(parts, list) else []


ReasoningOutput = Literal["reasoning_content", "think_tags", "hidden"]
THINK_OPEN: Final = "<think>\n"
THINK_CLOSE: Final = "\n</think>\n\n"


def _message(
    content: str,
    reasoning: str,
    tool_calls: list[dict[str, Any]] | None = None,
    output: ReasoningOutput = "reasoning_content",
) -> dict[str, Any]:
    if reasoning and output == "think_tags":
        content = f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{content}"
    # OpenAI's convention: content is null when the reply is only tool calls.
    text: str | None = None if tool_calls and not content else content
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if reasoning and output == "reasoning_content":
        message["reasoning_content"] = reasoning
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def arguments_json(part: Part) -> str:
    args = part["functionCall"].get("args")
    value = args if isinstance(args, dict) else {}
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        # An integer beyond 64 bits, which orjson cannot write: the standard library can, exactly.
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def tool_calls_of(parts: list[Part], names: NameMap) -> list[dict[str, Any]]:
    return [
        tool_call(part, names, arguments_json(part))
        for part in parts
        if isinstance(part.get("functionCall"), dict)
    ]


def choice_finish(reason: str, has_tool_calls: bool) -> str:
    """Gemini never says "tool_calls": a normal stop with function calls is one."""
    mapped = finish_reason(reason)
    return "tool_calls" if has_tool_calls and mapped == "stop" else mapped


class Translated(NamedTuple):
    completion: dict[str, Any]
    notes: list[str]  # Gemini finish/block reasons worth logging
    signatures: list[tuple[str, str]]  # (key, thought signature) pairs worth remembering


def to_chat_completion(
    response: GenerateContentResponse,
    *,
    model: str,
    completion_id: str,
    created: int,
    names: NameMap | None = None,
    reasoning_output: ReasoningOutput = "reasoning_content",
    conversation: str = "",
) -> Translated:
    """The chat.completion for `response`. `conversation`: the request's ConversationDigest value,
    which keys remembered text signatures."""
    notes: list[str] = []
    signatures: list[tuple[str, str]] = []
    choices: list[dict[str, Any]] = []
    blocked = block_reason(response)
    if blocked is not None:
        notes.append(f"prompt blocked: {blocked}")
        # refusal is where OpenAI clients look for "the model declined"; content stays "".
        message = {**_message("", ""), "refusal": block_message(response, blocked)}
        choices.append({"index": 0, "message": message, "logprobs": None, "finish_reason": "content_filter"})
    for position, candidate in enumerate(response.get("candidates") or ()):
        parts = candidate_parts(candidate)
        content, reasoning = split_parts(parts)
        calls = tool_calls_of(parts, names or NameMap(()))
        reason = candidate.get("finishReason") or "STOP"
        if reason in NOTABLE_REASONS or FINISH_REASONS.get(reason) == "content_filter":
            notes.append(f"finish reason: {reason}")
        if reason in NOTABLE_REASONS and not (content or calls):
            raise empty_failure(reason, candidate)
        message = _message(content, reasoning, calls, reasoning_output)
        signatures.extend(_signatures(parts, message, conversation))
        finish = choice_finish(reason, bool(calls))
        if finish == "content_filter":
            message["refusal"] = filter_message(reason)
        choices.append(
            {
                "index": candidate.get("index", position),
                "message": message,
                "logprobs": openai_logprobs(candidate.get("logprobsResult")),
                "finish_reason": finish,
            }
        )
    if not choices:
        raise upstream_error("Gemini answered with neither a candidate nor a block reason.")
    choices.sort(key=lambda choice: int(choice["index"]))
    completion = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage(response.get("usageMetadata")),
    }
    return Translated(completion, notes, signatures)


def _signatures(parts: list[Part], message: dict[str, Any], conversation: str) -> list[tuple[str, str]]:
    found = [
        (call_key(call["id"]), call["extra_content"]["google"]["thought_signature"])
        for call in message.get("tool_calls") or ()
        if "extra_content" in call
    ]
    text_signatures = [
        p["thoughtSignature"]
        for p in parts
        if isinstance(p.get("thoughtSignature"), str) and "functionCall" not in p and not p.get("thought")
    ]
    if text_signatures and message["content"]:
        found.append((text_key(message["content"], conversation), text_signatures[-1]))
    return found
