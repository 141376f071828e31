"""Gemini's GenerateContentResponse, as the translators read it: TypedDicts and their validators. Pure.

Google adds fields often, so every shape allows unknown keys and keeps them; the fields the
translators rely on are typed, so a reply of the wrong shape fails here, once, instead of deep
inside a translator (where it was a 500, or worse, half a stream). Counts accept what JSON may
carry for an integer ("7" as well as 7), as protobuf's JSON mapping allows; text must be text.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

_OPEN = ConfigDict(extra="allow")
# Token counts and indexes: non-negative and small enough for every JSON encoder on the way out.
Count = Annotated[int, Field(ge=0, le=2**53)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


@with_config(_OPEN)
class FunctionCall(TypedDict, total=False):
    name: str
    args: dict[str, Any]
    id: str


@with_config(_OPEN)
class Part(TypedDict, total=False):
    text: str
    thought: bool
    thoughtSignature: str
    functionCall: FunctionCall


@with_config(_OPEN)
class Content(TypedDict, total=False):
    role: str
    parts: list[Part]


@with_config(_OPEN)
class LogprobToken(TypedDict, total=False):
    token: str
    logProbability: Finite


@with_config(_OPEN)
class TopCandidates(TypedDict, total=False):
    candidates: list[LogprobToken]


@with_config(_OPEN)
class LogprobsResult(TypedDict, total=False):
    chosenCandidates: list[LogprobToken]
    topCandidates: list[TopCandidates]


@with_config(_OPEN)
class Candidate(TypedDict, total=False):
    content: Content
    finishReason: str
    finishMessage: str
    index: Count
    logprobsResult: LogprobsResult


@with_config(_OPEN)
class PromptFeedback(TypedDict, total=False):
    blockReason: str
    blockReasonMessage: str


@with_config(_OPEN)
class UsageMetadata(TypedDict, total=False):
    promptTokenCount: Count
    candidatesTokenCount: Count
    thoughtsTokenCount: Count
    toolUsePromptTokenCount: Count
    cachedContentTokenCount: Count
    totalTokenCount: Count


@with_config(_OPEN)
class GenerateContentResponse(TypedDict, total=False):
    candidates: list[Candidate]
    promptFeedback: PromptFeedback
    usageMetadata: UsageMetadata
    modelVersion: str
    responseId: str
    # Inside a stream that began as a 200, Google reports a failure as an event of its own.
    error: dict[str, Any]


@with_config(_OPEN)
class CodeAssistReply(TypedDict, total=False):
    """Code Assist's envelope around each reply and each stream event."""

    response: GenerateContentResponse
    traceId: str
    error: dict[str, Any]


GENERATE_RESPONSE: Final = TypeAdapter(GenerateContentResponse)
CODE_ASSIST_REPLY: Final = TypeAdapter(CodeAssistReply)


class WrongShape(ValueError):
    """Valid JSON that is not the reply Google documents; says where, never what (no values)."""


def _where(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    location = ".".join(str(part) for part in first["loc"]) or "the reply"
    return f"{location}: {first['msg']}"


def _validate(adapter: TypeAdapter[Any], raw: bytes) -> Any:
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        if exc.errors(include_url=False)[0]["type"] in {"json_invalid", "json_type"}:
            raise WrongShape("not JSON") from None
        raise WrongShape(_where(exc)) from None


def generate_response(raw: bytes) -> GenerateContentResponse:
    """A GenerateContentResponse (AI Studio, Vertex) from its JSON; raises WrongShape."""
    reply: GenerateContentResponse = _validate(GENERATE_RESPONSE, raw)
    return reply


def code_assist_reply(raw: bytes) -> CodeAssistReply:
    """A Code Assist envelope from its JSON; raises WrongShape."""
    reply: CodeAssistReply = _validate(CODE_ASSIST_REPLY, raw)
    return reply
