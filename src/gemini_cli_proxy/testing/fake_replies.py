"""What the fake Google answers: the scripting vocabulary (`Reply`) and the Google-shaped bodies behind it.

Everything here is pure: a `Reply` plus a `ServeContext` (which API, which model, the request) renders to a
plan (`PlainPlan`, `BodyPlan` or `StreamPlan`) that the routes module writes to the wire. Shapes follow
the captures in shared/gemini-recordings (usage on every streamed event, cumulative; finishReason only on
the last; `responseId` shared by every event of one response).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from gemini_cli_proxy.testing.fake_errors import error_body, permission_body, rate_limit_body
from gemini_cli_proxy.testing.fake_vertex import vertex_events

ApiName = Literal["aistudio", "codeassist", "vertex", "oauth", "other"]
ReplyKind = Literal[
    "text", "response", "stream", "error", "rate_limited", "permission_denied", "raw", "delay", "wire"
]

JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
DEFAULT_TEXT = "Hello from fake Gemini."


def encode_pretty(body: Any) -> bytes:
    """Google pretty-prints JSON bodies with two-space indents (see the JSON-array stream captures)."""
    return orjson.dumps(body, option=orjson.OPT_INDENT_2)


@dataclass(frozen=True, slots=True, eq=False)
class Reply:
    """One scripted answer to a generate/stream call; build it with the classmethods, never directly."""

    kind: ReplyKind
    text_value: str = ""
    finish_reason: str = "STOP"
    chunks: int | None = None
    usage: Mapping[str, Any] | None = None
    thought_signature: str | None = None
    body: Any = None
    events: tuple[Mapping[str, Any], ...] = ()
    seconds: float = 0.0
    break_after: int | None = None
    status: int = 200
    content_type: str = JSON_CONTENT_TYPE
    then: Reply | None = None
    wrap_in_array: bool = False
    retry_delay: str = "1s"
    quota_id: str = ""
    reason: str | None = None
    pieces: tuple[bytes, ...] = ()
    repeat: int = 1
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(
        cls,
        text: str,
        *,
        finish_reason: str = "STOP",
        chunks: int | None = None,
        usage: Mapping[str, Any] | None = None,
        thought_signature: str | None = None,
    ) -> Reply:
        """A text answer; streamed as `chunks` events (default: the fake's default_stream_chunks)."""
        if chunks is not None and chunks < 1:
            raise ValueError("chunks must be at least 1")
        return cls(
            "text",
            text_value=text,
            finish_reason=finish_reason,
            chunks=chunks,
            usage=usage,
            thought_signature=thought_signature,
        )

    @classmethod
    def response(cls, body: Mapping[str, Any]) -> Reply:
        """Exactly this GenerateContentResponse (one event when streamed; enveloped for Code Assist)."""
        return cls("response", body=body)

    @classmethod
    def stream(
        cls, events: Sequence[Mapping[str, Any]], *, delay: float = 0.0, break_after: int | None = None
    ) -> Reply:
        """Exactly these events, `delay` s before each; `break_after=k` cuts the connection after k."""
        if not events:
            raise ValueError("a stream needs at least one event")
        return cls("stream", events=tuple(events), seconds=delay, break_after=break_after)

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        google_status: str,
        *,
        details: Sequence[Mapping[str, Any]] | None = None,
        wrap_in_array: bool = False,
    ) -> Reply:
        """A Google error; `wrap_in_array` gives Code Assist's `[{"error": {...}}]` form."""
        return cls(
            "error",
            status=status,
            body=error_body(status, message, google_status, details),
            wrap_in_array=wrap_in_array,
        )

    @classmethod
    def rate_limited(
        cls,
        *,
        retry_delay: str = "1s",
        quota_id: str = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        reason: str | None = None,
    ) -> Reply:
        """429 RESOURCE_EXHAUSTED with QuotaFailure, Help, RetryInfo (and ErrorInfo when `reason`).
        `retry_delay` is the exact delay, as the message states it ("Please retry in 1.5s");
        RetryInfo carries it truncated to whole seconds ("1s"), as Google's does."""
        return cls("rate_limited", status=429, retry_delay=retry_delay, quota_id=quota_id, reason=reason)

    @classmethod
    def unavailable(cls) -> Reply:
        """503: what Google answers when a model is overloaded."""
        return cls.error(503, "The model is overloaded. Please try again later.", "UNAVAILABLE")

    @classmethod
    def permission_denied(cls, reason: str = "PERMISSION_DENIED") -> Reply:
        """403 PERMISSION_DENIED carrying an ErrorInfo with `reason` (e.g. CONSUMER_INVALID)."""
        return cls("permission_denied", status=403, reason=reason)

    @classmethod
    def raw(cls, status: int, body: bytes, content_type: str = "text/html") -> Reply:
        """Arbitrary bytes, for garbage and proxy-in-the-middle pages."""
        return cls("raw", status=status, body=bytes(body), content_type=content_type)

    @classmethod
    def wire(
        cls,
        pieces: Sequence[bytes],
        *,
        status: int = 200,
        content_type: str = JSON_CONTENT_TYPE,
        headers: Mapping[str, str] | None = None,
        interval: float = 0.0,
        repeat: int = 1,
    ) -> Reply:
        """Exactly these bytes, no envelope and no framing: the pieces written one by one, `interval`
        s apart, the whole sequence `repeat` times. For replies no real Google gives (see
        fake_misbehaving)."""
        return cls(
            "wire",
            status=status,
            content_type=content_type,
            pieces=tuple(pieces),
            seconds=interval,
            repeat=repeat,
            headers=tuple((headers or {}).items()),
        )

    @classmethod
    def delay(cls, seconds: float, then: Reply | None = None) -> Reply:
        """Sleep before answering with `then` (or the default echo when None)."""
        return cls("delay", seconds=seconds, then=then)


@dataclass(frozen=True, slots=True)
class ServeContext:
    """What rendering needs to know about the call being answered."""

    api: ApiName
    model: str
    request: Mapping[str, Any]
    stream: bool
    default_chunks: int
    stream_delay: float


@dataclass(frozen=True, slots=True)
class PlainPlan:
    """Bytes to send as they are (errors, raw replies)."""

    status: int
    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class BodyPlan:
    """One GenerateContentResponse for a non-streaming call (the routes add Code Assist's envelope)."""

    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """Events for a streaming call; `delay` before each event (before the first too if `delay_first`)."""

    events: Sequence[Mapping[str, Any]]
    delay: float
    delay_first: bool
    break_after: int | None


@dataclass(frozen=True, slots=True)
class WirePlan:
    """Bytes written piece by piece, `interval` s apart, the pieces `repeat` times over."""

    status: int
    headers: Mapping[str, str]
    pieces: Sequence[bytes]
    interval: float
    repeat: int


Plan = PlainPlan | BodyPlan | StreamPlan | WirePlan


def unwrap_delays(reply: Reply | None) -> tuple[float, Reply | None]:
    """Total sleep of nested `Reply.delay`s and the reply finally served (None: the default)."""
    seconds = 0.0
    while reply is not None and reply.kind == "delay":
        seconds += reply.seconds
        reply = reply.then
    return seconds, reply


def render(reply: Reply | None, ctx: ServeContext) -> Plan:
    """Turn a scripted reply (None: the default echo) into what the routes write."""
    if reply is None:
        return _render_texts(
            _echo_texts(ctx.request), ctx, chunks=None, finish_reason="STOP", usage=None, sig=None
        )
    kind = reply.kind
    if kind == "text":
        return _render_texts(
            [reply.text_value],
            ctx,
            chunks=reply.chunks,
            finish_reason=reply.finish_reason,
            usage=reply.usage,
            sig=reply.thought_signature,
        )
    if kind == "response":
        if ctx.stream:
            return StreamPlan([reply.body], 0.0, False, None)
        return BodyPlan(reply.body)
    if kind == "stream":
        if ctx.stream:
            return StreamPlan(reply.events, reply.seconds, True, reply.break_after)
        return BodyPlan(reply.events[-1])
    if kind == "raw":
        return PlainPlan(reply.status, reply.body, reply.content_type)
    if kind == "wire":
        headers = {"Content-Type": reply.content_type, **dict(reply.headers)}
        return WirePlan(reply.status, headers, reply.pieces, reply.seconds, reply.repeat)
    if kind == "error":
        body: Any = reply.body
    elif kind == "rate_limited":
        body = rate_limit_body(ctx.api, ctx.model, reply.retry_delay, reply.quota_id, reply.reason)
    elif kind == "permission_denied":
        body = permission_body(ctx.api, reply.reason or "PERMISSION_DENIED")
    else:  # "delay" never reaches here: the routes unwrap delays first.
        raise ValueError(f"cannot render reply kind {kind!r}")
    if reply.wrap_in_array:
        body = [body]
    return PlainPlan(reply.status, encode_pretty(body), JSON_CONTENT_TYPE)


def _echo_texts(request: Mapping[str, Any]) -> list[str]:
    """The default answer: echo the last user turn, once per requested candidate."""
    text = DEFAULT_TEXT
    contents = request.get("contents")
    if isinstance(contents, list):
        for content in reversed(contents):
            if content.get("role") in (None, "", "user"):
                joined = "".join(
                    part["text"]
                    for part in content.get("parts", ())
                    if isinstance(part.get("text"), str) and not part.get("thought")
                )
                if joined:
                    text = "Echo: " + joined
                break
    count = _candidate_count(request)
    if count == 1:
        return [text]
    return [f"[{i}] {text}" for i in range(count)]


def _candidate_count(request: Mapping[str, Any]) -> int:
    config = request.get("generationConfig") or request.get("generation_config")
    if not isinstance(config, dict):
        return 1
    count = config.get("candidateCount", config.get("candidate_count", 1))
    return count if isinstance(count, int) and count > 0 else 1


def prompt_token_count(request: Mapping[str, Any]) -> int:
    """Whitespace words of every text part in the request (contents and system instruction), at least 1."""
    words = 0
    contents = request.get("contents")
    blocks: list[Any] = list(contents) if isinstance(contents, list) else []
    system = request.get("systemInstruction") or request.get("system_instruction")
    if isinstance(system, dict):
        blocks.append(system)
    for block in blocks:
        parts = block.get("parts") if isinstance(block, dict) else None
        if isinstance(parts, list):
            for part in parts:
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str):
                    words += len(text.split())
    return max(words, 1)


def usage_metadata(prompt: int, candidates: int) -> dict[str, Any]:
    """usageMetadata as Google writes it: zero candidate counts are omitted (proto3 JSON drops defaults)."""
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    if candidates:
        usage["candidatesTokenCount"] = candidates
    usage["totalTokenCount"] = prompt + candidates
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    return usage


def response_id() -> str:
    """A fresh responseId: 24 url-safe characters, like Google's."""
    return secrets.token_urlsafe(18)


def split_text(text: str, pieces: int) -> list[str]:
    """`pieces` slices of nearly equal length; some are empty only when the text is shorter than `pieces`."""
    size = len(text)
    return [text[(i * size) // pieces : ((i + 1) * size) // pieces] for i in range(pieces)]


def _render_texts(
    texts: list[str],
    ctx: ServeContext,
    *,
    chunks: int | None,
    finish_reason: str,
    usage: Mapping[str, Any] | None,
    sig: str | None,
) -> Plan:
    count = (chunks or ctx.default_chunks) if ctx.stream else 1
    prompt = prompt_token_count(ctx.request) if usage is None else 0
    rid = response_id()
    split = [split_text(t, count) for t in texts] if count > 1 else [[t] for t in texts]
    events: list[dict[str, Any]] = []
    last = count - 1
    for step in range(count):
        candidates: list[dict[str, Any]] = []
        words = 0
        for index, pieces in enumerate(split):
            part: dict[str, Any] = {"text": pieces[step]}
            if step == last and sig is not None:
                part["thoughtSignature"] = sig
            candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}}
            if step == last:
                candidate["finishReason"] = finish_reason
            candidate["index"] = index
            candidates.append(candidate)
            if usage is None:
                # Cumulative like the recordings: the words of everything sent so far for this candidate.
                words += (
                    len("".join(pieces[: step + 1]).split()) if step != last else len(texts[index].split())
                )
        events.append(
            {
                "candidates": candidates,
                "usageMetadata": dict(usage) if usage is not None else usage_metadata(prompt, words),
                "modelVersion": ctx.model,
                "responseId": rid,
            }
        )
    if ctx.api == "vertex":
        events = vertex_events(events)
    if not ctx.stream:
        return BodyPlan(events[0])
    return StreamPlan(events, ctx.stream_delay, False, None)
