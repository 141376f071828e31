"""The Responses API door (`/v1/responses`): the openai SDK's responses.create / stream / parse through
the real server, the fake Google behind it, every Response and stream event checked against OpenAI's
schemas."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pydantic
import pytest

from gemini_cli_proxy.testing import FakeGoogle, Reply

from conftest import Proxy, StartProxy
from support import assert_schema, recording

FLASH = "gemini-2.5-flash"
GEMINI3 = "gemini-3-pro-preview"
SHELL_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "exec_command",
    "description": "Runs a shell command.",
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}},
        "required": ["cmd"],
        "additionalProperties": False,
    },
    "strict": False,
}


def dump(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = obj.model_dump(mode="json", exclude_unset=True)
    return data


def post(proxy: Proxy, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{proxy.url}/v1/responses", json=body, timeout=30, **kwargs)


def call_reply(name: str, args: dict[str, Any], *, signature: str | None = None, text: str = "") -> Reply:
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    call: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
    if signature:
        call["thoughtSignature"] = signature
    parts.append(call)
    return Reply.response(
        {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
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


def test_a_plain_turn_through_the_sdk(client: openai.OpenAI, fake: FakeGoogle) -> None:
    response = client.responses.create(model=FLASH, input="hello there", instructions="Be brief.")
    assert response.output_text == "Echo: hello there"
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.usage is not None and response.usage.input_tokens > 0
    assert_schema(dump(response), "Response")
    sent = fake.generate_requests()[0].request
    assert sent["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert sent["contents"] == [{"role": "user", "parts": [{"text": "hello there"}]}]


def test_a_streamed_turn_sends_openais_events_in_order_and_no_done_line(
    proxy: Proxy, fake: FakeGoogle
) -> None:
    fake.push(Reply.text("one two three four", chunks=4))
    raw = post(proxy, {"model": FLASH, "input": "count", "stream": True})
    assert raw.status_code == 200 and raw.headers["Content-Type"].startswith("text/event-stream")
    assert "[DONE]" not in raw.text
    events = sse_events(raw.text)
    kinds = [kind for kind, _ in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    for kind, data in events:
        assert data["type"] == kind
        assert_schema(data, "ResponseStreamEvent")
    deltas = "".join(data["delta"] for kind, data in events if kind == "response.output_text.delta")
    assert deltas == "one two three four" == events[-1][1]["response"]["output"][0]["content"][0]["text"]


def test_the_sdks_stream_helper_and_parse(client: openai.OpenAI, fake: FakeGoogle) -> None:
    fake.push(Reply.text("streamed text", chunks=3))
    with client.responses.stream(model=FLASH, input="go") as stream:
        texts = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == "streamed text" == final.output_text

    class City(pydantic.BaseModel):
        name: str
        population: int

    fake.push(Reply.text('{"name": "Oslo", "population": 709000}'))
    parsed = client.responses.parse(model=FLASH, input="a city", text_format=City)
    assert parsed.output_parsed == City(name="Oslo", population=709000)
    config = fake.generate_requests()[-1].request["generationConfig"]
    assert config["responseMimeType"] == "application/json" and "responseJsonSchema" in config


def test_a_stateless_tool_round_trip_carries_gemini_3s_signatures_in_encrypted_content(
    client: openai.OpenAI, fake: FakeGoogle
) -> None:
    """Codex's way: store false, the reasoning items sent back verbatim on the next turn."""
    fake.push(call_reply("exec_command", {"cmd": "ls"}, signature="c2lnLWNhbGw="))
    first = client.responses.create(
        model=GEMINI3,
        input="list the files",
        tools=[SHELL_TOOL],  # type: ignore[list-item]
        store=False,
        include=["reasoning.encrypted_content"],
    )
    assert_schema(dump(first), "Response")
    calls = [item for item in first.output if item.type == "function_call"]
    assert (
        len(calls) == 1
        and calls[0].name == "exec_command"
        and orjson.loads(calls[0].arguments) == {"cmd": "ls"}
    )
    reasoning = [item for item in first.output if item.type == "reasoning"]
    assert reasoning and reasoning[0].encrypted_content
    fake.push(Reply.text("There are two files."))
    follow_up = [
        *[dump(item) for item in first.output],
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "a.txt\nb.txt"},
    ]
    second = client.responses.create(
        model=GEMINI3,
        input=[{"role": "user", "content": "list the files"}, *follow_up],  # type: ignore[list-item]
        tools=[SHELL_TOOL],  # type: ignore[list-item]
        store=False,
    )
    assert second.output_text == "There are two files."
    contents = fake.generate_requests()[1].request["contents"]
    assert contents[1]["role"] == "model"
    assert contents[1]["parts"][0]["functionCall"]["name"] == "exec_command"
    assert contents[1]["parts"][0]["thoughtSignature"] == "c2lnLWNhbGw="
    assert contents[2]["parts"][0]["functionResponse"]["name"] == "exec_command"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)  # store false keeps nothing


def test_a_stateful_round_trip_by_previous_response_id(client: openai.OpenAI, fake: FakeGoogle) -> None:
    fake.push(call_reply("exec_command", {"cmd": "pwd"}, signature="c2lnLXB3ZA=="))
    first = client.responses.create(model=GEMINI3, input="where am I?", tools=[SHELL_TOOL])  # type: ignore[list-item]
    call = next(item for item in first.output if item.type == "function_call")
    fake.push(Reply.text("In /work."))
    second = client.responses.create(
        model=GEMINI3,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "/work"}],
        tools=[SHELL_TOOL],  # type: ignore[list-item]
    )
    assert second.output_text == "In /work."
    contents = fake.generate_requests()[1].request["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[0]["parts"][0]["text"] == "where am I?"
    assert contents[1]["parts"][0]["thoughtSignature"] == "c2lnLXB3ZA=="
    assert contents[2]["parts"][0]["functionResponse"]["response"] == {"output": "/work"}
    stored = client.responses.retrieve(second.id)
    assert stored.output_text == "In /work." and stored.previous_response_id == first.id
    items = client.responses.input_items.list(second.id)
    assert [item.type for item in items.data] == ["function_call_output"]
    deleted = httpx.delete(f"{client.base_url}responses/{second.id}")
    assert deleted.json() == {"id": second.id, "object": "response.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)


def test_item_references_name_the_stored_items_of_earlier_turns(
    client: openai.OpenAI, fake: FakeGoogle
) -> None:
    """The Vercel AI SDK sends earlier turns as `item_reference`s to the items the proxy stored."""
    fake.push(call_reply("exec_command", {"cmd": "pwd"}, signature="c2lnLXB3ZA=="))
    asked = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "where am I?"}]}
    first = client.responses.create(model=GEMINI3, input=[asked], tools=[SHELL_TOOL])  # type: ignore[list-item]
    call = next(item for item in first.output if item.type == "function_call")
    asked_id = client.responses.input_items.list(first.id).data[0].id
    fake.push(Reply.text("In /work."))
    second = client.responses.create(
        model=GEMINI3,
        input=[
            {"type": "item_reference", "id": asked_id},
            *({"type": "item_reference", "id": item.id} for item in first.output),
            {"type": "function_call_output", "call_id": call.call_id, "output": "/work"},
        ],  # type: ignore[misc]
        tools=[SHELL_TOOL],  # type: ignore[list-item]
    )
    assert second.output_text == "In /work."
    contents = fake.generate_requests()[1].request["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[0]["parts"][0]["text"] == "where am I?"
    assert contents[1]["parts"][0]["functionCall"]["name"] == "exec_command"
    assert contents[1]["parts"][0]["thoughtSignature"] == "c2lnLXB3ZA=="
    with pytest.raises(openai.BadRequestError) as missing:
        client.responses.create(model=FLASH, input=[{"type": "item_reference", "id": "msg_gone"}])  # type: ignore[list-item]
    assert missing.value.code == "item_not_found" and missing.value.param == "input[0]"


def test_an_unknown_previous_response_is_a_404_naming_the_parameter(proxy: Proxy, fake: FakeGoogle) -> None:
    response = post(proxy, {"model": FLASH, "input": "hi", "previous_response_id": "resp_nope"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["param"] == "previous_response_id" and error["type"] == "invalid_request_error"
    assert fake.generate_requests() == []


@pytest.mark.parametrize("tool_type", ["file_search", "code_interpreter", "computer_use_preview", "mcp"])
def test_hosted_tools_gemini_cannot_run_are_a_400_naming_the_tool(
    proxy: Proxy, fake: FakeGoogle, tool_type: str
) -> None:
    response = post(proxy, {"model": FLASH, "input": "hi", "tools": [{"type": tool_type}]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "tools[0].type" and tool_type in error["message"]
    assert fake.generate_requests() == []


def test_codexs_recorded_request_is_accepted_and_translated(proxy: Proxy, fake: FakeGoogle) -> None:
    body = orjson.loads(orjson.dumps(codex_body()))
    body["stream"] = True
    raw = post(proxy, body, headers={"Authorization": "Bearer x"})
    assert raw.status_code == 200, raw.text
    events = sse_events(raw.text)
    assert events[-1][0] == "response.completed"
    for _, data in events:
        assert_schema(data, "ResponseStreamEvent")
    sent = fake.generate_requests()[0].request
    names = [d["name"] for tool in sent.get("tools", ()) for d in tool.get("functionDeclarations", ())]
    assert "exec_command" in "".join(names)


def test_a_stream_that_breaks_ends_with_response_failed(proxy: Proxy, fake: FakeGoogle) -> None:
    events = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "partial "}]}}]},
        {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
    ]
    fake.push(Reply.stream(events))
    raw = post(proxy, {"model": FLASH, "input": "go", "stream": True})
    parsed = sse_events(raw.text)
    assert parsed[-1][0] == "response.failed"
    failed = parsed[-1][1]["response"]
    assert failed["status"] == "failed" and "overloaded" in failed["error"]["message"]
    assert_schema(parsed[-1][1], "ResponseStreamEvent")
    assert "[DONE]" not in raw.text


def test_a_wrong_proxy_key_is_answered_in_the_doors_shape(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(proxy_api_keys=["sk-right"])
    response = post(proxy, {"model": FLASH, "input": "hi"}, headers={"Authorization": "Bearer sk-wrong"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def codex_body() -> dict[str, Any]:
    """Codex CLI 0.169.0's first request, its long texts (replaced in the recording) made text again."""
    body: dict[str, Any] = recording("codex-cli-0.169.0-responses")["body"]
    return body
