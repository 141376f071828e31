"""The Anthropic Messages door (`/v1/messages`): the anthropic SDK's messages.create and messages.stream
through the real server, the fake Google behind it, its typed errors, and Claude Code's recorded request."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import orjson
import pytest

from gemini_cli_proxy.testing import FakeGoogle, Reply

from conftest import Proxy, StartProxy
from support import recording

FLASH = "gemini-2.5-flash"
GEMINI3 = "gemini-3-pro-preview"
BASH: dict[str, Any] = {
    "name": "Bash",
    "description": "Runs a shell command.",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
        "additionalProperties": False,
    },
}


STREAMED: dict[str, Any] = {
    "model": FLASH,
    "max_tokens": 64,
    "stream": True,
    "messages": [{"role": "user", "content": "x"}],
}


def sdk(proxy: Proxy, api_key: str = "no-key-needed") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key=api_key, max_retries=0)


def call_reply(name: str, args: dict[str, Any], *, signature: str | None = None) -> Reply:
    call: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
    if signature:
        call["thoughtSignature"] = signature
    return Reply.response(
        {
            "candidates": [
                {"content": {"role": "model", "parts": [call]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 10, "totalTokenCount": 30},
        }
    )


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = block.split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        events.append((lines[0].removeprefix("event: "), orjson.loads(lines[1].removeprefix("data: "))))
    return events


def test_a_plain_turn_through_the_sdk(proxy: Proxy, fake: FakeGoogle) -> None:
    message = sdk(proxy).messages.create(
        model=FLASH, max_tokens=256, system="Be brief.", messages=[{"role": "user", "content": "hello there"}]
    )
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    texts = [block.text for block in message.content if block.type == "text"]
    assert texts == ["Echo: hello there"]
    assert message.stop_reason == "end_turn" and message.usage.input_tokens > 0
    sent = fake.generate_requests()[0].request
    assert sent["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert sent["generationConfig"]["maxOutputTokens"] == 256


def test_a_streamed_turn_through_the_sdk(proxy: Proxy, fake: FakeGoogle) -> None:
    fake.push(Reply.text("one two three four", chunks=4))
    with sdk(proxy).messages.stream(
        model=FLASH, max_tokens=256, messages=[{"role": "user", "content": "count"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "one two three four"
    assert [block.type for block in final.content] == ["text"] and final.stop_reason == "end_turn"


def test_the_stream_sends_anthropics_events_in_order(proxy: Proxy, fake: FakeGoogle) -> None:
    fake.push(Reply.text("hi there", chunks=2))
    raw = httpx.post(
        f"{proxy.url}/v1/messages?beta=true",
        json={
            "model": FLASH,
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
        timeout=30,
    )
    kinds = [kind for kind, _ in sse_events(raw.text)]
    assert kinds[:2] == ["message_start", "ping"] and kinds[-2:] == ["message_delta", "message_stop"]
    assert "content_block_start" in kinds and "content_block_stop" in kinds


def test_a_tool_round_trip_carries_gemini_3s_signature_in_the_thinking_block(
    proxy: Proxy, fake: FakeGoogle
) -> None:
    client = sdk(proxy)
    fake.push(call_reply("Bash", {"command": "ls"}, signature="c2lnLWJhc2g="))
    first = client.messages.create(
        model=GEMINI3,
        max_tokens=512,
        tools=[BASH],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "list the files"}],
    )
    assert first.stop_reason == "tool_use"
    use = next(block for block in first.content if block.type == "tool_use")
    assert use.name == "Bash" and use.input == {"command": "ls"}
    assert any(block.type == "thinking" and block.signature for block in first.content)
    fake.push(Reply.text("Two files."))
    second = client.messages.create(
        model=GEMINI3,
        max_tokens=512,
        tools=[BASH],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "list the files"},
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},  # type: ignore[misc]
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "a\nb"}]},
        ],
    )
    assert [block.text for block in second.content if block.type == "text"] == ["Two files."]
    contents = fake.generate_requests()[1].request["contents"]
    assert contents[1]["parts"][0]["functionCall"]["name"] == "Bash"
    assert contents[1]["parts"][0]["thoughtSignature"] == "c2lnLWJhc2g="
    assert contents[2]["parts"][0]["functionResponse"]["name"] == "Bash"


def test_errors_are_the_sdks_typed_errors(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(proxy_api_keys=["sk-right"])
    ask: dict[str, Any] = {"max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(anthropic.AuthenticationError) as denied:
        sdk(proxy, "sk-wrong").messages.create(model=FLASH, **ask)
    assert denied.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as unknown:
        sdk(proxy, "sk-right").messages.create(model="claude-nonexistent", **ask)
    assert unknown.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    fake.push(Reply.rate_limited(retry_delay="30s"))
    with pytest.raises(anthropic.RateLimitError) as limited:
        sdk(proxy, "sk-right").messages.create(model=FLASH, **ask)
    assert limited.value.response.headers["retry-after"] in {"30", "31"}
    assert fake.generate_requests()[0].request["contents"][0]["parts"][0]["text"] == "hi"


def test_aliases_let_claude_model_names_run_on_gemini(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(
        proxy_model_aliases=["claude-sonnet-4-5=gemini-2.5-pro", "claude-haiku-*=gemini-2.5-flash"]
    )
    message = sdk(proxy).messages.create(
        model="claude-haiku-4-5-20251001", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.model == "claude-haiku-4-5-20251001"
    assert fake.generate_requests()[0].model == "gemini-2.5-flash"
    listed = {m["id"] for m in httpx.get(f"{proxy.url}/v1/models").json()["data"]}
    assert "claude-sonnet-4-5" in listed


def test_claude_codes_recorded_request_is_accepted(proxy: Proxy, fake: FakeGoogle) -> None:
    recorded = recording("claude-code-2.1.197-messages")
    body: dict[str, Any] = recorded["body"]
    body["model"] = GEMINI3
    assert httpx.head(f"{proxy.url}/").status_code == 200  # Claude Code's first call
    raw = httpx.post(f"{proxy.url}/v1/messages?beta=true", json=body, timeout=30)
    assert raw.status_code == 200, raw.text
    assert sse_events(raw.text)[-1][0] == "message_stop"
    sent = fake.generate_requests()[0].request
    names = [d["name"] for tool in sent.get("tools", ()) for d in tool.get("functionDeclarations", ())]
    assert "Bash" in names


def test_a_stream_that_breaks_ends_with_an_error_event(proxy: Proxy, fake: FakeGoogle) -> None:
    fake.push(
        Reply.stream(
            [
                {"candidates": [{"content": {"role": "model", "parts": [{"text": "partial "}]}}]},
                {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
            ]
        )
    )
    raw = httpx.post(
        f"{proxy.url}/v1/messages",
        json={
            "model": FLASH,
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
        timeout=30,
    )
    kind, data = sse_events(raw.text)[-1]
    assert kind == "error" and data["type"] == "error" and "overloaded" in data["error"]["message"]


def test_count_tokens_asks_google(proxy: Proxy, fake: FakeGoogle) -> None:
    counted = sdk(proxy).messages.count_tokens(
        model=FLASH, system="Be brief.", messages=[{"role": "user", "content": "one two three"}]
    )
    # The fake counts whitespace words of every text part: the system instruction's and the turn's.
    assert counted.input_tokens == 5
    received = fake.received[-1]
    assert received.action == "countTokens" and received.model == FLASH
    assert "generationConfig" not in received.body["generateContentRequest"]
    assert fake.generate_requests() == []  # counting generates nothing


def test_google_out_of_capacity_is_anthropics_529_overloaded_error(proxy: Proxy, fake: FakeGoogle) -> None:
    fake.push(Reply.unavailable())
    raw = httpx.post(
        f"{proxy.url}/v1/messages",
        json={"model": FLASH, "max_tokens": 16, "messages": [{"role": "user", "content": "x"}]},
        timeout=30,
    )
    assert raw.status_code == 529, raw.text
    assert raw.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": raw.json()["error"]["message"]},
    }
    # The chat door says the same as a 429, as OpenAI's API does.
    fake.push(Reply.unavailable())
    chat = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": FLASH, "messages": [{"role": "user", "content": "x"}]},
        timeout=30,
    )
    assert chat.status_code == 502 and chat.json()["error"]["code"] == "upstream_error"
