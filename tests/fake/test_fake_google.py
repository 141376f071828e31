"""Tests for the fake Google upstream itself: routes, auth, scripted replies, validation, OAuth and LRO.

Shapes are checked against the real captures in shared/gemini-recordings when that folder is present.
Each test runs its own fake on 127.0.0.1:0 inside `asyncio.run` (no pytest-asyncio here).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gemini_cli_proxy.testing import FakeGoogle, FakeGoogleServer, Reply, serve_fake

Scenario = Callable[[aiohttp.ClientSession], Awaitable[None]]
KEY = {"x-goog-api-key": "test-key"}
MODEL = "gemini-2.5-flash"
HELLO = {"contents": [{"role": "user", "parts": [{"text": "hello there friend"}]}]}
SSE_FRAME = re.compile(rb"^(data: \{[^\r\n]*\}\r\n\r\n)+$")
_REPO_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# Recordings are looked up in the repo's copy first, then in the shared corpus it was copied from.
_RECORDING_DIRS = [
    Path(p)
    for p in (
        os.environ.get("GEMINI_RECORDINGS_DIR"),
        _REPO_FIXTURES,
        Path(__file__).resolve().parents[2].parent / "shared" / "gemini-recordings",
    )
    if p
]


def optional_recording(name: str) -> dict[str, Any] | None:
    for folder in _RECORDING_DIRS:
        path = folder / name
        if path.is_file():
            data: dict[str, Any] = json.loads(path.read_text())
            return data
    return None


def recording(name: str) -> dict[str, Any]:
    data = optional_recording(name)
    assert data is not None, f"recording {name} is missing from tests/fixtures"
    return data


def all_recordings() -> list[dict[str, Any]]:
    """Every AI Studio recording found in any of the folders (first copy of each name wins)."""
    found: dict[str, Path] = {}
    for folder in _RECORDING_DIRS:
        if folder.is_dir():
            for path in sorted(folder.glob("aistudio-*.json")):
                found.setdefault(path.name, path)
    return [json.loads(path.read_text()) for _, path in sorted(found.items())]


@dataclass
class Resp:
    status: int
    headers: Mapping[str, str]
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)


@contextlib.asynccontextmanager
async def running(fake: FakeGoogle) -> AsyncIterator[aiohttp.ClientSession]:
    runner, port = await serve_fake(fake, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as session:
            yield session
    finally:
        await runner.cleanup()


def run_with(fake: FakeGoogle, scenario: Scenario) -> None:
    async def main() -> None:
        async with running(fake) as session:
            await scenario(session)

    asyncio.run(main())


async def call(
    session: aiohttp.ClientSession,
    path: str,
    body: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
    method: str = "POST",
    data: bytes | Mapping[str, str] | None = None,
) -> Resp:
    payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
    send_headers = dict(headers or {})
    if data is None and body is not None:
        send_headers.setdefault("Content-Type", "application/json")
    async with session.request(method, path, data=payload, headers=send_headers) as response:
        return Resp(response.status, dict(response.headers), await response.read())


def gen_path(model: str = MODEL, *, stream: bool = False, sse: bool = True) -> str:
    if not stream:
        return f"/v1beta/models/{model}:generateContent"
    return f"/v1beta/models/{model}:streamGenerateContent" + ("?alt=sse" if sse else "")


def sse_events(raw: bytes) -> list[Any]:
    """Decode an SSE body, asserting Google's exact framing on the way."""
    assert SSE_FRAME.match(raw), raw[:200]
    return [json.loads(frame[len(b"data: ") :]) for frame in raw.split(b"\r\n\r\n") if frame]


def candidate_text(event: Mapping[str, Any], index: int = 0) -> str:
    return "".join(p.get("text", "") for p in event["candidates"][index]["content"]["parts"])


async def oauth_login(session: aiohttp.ClientSession, refresh_token: str) -> dict[str, str]:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": "cid",
        "client_secret": "cs",
    }
    resp = await call(session, "/token", data=form)
    assert resp.status == 200, resp.raw
    return {"Authorization": "Bearer " + resp.json()["access_token"]}


def envelope(request: Any, project: str | None = "proj-1", model: str = MODEL) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "user_prompt_id": "p-1", "request": request}
    if project is not None:
        body["project"] = project
    return body


# -- AI Studio: default echo ------------------------------------------------------------------------------


def test_default_generate_echoes_last_user_turn_with_recorded_shape() -> None:
    fake = FakeGoogle()

    async def scenario(s: aiohttp.ClientSession) -> None:
        resp = await call(s, gen_path(), HELLO, headers=KEY)
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json; charset=UTF-8"
        body = resp.json()
        assert list(body) == ["candidates", "usageMetadata", "modelVersion", "responseId"]
        candidate = body["candidates"][0]
        assert candidate == {
            "content": {"parts": [{"text": "Echo: hello there friend"}], "role": "model"},
            "finishReason": "STOP",
            "index": 0,
        }
        assert body["usageMetadata"] == {
            "promptTokenCount": 3,
            "candidatesTokenCount": 4,
            "totalTokenCount": 7,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 3}],
        }
        assert body["modelVersion"] == MODEL
        assert len(body["responseId"]) >= 20
        recorded = recording("aistudio-generate-system-instruction-1.json")["response_body"]
        assert set(body) == set(recorded)
        assert set(candidate) == set(recorded["candidates"][0])

    run_with(fake, scenario)


def test_default_echo_picks_last_user_turn_and_falls_back() -> None:
    fake = FakeGoogle()
    history = {
        "systemInstruction": {"role": "user", "parts": [{"text": "be brief"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "first"}]},
            {"role": "model", "parts": [{"text": "answer"}]},
            {"role": "user", "parts": [{"text": "second "}, {"text": "turn"}]},
        ],
    }
    tool_turn = {
        "contents": [
            {"role": "user", "parts": [{"text": "call it"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"ok": True}}}]},
        ]
    }

    async def scenario(s: aiohttp.ClientSession) -> None:
        body = (await call(s, gen_path(), history, headers=KEY)).json()
        assert candidate_text(body) == "Echo: second turn"
        # Words of every text in the request, the system instruction included.
        assert body["usageMetadata"]["promptTokenCount"] == 6
        body = (await call(s, gen_path(), tool_turn, headers=KEY)).json()
        assert candidate_text(body) == "Hello from fake Gemini."

    run_with(fake, scenario)


def test_candidate_count_gives_indexed_candidates() -> None:
    fake = FakeGoogle()
    request = {**HELLO, "generationConfig": {"candidateCount": 3}}

    async def scenario(s: aiohttp.ClientSession) -> None:
        body = (await call(s, gen_path(), request, headers=KEY)).json()
        assert [c["index"] for c in body["candidates"]] == [0, 1, 2]
        assert [candidate_text(body, i) for i in range(3)] == [
            f"[{i}] Echo: hello there friend" for i in range(3)
        ]
        events = sse_events((await call(s, gen_path(stream=True), request, headers=KEY)).raw)
        for i in range(3):
            assert "".join(candidate_text(e, i) for e in events) == f"[{i}] Echo: hello there friend"
        assert all(c["finishReason"] == "STOP" for c in events[-1]["candidates"])

    run_with(fake, scenario)


def test_default_sse_stream_framing_usage_and_finish_reason() -> None:
    fake = FakeGoogle()

    async def scenario(s: aiohttp.ClientSession) -> None:
        resp = await call(s, gen_path(stream=True), HELLO, headers=KEY)
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream"
        events = sse_events(resp.raw)
        assert len(events) == 3
        assert "".join(candidate_text(e) for e in events) == "Echo: hello there friend"
        assert all(candidate_text(e) for e in events)  # no empty piece when the text is long enough
        assert ["finishReason" in e["candidates"][0] for e in events] == [False, False, True]
        assert len({e["responseId"] for e in events}) == 1
        counts = [e["usageMetadata"].get("candidatesTokenCount", 0) for e in events]
        assert counts == sorted(counts) and counts[-1] == 4
        assert all(e["usageMetadata"]["promptTokenCount"] == 3 for e in events)
        recorded = recording("aistudio-stream-sse-usage-1.json")
        assert SSE_FRAME.match(recorded["response_raw"].encode())
        assert set(events[-1]) == set(recorded["response_events"][-1])
        assert set(events[-1]["candidates"][0]) == set(recorded["response_events"][-1]["candidates"][0])

    run_with(fake, scenario)


def test_json_array_stream_mode_matches_google_framing() -> None:
    fake = FakeGoogle(default_stream_chunks=2)
    recorded = optional_recording("aistudio-stream-jsonarray-function-call-1.json")
    google_start = '[{\n  "candidates": [\n    {\n      "content": {'

    async def scenario(s: aiohttp.ClientSession) -> None:
        resp = await call(s, gen_path(stream=True, sse=False), HELLO, headers=KEY)
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json; charset=UTF-8"
        text = resp.raw.decode()
        shape = re.compile(r"^\[\{\n.*\n\}\n,\r\n\{\n.*\n\}\n\]$", re.DOTALL)
        assert shape.match(text) and text.startswith(google_start)
        assert text.count("\n,\r\n") == 1
        events = json.loads(text)
        assert "".join(candidate_text(e) for e in events) == "Echo: hello there friend"
        if recorded is not None:
            assert shape.match(recorded["response_raw"]) and recorded["response_raw"].startswith(google_start)

    run_with(fake, scenario)


def test_stream_chunk_counts() -> None:
    fake = FakeGoogle(default_stream_chunks=20)

    async def scenario(s: aiohttp.ClientSession) -> None:
        short = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        events = sse_events((await call(s, gen_path(stream=True), short, headers=KEY)).raw)
        # "Echo: hi" is shorter than 20 characters: still 20 events, as a 20-chunk benchmark expects.
        assert len(events) == 20
        assert "".join(candidate_text(e) for e in events) == "Echo: hi"
        fake.push(Reply.text("abcdefghij", chunks=4))
        events = sse_events((await call(s, gen_path(stream=True), short, headers=KEY)).raw)
        assert [candidate_text(e) for e in events] == ["ab", "cde", "fg", "hij"]

    run_with(fake, scenario)


# -- AI Studio: auth and model lookup -----------------------------------------------------------------------


def test_missing_key_is_403_permission_denied() -> None:
    fake = FakeGoogle()

    async def scenario(s: aiohttp.ClientSession) -> None:
        resp = await call(s, gen_path(), HELLO)
        assert resp.status == 403
        assert resp.json() == {
            "error": {
                "code": 403,
                "message": "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call this API.",
                "status": "PERMISSION_DENIED",
            }
        }

    run_with(fake, scenario)


def test_unknown_key_is_400_api_key_invalid() -> None:
    fake = FakeGoogle(api_keys=["good"])

    async def scenario(s: aiohttp.ClientSession) -> None:
        resp = await call(s, gen_path(), HELLO, headers={"x-goog-api-key": "bad"})
        assert resp.status == 400
        assert resp.json() == {
            "error": {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                        "locale": "en-US",
                        "message": "API key not valid. Please pass a valid API key.",
                    },
                ],
            }
        }
        assert (await call(s, gen_path(), HELLO, headers={"x-goog-api-key": "good"})).status == 200

    run_with(fake, scenario)


def test_key_in_query_is_accepted_but_recorded() -> None:
    fake = FakeGoogle(api_keys={"good"})

    async def scenario(s: aiohttp.ClientSession) -> None:
        assert (await call(s, gen_path() + "?key=good", HELLO)).status == 200
        assert (await call(s, gen_path(), HELLO, headers={"x-goog-api-key": "good"})).status == 200
        first, second = fake.generate_requests()
        assert first.key_in_query and first.api_key == "good"
        assert not second.key_in_query and second.headers["x-goog-api-key"] == "good"

    run_with(fake, scenario)


def test_missing_model_answers_recorded_404() -> None:
    recorded = recording("aistudio-error-404-1.json")
    fake = FakeGoogle()
    fake.missing_models.add(recorded["model"])

    async def scenario(s: aiohttp.ClientSession) -> None:
        resp = await call(s, recorded["endpoint"], recorded["request"], headers=KEY)
        assert resp.status == recorded["response_status"]
        assert resp.json() == recorded["response_body"]
        # Outside the known prefix: the same 404.
        resp = await call(s, gen_path("gpt-4o", stream=True), HELLO, headers=KEY)
        assert resp.status == 404 and resp.json()["error"]["status"] == "NOT_FOUND"
        assert "streamGenerateContent" in resp.json()["error"]["message"]

    run_with(fake, scenario)


# -- Scripted replies ---------------------------------------------------------------------------------------


def test_reply_text_options_generate_and_stream() -> None:
    fake = FakeGoogle()
    usage = {"promptTokenCount": 9, "candidatesTokenCount": 2, "totalTokenCount": 11}

    async def scenario(s: aiohttp.ClientSession) -> None:
        fake.push(Reply.text("Cut sh", finish_reason="MAX_TOKENS", usage=usage, thought_signature="c2ln"))
        body = (await call(s, gen_path(), HELLO, headers=KEY)).json()
        assert body["candidates"][0]["content"]["parts"] == [{"text": "Cut sh", "thoughtSignature": "c2ln"}]
        assert body["candidates"][0]["finishReason"] == "MAX_TOKENS"
        assert body["usageMetadata"] == usage
        fake.push(Reply.text("abc def!", chunks=2, thought_signature="c2ln", usage=usage))
        events = sse_events((await call(s, gen_path(stream=True), HELLO, headers=KEY)).raw)
        assert [candidate_text(e) for e in events] == ["abc ", "def!"]
        assert "thoughtSignature" not in events[0]["candidates"][0]["content"]["parts"][0]
        assert events[1]["candidates"][0]["content"]["parts"][0]["thoughtSignature"] == "c2ln"
        assert all(e["usageMetadata"] == usage for e in events)

    run_with(fake, scenario)


def test_reply_response_is_served_verbatim() -> None:
    blocked = recording("aistudio-generate-prompt-blocked-1.json")["response_body"]
    fake = FakeGoogle()

    async def scenario(s: aiohttp.ClientSession) -> None:
        fake.push(Reply.response(blocked))
        assert (await call(s, gen_path(), HELLO, headers=KEY)).json() == blocked
        fake.push(Reply.response(blocked))
        assert sse_events((await call(s, gen_path(stream=True), HELLO, headers=KEY)).raw) == [blocked]

    run_with(fake, scenario)


def test_reply_stream_events_delay_and_generate_takes_last() -> None:
    recorded = recording("aistudio-stream-sse-thinking-1.json")["response_events"]
    fake = FakeGoogle()

    async def scenario(s: aiohttp.ClientSession) -> None:
        fake.push(Reply.stream(recorded))
        assert sse_events((await call(s, gen_path(stream=True), HELLO, headers=KEY)).raw) == recorded
        fake.push(Reply.stream(recorded))
        assert (await call(s, gen_path(), HELLO, headers=KEY)).json() == recorded[-1]
        fake.push(Reply.stream([{"a": 1}, {"b": 2}], delay=0.05))
        started = time.monotonic()
        assert sse_events((await call(s, gen_path(stream=True), HELLO, headers=KEY)).raw) == [
            {"a": 1},
            {"b": 2},
        ]
        assert time.monotonic() - started >= 0.1

    run_with(fake, scenario)


@pytest.mark.parametrize(("break_after", "sse"), [(0, True), (2, True), (2, False), (3, True)])
def test_reply_stream_break_after_cuts_the_connection(break_after: int, sse: bool) -> None:
    fake = FakeGoogle()
    events = [{"n": 1}, {"n": 2}, {"n": 3}]

    async def scenario(s: aiohttp.ClientSession) -> None:
        fake.push(Reply.stream(events, break_after=break_after))
        received = b""
        async with s.post(gen_path(stream=True, sse=sse), json=HELLO, headers=KEY) as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                async for chunk in response.content.iter_any():
                    received += chunk
        if sse:
            assert received.count(b"data: ") == break_after
        else:
            assert received.count(b'"n"') == break_after and not received.endswith(b"]")
        # The fake keeps serving after a cut.
        assert (await call(s, gen_path(), HELLO, headers=KEY)).status == 200

    run_with(fake, scenario)


def test_reply_error_kinds() -> None:
    recorded: dict[str, Any] = {
        "code": 400,
        "message": "You can only set only one of thinking budget and thinking level.",
        "status": "INVALID_ARGUMENT",
    }
    capture = optional_recording("aistudio-error-400-2.json")
    assert capture is None or capture["response_body"] == {"error": recorded}
    fake = FakeGoogle()

    async def scenario(s: aiohttp.ClientSession) -> None:
        fake.push(Reply.error(400, recorded["message"], recorded["status"]))
        resp = await call(s, gen_path(stream=True), HELLO, headers=KEY)
        assert resp.status == 400 and resp.json() == {"error": recorded}
        assert resp.headers["Content-Type"] == "application/json; charset=UTF-8"
        fake.push(Reply.error(500, "Internal error encountered.", "INTERNAL", wrap_in_array=True))
        resp = await call(s, gen_path(), HELLO, headers=KEY)
        assert resp.status == 500
        assert resp.json() == [
            {"error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}}
        ]
        fake.push(Reply.unavailable())
        resp = await call(s, gen_path(), HELLO, headers=KEY)
        assert resp.status == 503
        assert resp.json() == {
            "error": {
                "code": 503,
                "message": "The model is overloaded. Please try again later.",
                "status": "UNAVAILABLE",
            }
        }
        fake.push(Reply.permission_denied("CONSUMER_INVALID"))
        resp = await call(s, gen_path(), HELLO, headers=KEY)
        error = resp.json()["error"]
        assert resp.status == 403 and error["status"] == "PERMISSION_DENIED"
        assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
        assert error["details"][0]["reason"] == "CONSUMER_INVALID"
        fake.push(Reply.raw(502, b"<html>bad gateway</html>"))
        resp = await call(s, gen_path(stream=True), HELLO, headers=KEY)
        assert resp.status == 502 and resp.raw == b"<html>bad gateway</html>"
        assert resp.headers["Content-Type"].startswith("text/html")

    run_with(fake, scenario)


def test_reply_rate_limited_structure() -> None:
    fake = FakeGoogle()

    async def scenario(s: aiohttp.ClientSession) -> None:
        fake.push(Reply.rate_limited(retry_delay="56s"))
        resp = await call(s, gen_path("gemini-2.5-pro"), HELLO, headers=KEY)
        assert resp.status == 429
        error = resp.json()["error"]
        assert error["code"] == 429 and error["status"] == "RESOURCE_EXHAUSTED"
        by_type = {d["@type"].rsplit(".", 1)[-1]: d for d in error["details"]}
        assert set(by_type) == {"QuotaFailure", "Help", "RetryInfo"}
        violation = by_type["QuotaFailure"]["violations"][0]
        assert violation["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
        assert violation["quotaDimensions"] == {"location": "global", "model": "gemini-2.5-pro"}
        assert set(violation) == {"quotaMetric", "quotaId", "quotaDimensions", "quotaValue"}
        assert by_type["RetryInfo"]["retryDelay"] == "56s"
        fake.push(
            Reply.rate_limited(
                quota_id="GenerateRequestsPerDayPerProjectPerModel-FreeTier", reason="QUOTA_EXHAUSTED"
            )
        )
        error = (await call(s, gen_path(), HELLO, headers=KEY)).json()["error"]
        info = [d for d in error["details"] if d["@type"].endswith("ErrorInfo")]
        assert info[0]["reason"] == "QUOTA_EXHAUSTED"
        assert "PerDay" in error["details"][1]["violations"][0]["quotaId"]

    run_with(fake, scenario)


def test_reply_delay_then_reply_or_default() -> None:
    fake = FakeGoogle()

    async def scenario(s: aiohttp.ClientSession) -> None:
        fake.push(Reply.delay(0.1, Reply.unavailable()))
        started = time.monotonic()
        assert (await call(s, gen_path(), HELLO, headers=KEY)).status == 503
        assert time.monotonic() - started >= 0.1
        fake.push(Reply.delay(0.05))
        body = (await call(s, gen_path(), HELLO, headers=KEY)).json()
        assert candidate_text(body) == "Echo: hello there friend"

    run_with(fake, scenario)


def test_push_is_fifo_and_model_specific() -> None:
    fake = FakeGoogle()

    async def scenario(s: aiohttp.ClientSession) -> None:
        fake.push(Reply.text("for pro"), model="gemini-2.5-pro")
        fake.push(Reply.text("first"))
        fake.push(Reply.text("second"))
        assert candidate_text((await call(s, gen_path(), HELLO, headers=KEY)).json()) == "first"
        assert candidate_text((await call(s, gen_path(), HELLO, headers=KEY)).json()) == "second"
        assert candidate_text((await call(s, gen_path(), HELLO, headers=KEY)).json()).startswith("Echo:")
        assert fake.pending_replies == 1
        body = (await call(s, gen_path("gemini-2.5-pro"), HELLO, headers=KEY)).json()
        assert candidate_text(body) == "for pro"
        assert fake.pending_replies == 0

    run_with(fake, scenario)


def test_stream_and_first_byte_delay_options() -> None:
    fake = FakeGoogle(default_stream_chunks=3, stream_delay=0.05, first_byte_delay=0.05)

    async def scenario(s: aiohttp.ClientSession) -> None:
        started = time.monotonic()
        events = sse_events((await call(s, gen_path(stream=True), HELLO, headers=KEY)).raw)
        assert len(events) == 3
        assert time.monotonic() - started >= 0.15  # first byte + two gaps between three events
        started = time.monotonic()
        assert (await call(s, gen_path(), HELLO, headers=KEY)).status == 200
        assert time.monotonic() - started >= 0.05

    run_with(fake, scenario)


# -- Validation ---------------------------------------------------------------------------------------------


def _user(*parts: Any) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


REJECTED: list[tuple[str, dict[str, Any], str]] = [
    ("no contents", {}, "contents is not specified"),
    ("empty contents", {"contents": []}, "contents is not specified"),
    ("system role", {"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "Please use a valid role"),
    (
        "assistant role",
        {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
        "valid role: user, model.",
    ),
    ("tool role", {"contents": [{"role": "tool", "parts": [{"text": "x"}]}]}, "valid role: user, model."),
    ("no parts", {"contents": [{"role": "user"}]}, "contents.parts must not be empty"),
    ("empty parts", {"contents": [_user()]}, "contents.parts must not be empty"),
    ("empty part", {"contents": [_user({})]}, "required oneof field 'data'"),
    (
        "modifier only",
        {"contents": [_user({"thought": True, "thoughtSignature": "x"})]},
        "oneof field 'data'",
    ),
    (
        "two data fields",
        {"contents": [_user({"text": "x", "inlineData": {"mimeType": "image/png", "data": ""}})]},
        "oneof field 'data' is already set",
    ),
    ("unknown part field", {"contents": [_user({"text": "x", "bogus": 1})]}, 'Unknown name "bogus"'),
    (
        "unknown top level",
        {**HELLO, "foo": 1},
        'Invalid JSON payload received. Unknown name "foo": Cannot find field.',
    ),
    ("session_id on AI Studio", {**HELLO, "session_id": "s"}, 'Unknown name "session_id"'),
    (
        "unknown generation config",
        {**HELLO, "generationConfig": {"foo": 1}},
        "Invalid JSON payload received. Unknown name \"foo\" at 'generation_config': Cannot find field.",
    ),
    ("openai max_tokens", {**HELLO, "generation_config": {"max_tokens": 5}}, 'Unknown name "max_tokens"'),
    (
        "six stop sequences",
        {**HELLO, "generationConfig": {"stopSequences": list("abcdef")}},
        "stop_sequences",
    ),
    ("temperature high", {**HELLO, "generationConfig": {"temperature": 2.5}}, "temperature"),
    ("temperature negative", {**HELLO, "generationConfig": {"temperature": -0.1}}, "temperature"),
    ("temperature string", {**HELLO, "generationConfig": {"temperature": "hot"}}, "temperature"),
    ("top_p high", {**HELLO, "generation_config": {"top_p": 1.5}}, "top_p"),
    ("zero candidates", {**HELLO, "generationConfig": {"candidateCount": 0}}, "candidate_count"),
    ("nine candidates", {**HELLO, "generationConfig": {"candidateCount": 9}}, "candidate_count"),
    (
        "budget and level",
        {**HELLO, "generationConfig": {"thinkingConfig": {"thinkingBudget": 128, "thinkingLevel": "LOW"}}},
        "You can only set only one of thinking budget and thinking level.",
    ),
    (
        "two response schemas",
        {**HELLO, "generationConfig": {"responseSchema": {"type": "OBJECT"}, "responseJsonSchema": {}}},
        "response_schema and response_json_schema",
    ),
    (
        "parameters and parametersJsonSchema",
        {
            **HELLO,
            "tools": [
                {"functionDeclarations": [{"name": "f", "parameters": {}, "parametersJsonSchema": {}}]}
            ],
        },
        "parameters and parameters_json_schema",
    ),
]

ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    (
        "snake case everything",
        {**HELLO, "generation_config": {"max_output_tokens": 5, "top_k": 3, "seed": 1}},
    ),
    ("limits", {**HELLO, "generationConfig": {"temperature": 2, "topP": 0, "candidateCount": 8}}),
    ("five stop sequences", {**HELLO, "generationConfig": {"stopSequences": list("abcde")}}),
    ("thought part", {"contents": [_user({"text": "t", "thought": True, "thoughtSignature": "c2ln"})]}),
    (
        "snake function call",
        {"contents": [_user({"function_call": {"name": "f"}, "thought_signature": "x"})]},
    ),
    (
        "system instruction with user role",
        {**HELLO, "system_instruction": {"role": "user", "parts": [{"text": "s"}]}},
    ),
    ("role omitted", {"contents": [{"parts": [{"text": "x"}]}]}),
    (
        "private response schema",
        {**HELLO, "generationConfig": {"_responseJsonSchema": {}, "responseMimeType": "x"}},
    ),
    (
        "tools as one object",
        {**HELLO, "tools": {"functionDeclarations": [{"name": "f", "parametersJsonSchema": {}}]}},
    ),
]


# Every rejection on both APIs, except session_id, which Code Assist takes and AI Studio refuses.
REJECTED_BY_API = [
    pytest.param(api, *case, id=f"{api}-{case[0]}")
    for api in ("aistudio", "codeassist")
    for case in REJECTED
    if not (api == "codeassist" and case[0] == "session_id on AI Studio")
]


@pytest.mark.parametrize(("api", "name", "request_body", "expected"), REJECTED_BY_API)
def test_validation_rejects_like_google(
    api: str, name: str, request_body: dict[str, Any], expected: str
) -> None:
    fake = FakeGoogle()
    fake.add_oauth_account("rt", project_id="proj-1")

    async def scenario(s: aiohttp.ClientSession) -> None:
        if api == "aistudio":
            resp = await call(s, gen_path(), request_body, headers=KEY)
        else:
            auth = await oauth_login(s, "rt")
            resp = await call(s, "/v1internal:generateContent", envelope(request_body), headers=auth)
        assert resp.status == 400, resp.raw
        error = resp.json()["error"]
        assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
        assert expected in error["message"]
        assert fake.pending_replies == 0

    run_with(fake, scenario)


@pytest.mark.parametrize(("name", "request_body"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_validation_accepts_what_google_accepts(name: str, request_body: dict[str, Any]) -> None:
    fake = FakeGoogle()

    async def scenario(s: aiohttp.ClientSession) -> None:
        resp = await call(s, gen_path(), request_body, headers=KEY)
        assert resp.status == 200, resp.raw

    run_with(fake, scenario)


def test_every_recorded_request_google_accepted_is_accepted() -> None:
    accepted = [r for r in all_recordings() if r.get("request") is not None and r["response_status"] == 200]
    assert accepted, "no recordings found"
    fake = FakeGoogle()

    async def scenario(s: aiohttp.ClientSession) -> None:
        for rec in accepted:
            resp = await call(s, rec["endpoint"], rec["request"], headers=KEY)
            assert resp.status == 200, (rec["source"], resp.raw)

    run_with(fake, scenario)


def test_invalid_json_body_is_400() -> None:
    fake = FakeGoogle()
    fake.add_oauth_account("rt", project_id="proj-1")

    async def scenario(s: aiohttp.ClientSession) -> None:
        resp = await call(s, gen_path(), data=b"{not json", headers=KEY)
        assert resp.status == 400 and resp.json()["error"]["message"].startswith(
            "Invalid JSON payload received."
        )
        assert fake.received[-1].body is None and fake.received[-1].raw_body == b"{not json"
        auth = await oauth_login(s, "rt")
        resp = await call(s, "/v1internal:generateContent", data=b"[", headers=auth)
        assert resp.status == 400

    run_with(fake, scenario)


# -- Code Assist --------------------------------------------------------------------------------------------


def test_code_assist_generate_and_stream_envelopes() -> None:
    fake = FakeGoogle()
    fake.add_oauth_account("rt", project_id="proj-1")

    async def scenario(s: aiohttp.ClientSession) -> None:
        auth = await oauth_login(s, "rt")
        request = {**HELLO, "session_id": "sess-1"}
        resp = await call(s, "/v1internal:generateContent", envelope(request), headers=auth)
        assert resp.status == 200
        body = resp.json()
        assert set(body) == {"response", "traceId"}
        assert candidate_text(body["response"]) == "Echo: hello there friend"
        assert body["response"]["modelVersion"] == MODEL
        resp = await call(s, "/v1internal:streamGenerateContent?alt=sse", envelope(request), headers=auth)
        assert resp.headers["Content-Type"] == "text/event-stream"
        events = sse_events(resp.raw)
        assert len(events) == 3 and all(set(e) == {"response", "traceId"} for e in events)
        assert "".join(candidate_text(e["response"]) for e in events) == "Echo: hello there friend"
        first, second = fake.generate_requests()
        assert (first.api, first.model, first.stream, second.stream) == ("codeassist", MODEL, False, True)
        assert first.request == request and first.body["project"] == "proj-1"
        fake.push(Reply.response({"candidates": []}))
        resp = await call(s, "/v1internal:generateContent", envelope(HELLO), headers=auth)
        assert resp.json()["response"] == {"candidates": []}
        fake.push(Reply.rate_limited(reason="RATE_LIMIT_EXCEEDED"))
        resp = await call(s, "/v1internal:streamGenerateContent?alt=sse", envelope(HELLO), headers=auth)
        info = resp.json()["error"]["details"][0]
        assert resp.status == 429 and info["domain"] == "cloudcode-pa.googleapis.com"
        assert info["reason"] == "RATE_LIMIT_EXCEEDED"
        fake.push(Reply.error(429, "Resource exhausted.", "RESOURCE_EXHAUSTED", wrap_in_array=True))
        resp = await call(s, "/v1internal:streamGenerateContent?alt=sse", envelope(HELLO), headers=auth)
        assert resp.status == 429 and resp.json()[0]["error"]["status"] == "RESOURCE_EXHAUSTED"

    run_with(fake, scenario)


def test_code_assist_auth_project_and_model_checks() -> None:
    fake = FakeGoogle()
    fake.add_oauth_account("rt", project_id="proj-1")
    unauthenticated = {
        "error": {
            "code": 401,
            "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential. See "
            "https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "status": "UNAUTHENTICATED",
        }
    }

    async def scenario(s: aiohttp.ClientSession) -> None:
        for headers in ({}, {"Authorization": "Bearer ya29.unknown"}, {"Authorization": "Basic abc"}):
            resp = await call(s, "/v1internal:generateContent", envelope(HELLO), headers=headers)
            assert resp.status == 401 and resp.json() == unauthenticated
        auth = {"Authorization": "Bearer " + fake.issue_access_token("rt")}
        resp = await call(s, "/v1internal:generateContent", envelope(HELLO, project="other"), headers=auth)
        assert resp.status == 403 and resp.json()["error"]["status"] == "PERMISSION_DENIED"
        assert "other" in resp.json()["error"]["message"]
        resp = await call(s, "/v1internal:generateContent", envelope(HELLO, project=None), headers=auth)
        assert resp.status == 403
        resp = await call(s, "/v1internal:generateContent", envelope(HELLO, model="claude-x"), headers=auth)
        assert resp.status == 404 and resp.json()["error"]["status"] == "NOT_FOUND"
        resp = await call(s, "/v1internal:generateContent", {**envelope(HELLO), "extra": 1}, headers=auth)
        assert resp.status == 400
        assert (await call(s, "/v1internal:generateContent", envelope(HELLO), headers=auth)).status == 200
        fake.expire_access_tokens()
        assert (await call(s, "/v1internal:generateContent", envelope(HELLO), headers=auth)).status == 401
        short = {"Authorization": "Bearer " + fake.issue_access_token("rt", expires_in=0)}
        assert (await call(s, "/v1internal:generateContent", envelope(HELLO), headers=short)).status == 401

    run_with(fake, scenario)


def test_load_code_assist_for_an_account_with_a_project() -> None:
    fake = FakeGoogle()
    fake.add_oauth_account("rt", project_id="proj-1")
    metadata = {"ideType": "IDE_UNSPECIFIED", "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI"}

    async def scenario(s: aiohttp.ClientSession) -> None:
        auth = await oauth_login(s, "rt")
        resp = await call(s, "/v1internal:loadCodeAssist", {"metadata": metadata}, headers=auth)
        body = resp.json()
        assert resp.status == 200
        assert body["currentTier"]["id"] == "standard-tier"
        assert body["currentTier"]["name"] == "Gemini Code Assist"
        assert body["currentTier"]["userDefinedCloudaicompanionProject"] is True
        assert body["cloudaicompanionProject"] == "proj-1"
        assert body["allowedTiers"]
        assert (await call(s, "/v1internal:loadCodeAssist", {"metadata": metadata})).status == 401

    run_with(fake, scenario)


def test_free_tier_onboarding_long_running_operation() -> None:
    fake = FakeGoogle()
    fake.add_oauth_account("rt", onboard_polls=2, managed_project_id="managed-123")
    metadata = {"ideType": "IDE_UNSPECIFIED", "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI"}

    async def scenario(s: aiohttp.ClientSession) -> None:
        auth = await oauth_login(s, "rt")
        body = (await call(s, "/v1internal:loadCodeAssist", {"metadata": metadata}, headers=auth)).json()
        assert body == {
            "allowedTiers": [
                {
                    "id": "free-tier",
                    "name": "Gemini Code Assist for individuals",
                    "description": "Gemini Code Assist for individuals",
                    "userDefinedCloudaicompanionProject": False,
                    "isDefault": True,
                }
            ]
        }
        # Before onboarding the project is unknown, so any project (or none) is let through.
        assert (
            await call(s, "/v1internal:generateContent", envelope(HELLO, project=None), headers=auth)
        ).status == 200
        lro = (
            await call(
                s, "/v1internal:onboardUser", {"tierId": "free-tier", "metadata": metadata}, headers=auth
            )
        ).json()
        assert lro["done"] is False and lro["name"].startswith("operations/")
        first = await call(s, "/v1internal/" + lro["name"], method="GET", headers=auth)
        assert first.status == 200 and first.json() == {"name": lro["name"], "done": False}
        done = (await call(s, "/v1internal/" + lro["name"], method="GET", headers=auth)).json()
        assert done == {
            "name": lro["name"],
            "done": True,
            "response": {
                "@type": "type.googleapis.com/google.internal.cloud.code.v1internal.OnboardUserResponse",
                "cloudaicompanionProject": {"id": "managed-123", "name": "managed-123"},
            },
        }
        assert fake.account_project("rt") == "managed-123"
        body = (await call(s, "/v1internal:loadCodeAssist", {"metadata": metadata}, headers=auth)).json()
        assert body["cloudaicompanionProject"] == "managed-123"
        assert body["currentTier"]["id"] == "free-tier"
        good = envelope(HELLO, project="managed-123")
        assert (await call(s, "/v1internal:generateContent", good, headers=auth)).status == 200
        assert (await call(s, "/v1internal:generateContent", envelope(HELLO), headers=auth)).status == 403
        missing = await call(s, "/v1internal/operations/nope", method="GET", headers=auth)
        assert missing.status == 404
        assert (await call(s, "/v1internal/" + lro["name"], method="GET")).status == 401

    run_with(fake, scenario)


def test_onboarding_with_zero_polls_is_done_at_once() -> None:
    fake = FakeGoogle()
    fake.add_oauth_account("rt", onboard_polls=0)

    async def scenario(s: aiohttp.ClientSession) -> None:
        auth = {"Authorization": "Bearer " + fake.issue_access_token("rt")}
        lro = (
            await call(s, "/v1internal:onboardUser", {"tierId": "free-tier", "metadata": {}}, headers=auth)
        ).json()
        assert lro["done"] is True
        assert lro["response"]["cloudaicompanionProject"]["id"] == "fake-managed-project"
        assert (await call(s, "/v1internal:onboardUser", {"metadata": {}}, headers=auth)).status == 400

    run_with(fake, scenario)


# -- OAuth token endpoint -----------------------------------------------------------------------------------


def test_token_endpoint_refresh_errors_and_counting() -> None:
    fake = FakeGoogle()
    fake.add_oauth_account("rt-good")
    form = {
        "grant_type": "refresh_token",
        "refresh_token": "rt-good",
        "client_id": "cid",
        "client_secret": "cs",
    }

    async def scenario(s: aiohttp.ClientSession) -> None:
        resp = await call(s, "/token", data=form)
        assert resp.status == 200
        token = resp.json()
        assert set(token) == {"access_token", "expires_in", "scope", "token_type"}
        assert token["access_token"].startswith("ya29.fake-") and token["expires_in"] == 3599
        assert token["token_type"] == "Bearer"
        assert "https://www.googleapis.com/auth/cloud-platform" in token["scope"].split()
        invalid_grant = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
        resp = await call(s, "/token", data={**form, "refresh_token": "rt-unknown"})
        assert resp.status == 400 and resp.json() == invalid_grant
        resp = await call(s, "/token", data={**form, "grant_type": "authorization_code"})
        assert resp.status == 400 and resp.json()["error"] == "invalid_request"
        no_secret = {k: v for k, v in form.items() if k != "client_secret"}
        resp = await call(s, "/token", data={k: v for k, v in form.items() if k != "refresh_token"})
        assert resp.status == 400 and resp.json()["error"] == "invalid_request"
        assert (await call(s, "/token", data=no_secret)).status == 400
        basic = "Basic " + base64.b64encode(b"cid:cs").decode()
        assert (await call(s, "/token", data=no_secret, headers={"Authorization": basic})).status == 200
        fake.revoke("rt-good")
        resp = await call(s, "/token", data=form)
        assert resp.status == 400 and resp.json() == invalid_grant
        assert fake.token_requests == 7
        assert fake.received[0].api == "oauth" and fake.received[0].body == form

    run_with(fake, scenario)


# -- Recording, reset, threads ------------------------------------------------------------------------------


def test_received_records_everything_and_generate_requests_filters() -> None:
    fake = FakeGoogle()
    fake.add_oauth_account("rt", project_id="proj-1")

    async def scenario(s: aiohttp.ClientSession) -> None:
        await call(s, gen_path(stream=True), HELLO, headers={**KEY, "X-Custom": "Yes"})
        await oauth_login(s, "rt")
        resp = await call(s, "/v1/whatever", {"a": 1})
        assert resp.status == 404 and b"Error 404 (Not Found)" in resp.raw
        assert [r.api for r in fake.received] == ["aistudio", "oauth", "other"]
        first = fake.received[0]
        assert (
            first.method == "POST" and first.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
        )
        assert first.query == {"alt": "sse"} and first.headers["x-custom"] == "Yes"
        assert (first.model, first.stream, first.action) == (MODEL, True, "streamGenerateContent")
        assert first.request == HELLO
        assert fake.generate_requests() == [first]
        assert fake.received[2].body == {"a": 1}

    run_with(fake, scenario)


def test_reset_clears_state_but_keeps_settings() -> None:
    fake = FakeGoogle(api_keys={"k"}, default_stream_chunks=2)
    fake.add_oauth_account("rt", project_id="p")
    token = fake.issue_access_token("rt")
    fake.push(Reply.unavailable())
    fake.missing_models.add(MODEL)

    async def scenario(s: aiohttp.ClientSession) -> None:
        await call(s, "/token", data={"grant_type": "refresh_token", "refresh_token": "rt"})
        fake.reset()
        assert fake.received == [] and fake.token_requests == 0 and fake.pending_replies == 0
        assert fake.account_project("rt") is None
        resp = await call(
            s, "/v1internal:generateContent", envelope(HELLO), headers={"Authorization": "Bearer " + token}
        )
        assert resp.status == 401
        assert (await call(s, gen_path(), HELLO, headers={"x-goog-api-key": "nope"})).status == 400
        events = sse_events(
            (await call(s, gen_path(stream=True), HELLO, headers={"x-goog-api-key": "k"})).raw
        )
        assert len(events) == 2

    run_with(fake, scenario)


def test_received_list_is_bounded() -> None:
    fake = FakeGoogle(max_received=20)

    async def scenario(s: aiohttp.ClientSession) -> None:
        for _ in range(45):
            await call(s, gen_path(), HELLO, headers=KEY)
        assert 10 <= len(fake.received) <= 20

    run_with(fake, scenario)


def test_server_thread_with_scripting_from_the_test_thread() -> None:
    fake = FakeGoogle()
    with FakeGoogleServer(fake) as base_url:
        fake.push(Reply.text("from another thread"))
        request = urllib.request.Request(
            base_url + gen_path(),
            data=json.dumps(HELLO).encode(),
            headers={**KEY, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert candidate_text(json.loads(response.read())) == "from another thread"
        fake.push(Reply.unavailable())
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 503
        caught.value.close()
        assert len(fake.generate_requests()) == 2


def test_reply_constructors_reject_nonsense() -> None:
    with pytest.raises(ValueError):
        Reply.stream([])
    with pytest.raises(ValueError):
        Reply.text("x", chunks=0)
    with pytest.raises(ValueError):
        FakeGoogle(default_stream_chunks=0)
