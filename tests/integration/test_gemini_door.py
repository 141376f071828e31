"""Google's own Gemini API through the pool (`/v1beta/models/...`): bodies forwarded as they came, the
pool's credential going upstream instead of the client's key, Google-shaped errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gemini_cli_proxy.testing import FakeGoogle, Reply

from .test_hostile_upstream import start_kind
from conftest import FakeServer, Proxy, StartProxy
from support import recording

FLASH = "gemini-2.5-flash"
KEYS = ["pool-key-a-1111", "pool-key-b-2222"]
BODY: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}


def url(proxy: Proxy, model: str, method: str, query: str = "") -> str:
    return f"{proxy.url}/v1beta/models/{model}:{method}{query}"


def test_generate_content_is_forwarded_untouched_with_the_pools_key(
    start_proxy: StartProxy, fake: FakeGoogle
) -> None:
    proxy = start_proxy(gemini_api_keys=KEYS[:1], proxy_api_keys=["sk-client"])
    body = {
        **BODY,
        "generationConfig": {"temperature": 0.3, "thinkingConfig": {"includeThoughts": True}},
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "earlier", "thoughtSignature": "c2lnLWtlcHQ="}]},
            {"role": "user", "parts": [{"text": "hello there"}]},
        ],
    }
    reply = httpx.post(
        url(proxy, FLASH, "generateContent"), json=body, headers={"x-goog-api-key": "sk-client"}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["candidates"][0]["content"]["parts"][0]["text"] == "Echo: hello there"
    received = fake.generate_requests()[0]
    assert received.request == body  # not a field added, dropped or changed
    assert received.api_key == KEYS[0]  # the pool's key went upstream, not the client's


def test_the_key_may_come_as_a_query_parameter_and_a_wrong_one_is_googles_401(
    start_proxy: StartProxy, fake: FakeGoogle
) -> None:
    proxy = start_proxy(gemini_api_keys=KEYS[:1], proxy_api_keys=["sk-client"])
    assert httpx.post(url(proxy, FLASH, "generateContent", "?key=sk-client"), json=BODY).status_code == 200
    denied = httpx.post(url(proxy, FLASH, "generateContent", "?key=sk-wrong"), json=BODY)
    assert denied.status_code == 401
    assert denied.json()["error"]["status"] == "UNAUTHENTICATED" and denied.json()["error"]["code"] == 401
    assert len(fake.generate_requests()) == 1


def test_a_stream_is_relayed_as_sse_or_as_googles_json_array(proxy: Proxy, fake: FakeGoogle) -> None:
    fake.push(Reply.text("one two three", chunks=3))
    sse = httpx.post(url(proxy, FLASH, "streamGenerateContent", "?alt=sse"), json=BODY, timeout=30)
    assert sse.headers["Content-Type"].startswith("text/event-stream")
    events = [orjson.loads(line.removeprefix("data: ")) for line in sse.text.split("\r\n") if line]
    text = "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events)
    assert text == "one two three"
    fake.push(Reply.text("four five", chunks=2))
    array = httpx.post(url(proxy, FLASH, "streamGenerateContent"), json=BODY, timeout=30)
    items = orjson.loads(array.content)
    assert isinstance(items, list) and len(items) == 2
    assert "".join(i["candidates"][0]["content"]["parts"][0]["text"] for i in items) == "four five"


def test_a_rate_limited_key_fails_over_and_a_spent_pool_is_googles_429(
    start_proxy: StartProxy, fake: FakeGoogle
) -> None:
    proxy = start_proxy(gemini_api_keys=KEYS)
    fake.push(Reply.rate_limited(retry_delay="30s"))
    assert httpx.post(url(proxy, FLASH, "generateContent"), json=BODY).status_code == 200
    fake.push(Reply.rate_limited(retry_delay="30s"))
    spent = httpx.post(url(proxy, FLASH, "generateContent"), json=BODY)
    assert spent.status_code == 429 and int(spent.headers["Retry-After"]) >= 29
    error = spent.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED" and error["code"] == 429
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.RetryInfo"
    assert KEYS[0] not in spent.text and KEYS[1] not in spent.text


def test_count_tokens_and_the_model_list(proxy: Proxy, fake: FakeGoogle) -> None:
    counted = httpx.post(url(proxy, FLASH, "countTokens"), json=BODY)
    assert counted.json() == {"totalTokens": 2}
    models = httpx.get(f"{proxy.url}/v1beta/models").json()["models"]
    assert {"name": f"models/{FLASH}"}.items() <= next(
        m for m in models if m["name"] == f"models/{FLASH}"
    ).items()
    assert httpx.get(f"{proxy.url}/v1beta/models/{FLASH}").json()["name"] == f"models/{FLASH}"
    unknown = httpx.post(url(proxy, "gemini-nope", "generateContent"), json=BODY)
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == "NOT_FOUND"


def test_gemini_clis_recorded_request_is_forwarded(proxy: Proxy, fake: FakeGoogle) -> None:
    recorded = recording("gemini-cli-0.61.0-stream-generate")
    response = httpx.post(f"{proxy.url}{recorded['path']}", json=recorded["body"], timeout=30)
    assert response.status_code == 200, response.text
    assert fake.generate_requests()[0].request == recorded["body"]


def test_a_stream_that_breaks_ends_with_googles_error_object(proxy: Proxy, fake: FakeGoogle) -> None:
    fake.push(
        Reply.stream(
            [
                {"candidates": [{"content": {"role": "model", "parts": [{"text": "partial "}]}}]},
                {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
            ]
        )
    )
    raw = httpx.post(url(proxy, FLASH, "streamGenerateContent", "?alt=sse"), json=BODY, timeout=30)
    last = orjson.loads([line for line in raw.text.split("\r\n") if line][-1].removeprefix("data: "))
    assert last["error"]["status"] == "UNAVAILABLE" and "overloaded" in last["error"]["message"]


def test_the_google_genai_sdk_through_the_pool(proxy: Proxy, fake: FakeGoogle) -> None:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="any-key", http_options=types.HttpOptions(base_url=proxy.url))
    reply = client.models.generate_content(model=FLASH, contents="hello there")
    assert reply.text == "Echo: hello there"
    fake.push(Reply.text("one two three", chunks=3))
    streamed = "".join(
        chunk.text or "" for chunk in client.models.generate_content_stream(model=FLASH, contents="x")
    )
    assert streamed == "one two three"
    assert client.models.count_tokens(model=FLASH, contents="four five six").total_tokens == 3
    # A Gemini 3 function call round trip: the signature comes back to Google untouched.
    call = {"functionCall": {"name": "get_time", "args": {"zone": "UTC"}}, "thoughtSignature": "c2lnLWdlbmFp"}
    fake.push(
        Reply.response(
            {
                "candidates": [
                    {"content": {"role": "model", "parts": [call]}, "finishReason": "STOP", "index": 0}
                ]
            }
        )
    )
    tool = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="get_time",
                parameters=types.Schema(
                    type=types.Type.OBJECT, properties={"zone": types.Schema(type=types.Type.STRING)}
                ),
            )
        ]
    )
    config = types.GenerateContentConfig(tools=[tool])
    first = client.models.generate_content(
        model="gemini-3-pro-preview", contents="what time is it?", config=config
    )
    assert first.candidates and first.candidates[0].content
    model_turn = first.candidates[0].content
    answer = types.Content(
        role="user",
        parts=[types.Part.from_function_response(name="get_time", response={"time": "12:00"})],
    )
    client.models.generate_content(
        model="gemini-3-pro-preview",
        contents=[
            types.Content(role="user", parts=[types.Part(text="what time is it?")]),
            model_turn,
            answer,
        ],
        config=config,
    )
    sent = fake.generate_requests()[-1].request["contents"]
    assert sent[1]["parts"][0]["thoughtSignature"] == "c2lnLWdlbmFp"
    assert sent[2]["parts"][0]["functionResponse"]["response"] == {"time": "12:00"}


@pytest.mark.parametrize("kind", ["aistudio", "vertex", "codeassist"])
def test_every_credential_kind_serves_the_gemini_door(
    kind: str, start_proxy: StartProxy, fake: FakeGoogle, fake_server: FakeServer, tmp_path: Path
) -> None:
    """A google-genai client gets Code Assist and Vertex credentials it could not use itself: the pool
    wraps the body in Code Assist's envelope, or calls Vertex's path, and unwraps the reply."""
    proxy = start_kind(kind, start_proxy, fake, fake_server.url, tmp_path)
    plain = httpx.post(url(proxy, FLASH, "generateContent"), json=BODY, timeout=30)
    assert plain.status_code == 200, plain.text
    assert plain.json()["candidates"][0]["content"]["parts"][0]["text"] == "Echo: hello there"
    fake.push(Reply.text("one two", chunks=2))
    streamed = httpx.post(url(proxy, FLASH, "streamGenerateContent", "?alt=sse"), json=BODY, timeout=30)
    events = [orjson.loads(line.removeprefix("data: ")) for line in streamed.text.split("\r\n") if line]
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events) == "one two"
    received = fake.generate_requests()[0]
    assert received.api == kind and received.request == BODY  # forwarded as it came, whatever the kind


def test_the_model_list_a_google_client_asks_for_under_v1_is_googles(proxy: Proxy) -> None:
    """google-genai, given a base URL, lists `/v1/models` with its key in x-goog-api-key: that client
    gets Google's list and Google's errors; an OpenAI client there still gets OpenAI's."""
    google = {"x-goog-api-key": "any"}
    listed = httpx.get(f"{proxy.url}/v1/models", headers=google).json()
    assert {"name": f"models/{FLASH}", "displayName": FLASH} | {
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"]
    } in listed["models"]
    one = httpx.get(f"{proxy.url}/v1/models/models/{FLASH}", params={"key": "any"})
    assert one.json()["name"] == f"models/{FLASH}"
    missing = httpx.get(f"{proxy.url}/v1/models/gemini-9", headers=google)
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    openai_list = httpx.get(f"{proxy.url}/v1/models", headers={"Authorization": "Bearer any"}).json()
    assert openai_list["object"] == "list" and "models" not in openai_list
    openai_missing = httpx.get(f"{proxy.url}/v1/models/gemini-9").json()["error"]
    assert openai_missing["code"] == "model_not_found"
