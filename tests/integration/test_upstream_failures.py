"""When Google fails: OpenAI-shaped errors, failover before the first byte, never after it."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from gemini_cli_proxy.pool.scheduler import seconds_until_quota_reset
from gemini_cli_proxy.testing import FakeGoogle, Reply

from conftest import FakeServer, Proxy, StartProxy
from support import assert_schema

CHAT = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hello"}]}
SECRET_KEY = "AIzaSyTESTKEY1234567890abcdefghijklmn"


def post(proxy: Proxy, **extra: object) -> httpx.Response:
    return httpx.post(f"{proxy.url}/v1/chat/completions", json={**CHAT, **extra}, timeout=30)


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, object] = body["error"]
    return error


def test_rate_limit_with_one_key_is_429_with_retry_after(proxy: Proxy, fake: FakeGoogle) -> None:
    fake.push(Reply.rate_limited(retry_delay="17s"))
    response = post(proxy)
    assert response.status_code == 429
    assert response.headers["Retry-After"] in {"17", "18"}  # whole seconds, truncated: one more
    error = error_of(response)
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    # The key now cools down: the next request is answered without calling Google.
    again = post(proxy)
    assert again.status_code == 429 and int(again.headers["Retry-After"]) <= 18
    assert len(fake.generate_requests()) == 1


def test_daily_quota_is_insufficient_quota(proxy: Proxy, fake: FakeGoogle) -> None:
    fake.push(
        Reply.rate_limited(retry_delay="30s", quota_id="GenerateRequestsPerDayPerProjectPerModel-FreeTier")
    )
    response = post(proxy)
    assert response.status_code == 429 and error_of(response)["code"] == "insufficient_quota"


def test_sdk_sees_rate_limit_error(client: openai.OpenAI, fake: FakeGoogle) -> None:
    fake.push(Reply.rate_limited(retry_delay="5s"))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert caught.value.response.headers["retry-after"] in {"5", "6"}


def test_rate_limited_key_fails_over_to_the_next(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(gemini_api_keys=["key-aaaa-1111", "key-bbbb-2222"])
    fake.push(Reply.rate_limited(retry_delay="60s"))
    response = post(proxy)
    assert response.status_code == 200, response.text
    first, second = fake.generate_requests()
    assert first.api_key != second.api_key
    # The cooled-down key is skipped: the next requests all go to the other one.
    for _ in range(3):
        assert post(proxy).status_code == 200
    assert {r.api_key for r in fake.generate_requests()[2:]} == {second.api_key}


def test_keys_take_turns(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    keys = ["key-1-aaaaaaaa", "key-2-bbbbbbbb", "key-3-cccccccc"]
    proxy = start_proxy(gemini_api_keys=keys)
    for _ in range(6):
        assert post(proxy).status_code == 200
    used = [r.api_key for r in fake.generate_requests()]
    assert sorted(used) == sorted(keys * 2)
    assert used[:3] == used[3:]


def test_server_errors_fail_over_and_then_502(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(gemini_api_keys=["key-1-aaaaaaaa", "key-2-bbbbbbbb"])
    fake.push(Reply.unavailable())
    assert post(proxy).status_code == 200
    fake.push_many([Reply.unavailable(), Reply.unavailable()])
    response = post(proxy)
    assert response.status_code == 502
    assert (error_of(response)["type"], error_of(response)["code"]) == ("server_error", "upstream_error")


def test_invalid_key_is_disabled_and_503_when_none_left(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    fake.api_keys = frozenset({"good-key-123456"})
    proxy = start_proxy(gemini_api_keys=[SECRET_KEY, "good-key-123456"])
    for _ in range(4):
        assert post(proxy).status_code == 200
    assert [r.api_key for r in fake.generate_requests()].count(SECRET_KEY) == 1  # tried once, then disabled

    lone = start_proxy(gemini_api_keys=[SECRET_KEY])
    response = post(lone)
    assert response.status_code == 503
    error = error_of(response)
    assert (error["type"], error["code"]) == ("server_error", "no_credentials")
    assert (
        SECRET_KEY not in response.text and SECRET_KEY[-4:] not in str(error["message"]).replace("…", "")[:0]
    )
    assert post(lone).status_code == 503


def test_permission_denied_is_403(proxy: Proxy, fake: FakeGoogle) -> None:
    fake.push(Reply.permission_denied())
    response = post(proxy)
    assert response.status_code == 403
    assert (error_of(response)["type"], error_of(response)["code"]) == (
        "permission_error",
        "permission_denied",
    )


def test_googles_400_is_passed_on_as_400(proxy: Proxy, fake: FakeGoogle) -> None:
    fake.push(Reply.error(400, "Penalty is not enabled for models/gemini-2.5-flash", "INVALID_ARGUMENT"))
    response = post(proxy)
    assert response.status_code == 400
    assert "Penalty is not enabled" in str(error_of(response)["message"])
    assert len(fake.generate_requests()) == 1  # the request's fault: not retried


def test_model_google_does_not_know_is_404(proxy: Proxy, fake: FakeGoogle) -> None:
    fake.missing_models.add("gemini-1.5-pro")
    response = post(proxy, model="gemini-1.5-pro")
    assert response.status_code == 404 and error_of(response)["code"] == "model_not_found"


def test_garbage_from_google_is_502(proxy: Proxy, fake: FakeGoogle) -> None:
    fake.push(Reply.raw(200, b"<html>not json</html>"))
    response = post(proxy)
    assert response.status_code == 502 and error_of(response)["code"] == "upstream_error"


def test_slow_google_is_504(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(proxy_upstream_timeout=0.3)
    fake.push(Reply.delay(2.0))
    response = post(proxy)
    assert response.status_code == 504
    assert (error_of(response)["type"], error_of(response)["code"]) == ("server_error", "upstream_timeout")


def test_unreachable_google_is_502(start_proxy: StartProxy) -> None:
    proxy = start_proxy(gemini_api_base_url="http://127.0.0.1:9")  # discard port: nothing listens
    response = post(proxy)
    assert response.status_code == 502
    message = str(error_of(response)["message"])
    assert message.startswith("Could not reach Google: the connection to 127.0.0.1:9 was refused"), message
    # What happened, in words: no aiohttp class names, no "Gemini:" for what Google never said.
    assert "Client" not in message and "Error" not in message and "Gemini:" not in message


def test_no_credentials_is_503(start_proxy: StartProxy) -> None:
    proxy = start_proxy(gemini_api_keys=[])
    response = post(proxy)
    assert response.status_code == 503 and error_of(response)["code"] == "no_credentials"
    assert "GEMINI_API_KEYS" in str(error_of(response)["message"])


def test_stream_error_before_first_byte_is_a_plain_http_error(proxy: Proxy, fake: FakeGoogle) -> None:
    fake.push(Reply.rate_limited(retry_delay="9s"))
    response = post(proxy, stream=True)
    assert response.status_code == 429 and response.headers["content-type"].startswith("application/json")


def test_stream_failing_before_first_event_fails_over(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(gemini_api_keys=["key-1-aaaaaaaa", "key-2-bbbbbbbb"])
    fake.push(Reply.stream([{"candidates": []}], break_after=0))
    response = post(proxy, stream=True)
    assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
    assert len(fake.generate_requests()) == 2


def test_stream_broken_after_first_byte_ends_with_error_event(
    client: openai.OpenAI, proxy: Proxy, fake: FakeGoogle
) -> None:
    events = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": f"part{i} "}]}}]} for i in range(4)
    ]
    fake.push(Reply.stream(events, break_after=2))
    response = post(proxy, stream=True)
    assert response.status_code == 200
    frames = response.text.split("\n\n")
    assert frames[-2] == "data: [DONE]"
    assert frames[-3].startswith('data: {"error":')
    assert '"type":"server_error"' in frames[-3]
    assert (
        response.text.count("part0") == 1
        and response.text.count("part1") == 1
        and "part2" not in response.text
    )
    assert len(fake.generate_requests()) == 1  # nothing replayed on another key
    # The SDK turns the error event into an exception after the text it already yielded.
    fake.push(Reply.stream(events, break_after=2))
    seen: list[str] = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(**CHAT, stream=True):  # type: ignore[call-overload]
            assert_schema(
                chunk.model_dump(mode="json", exclude_unset=True), "CreateChatCompletionStreamResponse"
            )
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "part0 part1 "


def test_google_error_event_inside_a_stream(proxy: Proxy, fake: FakeGoogle) -> None:
    events = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}}]},
        {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
    ]
    fake.push(Reply.stream(events))
    frames = post(proxy, stream=True).text.split("\n\n")
    assert "overloaded" in frames[-3] and frames[-2] == "data: [DONE]"
    assert any('"content":"hi"' in frame for frame in frames)  # what came before the error is kept


def test_a_stream_that_breaks_is_reported_to_the_pool_and_counted_as_an_error(
    start_proxy: StartProxy, fake: FakeGoogle
) -> None:
    """A 429 in the middle of a stream cools its key like one before the first byte would, and the
    credential's usage shows the request once, with its error."""
    proxy = start_proxy(gemini_api_keys=["key-a-11111111", "key-b-22222222"])
    limited = {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota. Please retry in 30.5s.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}],
        }
    }
    events = [{"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}}]}, limited]
    fake.push(Reply.stream(events))
    frames = post(proxy, stream=True).text.split("\n\n")
    assert '"code":"rate_limit_exceeded"' in frames[-3] and frames[-2] == "data: [DONE]"
    broken = fake.generate_requests()[0].api_key
    for _ in range(3):
        assert post(proxy).status_code == 200
    assert broken not in {r.api_key for r in fake.generate_requests()[1:]}  # cooling down
    rows = httpx.get(f"{proxy.url}/v1/debug/credentials").json()["data"]
    row = next(row for row in rows if broken is not None and row["label"].endswith(broken[-4:]))
    assert row["state"] == "cooling"
    assert row["usage"]["gemini-2.5-flash"]["requests"] == 1
    assert row["usage"]["gemini-2.5-flash"]["errors"] == 1
    assert row["usage"]["gemini-2.5-flash"]["last_error"] == "429 rate_limited"


def test_secrets_never_echoed_in_errors(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(gemini_api_keys=[SECRET_KEY])
    fake.push(Reply.error(400, f"API key {SECRET_KEY} has a problem", "INVALID_ARGUMENT"))
    response = post(proxy)
    assert response.status_code == 400 and SECRET_KEY not in response.text


def test_daily_quota_cools_down_until_midnight_pacific(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy()
    fake.push(
        Reply.rate_limited(retry_delay="23s", quota_id="GenerateRequestsPerDayPerProjectPerModel-FreeTier")
    )
    assert post(proxy).status_code == 429
    again = post(proxy)  # answered by the pool: the key is out until the quota resets
    assert again.status_code == 429 and error_of(again)["code"] == "insufficient_quota"
    expected = seconds_until_quota_reset(time.time())
    assert abs(int(again.headers["Retry-After"]) - expected) <= 5
    assert len(fake.generate_requests()) == 1


@pytest.mark.parametrize("reason", ["PERMISSION_DENIED", "VALIDATION_REQUIRED"])
def test_refused_credentials_are_disabled(start_proxy: StartProxy, fake: FakeGoogle, reason: str) -> None:
    proxy = start_proxy(gemini_api_keys=["key-1-aaaaaaaa", "key-2-bbbbbbbb"])
    fake.push(Reply.permission_denied(reason))
    for _ in range(4):
        assert post(proxy).status_code == 200
    keys = [r.api_key for r in fake.generate_requests()]
    assert keys.count(keys[0]) == 1  # the refused key was tried once, then left alone


def test_timeouts_are_not_retried_on_every_key(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(gemini_api_keys=["key-1-aaaaaaaa", "key-2-bbbbbbbb"], proxy_upstream_timeout=0.3)
    fake.push_many([Reply.delay(2.0), Reply.delay(2.0)])
    assert post(proxy).status_code == 504
    assert len(fake.generate_requests()) == 1


def test_a_client_that_leaves_before_the_answer_is_logged_as_499(
    proxy: Proxy, fake: FakeGoogle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gemini_cli_proxy.access")
    fake.push(Reply.delay(2.0))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT, timeout=0.3)
    deadline = time.monotonic() + 5
    while not any("status=" in record.getMessage() for record in caplog.records):
        assert time.monotonic() < deadline, "no access line"
        time.sleep(0.05)
    lines = [record.getMessage() for record in caplog.records if "status=" in record.getMessage()]
    assert len(lines) == 1 and " status=499 " in lines[0], lines


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A loopback address that accepts no connection: its accept queue is full, so a connect hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def test_a_connect_timeout_fails_over_to_a_credential_that_can_answer(
    start_proxy: StartProxy, fake: FakeGoogle, fake_server: FakeServer, blackhole: str
) -> None:
    """Nothing was sent when the connection never came: like an unreachable Google, the request
    moves on (here from AI Studio, whose host is out of reach, to Vertex AI)."""
    proxy = start_proxy(
        gemini_api_keys=["key-a-11111111"],
        gemini_api_base_url=blackhole,
        vertex_api_keys=["AQ.vertex-express-key-000000000000wxyz"],
        vertex_api_base_url=fake_server.url,
        proxy_connect_timeout=0.3,
    )
    for _ in range(2):  # the rotation starts each of them on a different credential
        response = post(proxy)
        assert response.status_code == 200, response.text
    assert len(fake.generate_requests()) == 2
