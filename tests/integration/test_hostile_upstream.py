"""A broken or hostile Google (testing.fake_misbehaving): redirects, wrong shapes, trickles, endless
lines. Whatever it does, the client gets an OpenAI-shaped 502/504 before the first byte, or an error
event and `[DONE]` after it; no key leaves for another host, and no traceback reaches the log."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gemini_cli_proxy.testing import FakeGoogle, Reply
from gemini_cli_proxy.testing import fake_misbehaving as misbehaving
from gemini_cli_proxy.upstream.http import MAX_REPLY_BYTES

from conftest import FakeServer, Proxy, StartProxy
from support import assert_schema

MODEL = "gemini-2.5-flash"
CHAT: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}
KEY = "studio-key-never-to-leave-0001"
REFRESH = "1//hostile-refresh-token-0001"


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Whatever Google does, nothing here is a bug of the proxy's: no ERROR line, no traceback."""
    caplog.set_level(logging.INFO)
    yield caplog
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


def post(proxy: Proxy, timeout: float = 30, **extra: Any) -> httpx.Response:
    return httpx.post(f"{proxy.url}/v1/chat/completions", json={**CHAT, **extra}, timeout=timeout)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    error: dict[str, Any] = body["error"]
    return error


def unreadable(shape: str) -> str:
    """How the client is told of a reply of a WRONG_SHAPES shape begins: Google's own error where the
    reply is one (with the status it names), else that the answer could not be read (never a status
    the proxy made up)."""
    if shape == "an error whose details are a number":
        return "Google failed to answer (HTTP 500). Gemini: x"
    if shape == "an error with a word for a code":
        return "Google's answer could not be read: an error object without a valid code."
    return "Google's answer could not be read: "


def sse_payloads(raw: str) -> list[Any]:
    """The data payloads of an SSE body; `[DONE]` kept as the string."""
    out: list[Any] = []
    for block in raw.split("\n\n"):
        if block.startswith("data: "):
            data = block.removeprefix("data: ")
            out.append(data if data == "[DONE]" else orjson.loads(data))
    return out


def assert_stream_ended_by_error(response: httpx.Response) -> dict[str, Any]:
    """A 200 stream whose last events are one error and `[DONE]`, with nothing after: in particular
    not a second HTTP response inside the body."""
    assert response.status_code == 200, response.text
    assert "HTTP/1.1" not in response.text
    payloads = sse_payloads(response.text)
    assert payloads[-1] == "[DONE]", payloads
    error = payloads[-2]
    assert set(error) == {"error"} and set(error["error"]) == {"message", "type", "param", "code"}
    for chunk in payloads[:-2]:
        assert_schema(chunk, "CreateChatCompletionStreamResponse")
    return dict(error["error"])


def _oauth_file(tmp_path: Path) -> Path:
    path = tmp_path / "oauth_creds.json"
    data = {"refresh_token": REFRESH, "access_token": "", "expiry_date": 0, "token_type": "Bearer"}
    path.write_text(orjson.dumps(data).decode())
    return path


def start_kind(
    kind: str, start_proxy: StartProxy, fake: FakeGoogle, url: str, tmp_path: Path, **more: Any
) -> Proxy:
    """A proxy whose one credential is of `kind`: aistudio, vertex (express key) or codeassist."""
    if kind == "aistudio":
        return start_proxy(gemini_api_keys=[KEY], **more)
    if kind == "vertex":
        return start_proxy(gemini_api_keys=[], vertex_api_keys=[KEY], vertex_api_base_url=url, **more)
    fake.add_oauth_account(REFRESH, project_id="proj-hostile")
    return start_proxy(gemini_api_keys=[], gemini_oauth_creds=[str(_oauth_file(tmp_path))], **more)


KINDS = ("aistudio", "vertex", "codeassist")


# -- 1. redirects -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_a_redirect_is_never_followed(
    kind: str,
    stream: bool,
    start_proxy: StartProxy,
    fake: FakeGoogle,
    fake_server: FakeServer,
    tmp_path: Path,
    no_tracebacks: pytest.LogCaptureFixture,
) -> None:
    proxy = start_kind(kind, start_proxy, fake, fake_server.url, tmp_path)
    # Another origin (localhost, not 127.0.0.1): a client that followed would send its headers there.
    elsewhere = fake_server.url.replace("127.0.0.1", "localhost") + "/collect"
    fake.push(misbehaving.redirect(elsewhere, status=307 if stream else 302))
    response = post(proxy, stream=stream)
    assert response.status_code == 502, response.text
    error = error_of(response)
    assert (error["type"], error["code"]) == ("server_error", "upstream_error")
    assert "redirect (HTTP 30" in error["message"]
    assert not [r for r in fake.received if r.path == "/collect"]
    assert len(fake.generate_requests()) == 1


def test_a_same_origin_redirect_is_an_upstream_error_not_a_missing_model(
    proxy: Proxy, fake: FakeGoogle, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    fake.push(misbehaving.redirect("/v1beta/models/nowhere:generateContent", status=301))
    response = post(proxy)
    assert response.status_code == 502 and error_of(response)["code"] == "upstream_error"


# -- 4. replies of the wrong shape ------------------------------------------------------------------------


SHAPES = sorted(misbehaving.WRONG_SHAPES)


@pytest.mark.parametrize("name", SHAPES)
def test_a_reply_of_the_wrong_shape_is_a_502(
    name: str, proxy: Proxy, fake: FakeGoogle, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    fake.push(misbehaving.json_reply(misbehaving.WRONG_SHAPES[name]))
    response = post(proxy)
    assert response.status_code == 502, response.text
    error = error_of(response)
    assert error["code"] == "upstream_error"
    assert error["message"].startswith(unreadable(name)), error["message"]


@pytest.mark.parametrize("name", SHAPES)
def test_a_first_stream_event_of_the_wrong_shape_is_a_502(
    name: str, proxy: Proxy, fake: FakeGoogle, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    fake.push(misbehaving.events(misbehaving.WRONG_SHAPES[name]))
    response = post(proxy, stream=True)
    assert response.status_code == 502, response.text
    error = error_of(response)
    assert error["code"] == "upstream_error"
    assert error["message"].startswith(unreadable(name)), error["message"]


@pytest.mark.parametrize("name", SHAPES)
def test_a_later_stream_event_of_the_wrong_shape_ends_the_stream_with_an_error_event(
    name: str, proxy: Proxy, fake: FakeGoogle, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    fake.push(misbehaving.events(misbehaving.text_event("Hel"), misbehaving.WRONG_SHAPES[name]))
    response = post(proxy, stream=True)
    error = assert_stream_ended_by_error(response)
    assert error["code"] == "upstream_error"
    assert error["message"].startswith(unreadable(name)), error["message"]
    # What came before the bad event was delivered, once.
    texts = [
        p["choices"][0]["delta"].get("content") for p in sse_payloads(response.text)[:-2] if p["choices"]
    ]
    assert "".join(t or "" for t in texts) == "Hel"


@pytest.mark.parametrize("name", SHAPES)
def test_code_assist_envelopes_of_the_wrong_shape_are_502(
    name: str,
    start_proxy: StartProxy,
    fake: FakeGoogle,
    fake_server: FakeServer,
    tmp_path: Path,
    no_tracebacks: pytest.LogCaptureFixture,
) -> None:
    proxy = start_kind("codeassist", start_proxy, fake, fake_server.url, tmp_path)
    fake.push(misbehaving.json_reply({"response": misbehaving.WRONG_SHAPES[name], "traceId": "t"}))
    response = post(proxy)
    assert response.status_code == 502, response.text


def test_code_assist_reply_without_a_response_is_a_502(
    start_proxy: StartProxy,
    fake: FakeGoogle,
    fake_server: FakeServer,
    tmp_path: Path,
    no_tracebacks: pytest.LogCaptureFixture,
) -> None:
    proxy = start_kind("codeassist", start_proxy, fake, fake_server.url, tmp_path)
    fake.push(misbehaving.json_reply({"traceId": "t"}))
    assert post(proxy).status_code == 502
    fake.push(misbehaving.events({"traceId": "t"}))
    assert post(proxy, stream=True).status_code == 502


def test_counts_sent_as_strings_are_read_as_numbers(
    proxy: Proxy, fake: FakeGoogle, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    fake.push(misbehaving.json_reply(misbehaving.LENIENT_SHAPES["usage counts as strings"]))
    response = post(proxy)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["prompt_tokens"] == 3


# -- 5b. waits that must end ------------------------------------------------------------------------------


def _timed(proxy: Proxy, **extra: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = post(proxy, **extra)
    return response, time.monotonic() - started


def test_a_json_reply_trickled_a_byte_at_a_time_times_out(
    start_proxy: StartProxy, fake: FakeGoogle, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    proxy = start_proxy(proxy_upstream_timeout=1.0)
    body = orjson.dumps(misbehaving.text_event("a reply that takes far too long to arrive"))
    fake.push(misbehaving.trickled(body, interval=0.1))
    response, took = _timed(proxy)
    assert response.status_code == 504, response.text
    assert error_of(response)["code"] == "upstream_timeout"
    assert "no complete answer within 1 s" in error_of(response)["message"]
    assert took < 2.5


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(lambda: misbehaving.comments_only(interval=0.1, count=60), id="comments-only"),
        pytest.param(
            lambda: misbehaving.trickled(
                misbehaving.event(misbehaving.text_event("slow")),
                interval=0.1,
                content_type="text/event-stream",
            ),
            id="trickled-event",
        ),
    ],
)
def test_a_stream_without_a_first_event_times_out(
    reply: Any, start_proxy: StartProxy, fake: FakeGoogle, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    proxy = start_proxy(proxy_upstream_timeout=1.0)
    fake.push(reply())
    response, took = _timed(proxy, stream=True)
    assert response.status_code == 504, response.text
    assert error_of(response)["code"] == "upstream_timeout"
    assert took < 2.5


def test_a_stream_that_goes_quiet_after_its_first_event_ends_with_an_error_event(
    start_proxy: StartProxy, fake: FakeGoogle, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    proxy = start_proxy(proxy_upstream_timeout=1.0)
    keepalive = b": keep-alive\r\n\r\n"
    first = misbehaving.event(misbehaving.text_event("Hi"))
    fake.push(Reply.wire([first, *[keepalive] * 40], content_type="text/event-stream", interval=0.1))
    response, took = _timed(proxy, stream=True)
    assert assert_stream_ended_by_error(response)["code"] == "upstream_timeout"
    assert took < 3.0


def test_a_retried_stream_waits_for_its_answer_no_longer_than_the_retry_deadline(
    start_proxy: StartProxy, fake: FakeGoogle, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    proxy = start_proxy(
        gemini_api_keys=["key-aaaa-1111", "key-bbbb-2222"],
        proxy_upstream_timeout=30.0,
        proxy_retry_deadline=1.0,
    )
    fake.push_many([Reply.rate_limited(retry_delay="7s"), Reply.delay(20.0)])
    response, took = _timed(proxy, stream=True)
    # The client hears what made it retry (a 429, as the pool accounts for it), not a timeout.
    assert response.status_code == 429, response.text
    assert "Retry-After" in response.headers
    assert took < 2.5


def test_a_retried_generation_is_not_cut_by_the_retry_deadline(
    start_proxy: StartProxy, fake: FakeGoogle, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    """A long generation on the next credential is normal work, not a wait for an answer to begin."""
    proxy = start_proxy(gemini_api_keys=["key-aaaa-1111", "key-bbbb-2222"], proxy_retry_deadline=0.5)
    fake.push_many([Reply.rate_limited(retry_delay="7s"), Reply.delay(1.5)])
    response, took = _timed(proxy)
    assert response.status_code == 200, response.text
    assert took >= 1.5


def test_a_stream_error_trickled_a_byte_at_a_time_times_out(
    start_proxy: StartProxy, fake: FakeGoogle, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    proxy = start_proxy(proxy_upstream_timeout=1.0)
    error = orjson.dumps(misbehaving.error_object("slow", code=429, status="RESOURCE_EXHAUSTED"))
    fake.push(misbehaving.trickled(error, interval=0.1, status=429))
    response, took = _timed(proxy, stream=True)
    assert response.status_code == 504, response.text
    assert took < 2.5


# -- 6. one endless line ----------------------------------------------------------------------------------


def test_an_endless_stream_line_fails_cleanly(
    proxy: Proxy, fake: FakeGoogle, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    fake.push(misbehaving.endless_line(24 * 1024 * 1024))
    response = post(proxy, stream=True)
    assert response.status_code == 502, response.text
    assert "grew past" in error_of(response)["message"]


def test_a_json_reply_over_the_size_limit_fails_cleanly(
    proxy: Proxy, fake: FakeGoogle, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    filler = b"x" * (1024 * 1024)
    pieces = [b'{"x": "', *[filler] * (MAX_REPLY_BYTES // len(filler) + 1), b'"}']
    fake.push(Reply.wire(pieces))
    response = post(proxy)
    assert response.status_code == 502, response.text
    assert "limit" in error_of(response)["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_function_arguments_beyond_64_bits_reach_the_client_exactly(
    stream: bool, proxy: Proxy, fake: FakeGoogle, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    # orjson can neither read nor write this integer exactly; JSON itself has no limit.
    reply = (
        '{"candidates": [{"content": {"role": "model", "parts": [{"functionCall": '
        f'{{"name": "count", "args": {{"n": {2**70}}}}}}}]}}, "finishReason": "STOP"}}]}}'
    ).encode()
    if stream:
        fake.push(Reply.wire([b"data: " + reply + b"\r\n\r\n"], content_type="text/event-stream"))
    else:
        fake.push(Reply.wire([reply]))
    tools = [{"type": "function", "function": {"name": "count", "parameters": {"type": "object"}}}]
    response = post(proxy, stream=stream, tools=tools)
    assert response.status_code == 200, response.text
    assert f'{{\\"n\\":{2**70}}}' in response.text, response.text


def test_a_json_reply_announcing_a_length_over_the_limit_is_not_read(
    proxy: Proxy, fake: FakeGoogle, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    fake.push(Reply.raw(200, b" " * (MAX_REPLY_BYTES + 1), content_type="application/json"))
    response = post(proxy)
    assert response.status_code == 502, response.text
    assert f"an answer of {MAX_REPLY_BYTES + 1} bytes" in error_of(response)["message"]
