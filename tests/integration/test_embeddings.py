"""Embeddings through the pool: OpenAI's `POST /v1/embeddings` (the openai SDK as client) and the Gemini
door's `:embedContent` / `:batchEmbedContents` (google-genai), over AI Studio keys, Vertex express keys and
service accounts; Code Assist credentials, which have no embedding method, are left out."""

from __future__ import annotations

import base64
import math
import struct
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gemini_cli_proxy.testing import FakeGoogle, Reply
from gemini_cli_proxy.testing.fake_embeddings import embedding_values, token_count

from .test_hostile_upstream import _oauth_file, start_kind
from .test_vertex import _key_file, _register, _vertex_proxy
from conftest import FakeServer, Proxy, StartProxy
from support import assert_schema

GEMINI = "gemini-embedding-001"
TEXT_004 = "text-embedding-004"
KEYS = ["pool-key-a-1111", "pool-key-b-2222"]


def embed_calls(fake: FakeGoogle) -> list[Any]:
    return [r for r in fake.received if r.action in {"batchEmbedContents", "embedContent", "predict"}]


def raw_embeddings(proxy: Proxy, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{proxy.url}/v1/embeddings", json=body, headers=headers, timeout=30)


def floats(packed: str) -> list[float]:
    raw = base64.b64decode(packed)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def assert_embedding_schema(body: dict[str, Any]) -> None:
    """OpenAI's schema types an embedding as numbers; a base64 one is checked once decoded."""
    decoded = [
        {**item, "embedding": floats(item["embedding"])} if isinstance(item["embedding"], str) else item
        for item in body["data"]
    ]
    assert_schema({**body, "data": decoded}, "CreateEmbeddingResponse")


def unit(vector: list[float]) -> list[float]:
    length = math.sqrt(math.fsum(v * v for v in vector))
    return [v / length for v in vector]


def close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) < 1e-6 for x, y in zip(a, b, strict=True))


# -- the OpenAI door ----------------------------------------------------------------------------------------


def test_the_openai_sdk_gets_googles_vectors_as_floats_and_as_base64(proxy: Proxy, fake: FakeGoogle) -> None:
    with proxy.client() as client:
        plain = client.embeddings.create(model=GEMINI, input="hello world", encoding_format="float")
        # Without encoding_format the SDK asks for base64 and decodes it itself.
        default = client.embeddings.create(model=GEMINI, input=["hello world", "second text"])
        raw = client.embeddings.with_raw_response.create(
            model=GEMINI, input=["hello world"], encoding_format="base64"
        )
    expected = embedding_values(GEMINI, "hello world")
    assert len(plain.data) == 1 and plain.data[0].index == 0 and plain.model == GEMINI
    assert plain.data[0].embedding == expected  # the numbers Google sent, as JSON floats
    assert [d.index for d in default.data] == [0, 1]
    assert close(default.data[0].embedding, expected)  # float32 on the way: close, not equal
    assert close(default.data[1].embedding, embedding_values(GEMINI, "second text"))
    body = raw.http_response.json()
    assert_embedding_schema(body)
    assert isinstance(body["data"][0]["embedding"], str)
    assert floats(body["data"][0]["embedding"]) == pytest.approx(expected, abs=1e-6)
    # AI Studio's batch answer counts no tokens: the proxy's estimate (4 characters a token).
    assert plain.usage.prompt_tokens == plain.usage.total_tokens == 3
    sent = embed_calls(fake)[0]
    assert (sent.api, sent.action, sent.model) == ("aistudio", "batchEmbedContents", GEMINI)
    assert sent.body == {
        "requests": [{"content": {"parts": [{"text": "hello world"}]}, "model": f"models/{GEMINI}"}]
    }


def test_every_answer_matches_openais_schema(proxy: Proxy) -> None:
    for body in (
        {"model": GEMINI, "input": "one"},
        {"model": GEMINI, "input": "one", "encoding_format": None, "dimensions": None, "user": None},
        {"model": GEMINI, "input": ["one", "two"], "encoding_format": "base64"},
        {"model": TEXT_004, "input": ["one"], "dimensions": 64},
    ):
        reply = raw_embeddings(proxy, body)
        assert reply.status_code == 200, reply.text
        assert_embedding_schema(reply.json())
        encoded = body.get("encoding_format") == "base64"
        assert all(isinstance(item["embedding"], str) == encoded for item in reply.json()["data"])


def test_dimensions_and_task_type_reach_google(proxy: Proxy, fake: FakeGoogle) -> None:
    with proxy.client() as client:
        made = client.embeddings.create(
            model=GEMINI,
            input=["a query"],
            dimensions=256,
            encoding_format="float",
            extra_body={"task_type": "RETRIEVAL_QUERY"},
        )
    # Google cuts a shortened vector; OpenAI's are unit length, and so are the proxy's.
    expected = unit(embedding_values(GEMINI, "a query", "RETRIEVAL_QUERY", 256))
    assert made.data[0].embedding == pytest.approx(expected)
    assert math.fsum(v * v for v in made.data[0].embedding) == pytest.approx(1.0)
    request = embed_calls(fake)[0].body["requests"][0]
    assert request["outputDimensionality"] == 256 and request["taskType"] == "RETRIEVAL_QUERY"


def test_a_batch_over_googles_limit_goes_as_several_calls_in_order(proxy: Proxy, fake: FakeGoogle) -> None:
    texts = [f"text number {i}" for i in range(250)]
    with proxy.client() as client:
        made = client.embeddings.create(model=GEMINI, input=texts, encoding_format="float", dimensions=8)
    assert [d.index for d in made.data] == list(range(250))
    assert all(
        d.embedding == pytest.approx(unit(embedding_values(GEMINI, t, dimensions=8)))
        for d, t in zip(made.data, texts, strict=True)
    )
    sizes = sorted(len(call.body["requests"]) for call in embed_calls(fake))
    assert sizes == [50, 100, 100]


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": GEMINI, "input": [1, 2, 3]}, "input", "unsupported_value"),
        ({"model": GEMINI, "input": [[1, 2], [3]]}, "input", "unsupported_value"),
        ({"model": GEMINI, "input": ""}, "input", "invalid_value"),
        ({"model": GEMINI, "input": ["ok", ""]}, "input[1]", "invalid_value"),
        ({"model": GEMINI, "input": []}, "input", "invalid_value"),
        ({"model": GEMINI, "input": ["x"] * 2049}, "input", "invalid_value"),
        ({"model": GEMINI, "input": "x", "dimensions": 3073}, "dimensions", "invalid_value"),
        ({"model": TEXT_004, "input": "x", "dimensions": 769}, "dimensions", "invalid_value"),
        ({"model": GEMINI, "input": "x", "dimensions": 0}, "dimensions", "invalid_value"),
        ({"model": GEMINI, "input": "x", "encoding_format": "int8"}, "encoding_format", "invalid_value"),
        ({"input": "x"}, "model", "missing_required_parameter"),
        ({"model": "gemini-2.5-flash", "input": "x"}, "model", "model_not_supported"),
    ],
)
def test_bad_requests_are_400s_that_name_the_parameter_and_reach_no_one(
    proxy: Proxy, fake: FakeGoogle, body: dict[str, Any], param: str, code: str
) -> None:
    reply = raw_embeddings(proxy, body)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert embed_calls(fake) == []


def test_an_unknown_model_is_404_and_an_embedding_model_cannot_chat(proxy: Proxy, fake: FakeGoogle) -> None:
    with proxy.client() as client:
        with pytest.raises(openai.NotFoundError):
            client.embeddings.create(model="text-embedding-3-small", input="x")
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=GEMINI, messages=[{"role": "user", "content": "hi"}])
        listed = {model.id for model in client.models.list()}
    assert refused.value.code == "model_not_supported"
    assert {GEMINI, TEXT_004} <= listed
    assert fake.received == []


def test_a_rate_limited_key_fails_over_and_cools_for_embeddings_only(
    start_proxy: StartProxy, fake: FakeGoogle
) -> None:
    proxy = start_proxy(gemini_api_keys=KEYS)
    fake.push(Reply.rate_limited(retry_delay="30s"), model=GEMINI)
    with proxy.client() as client:
        for _ in range(3):
            client.embeddings.create(model=GEMINI, input="x")
        client.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}])
    keys = [call.api_key for call in embed_calls(fake)]
    assert len(keys) == 4 and keys[0] != keys[1]  # the 429, then its failover
    assert set(keys[1:]) == {keys[1]}  # the cooled key sits out its 30 s
    assert len({r.api_key for r in fake.generate_requests()}) == 1  # chat cools nothing


def test_a_spent_pool_is_a_429_with_retry_after(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(gemini_api_keys=KEYS[:1])
    fake.push(Reply.rate_limited(retry_delay="20s"), model=GEMINI)
    reply = raw_embeddings(proxy, {"model": GEMINI, "input": "x"})
    assert reply.status_code == 429
    assert reply.json()["error"]["code"] == "rate_limit_exceeded" and int(reply.headers["Retry-After"]) >= 19


def test_a_failing_chunk_fails_the_request(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    proxy = start_proxy(gemini_api_keys=KEYS[:1])
    fake.push(
        Reply.error(400, "* BatchEmbedContentsRequest.requests[3]: bad", "INVALID_ARGUMENT"), model=GEMINI
    )
    reply = raw_embeddings(proxy, {"model": GEMINI, "input": [f"t{i}" for i in range(150)]})
    assert reply.status_code == 400
    assert "requests[3]" in reply.json()["error"]["message"]


def test_an_answer_with_the_wrong_number_of_vectors_is_a_502(
    start_proxy: StartProxy, fake: FakeGoogle
) -> None:
    proxy = start_proxy(gemini_api_keys=KEYS[:1])
    fake.push(Reply.response({"embeddings": [{"values": [0.1]}, {"values": [0.2]}]}), model=GEMINI)
    reply = raw_embeddings(proxy, {"model": GEMINI, "input": "one"})
    assert reply.status_code == 502
    assert (
        reply.json()["error"]["code"] == "upstream_error"
        and "2 embeddings for 1" in reply.json()["error"]["message"]
    )


# -- credential kinds ------------------------------------------------------------------------------------


def test_a_vertex_express_key_embeds_with_vertexs_two_methods(
    start_proxy: StartProxy, fake: FakeGoogle, fake_server: FakeServer, tmp_path: Path
) -> None:
    proxy = start_kind("vertex", start_proxy, fake, fake_server.url, tmp_path)
    with proxy.client() as client:
        gemini = client.embeddings.create(
            model=GEMINI, input=["alpha", "beta"], dimensions=32, encoding_format="float"
        )
        older = client.embeddings.create(
            model=TEXT_004, input=["alpha", "beta gamma"], encoding_format="float"
        )
    assert gemini.data[1].embedding == pytest.approx(unit(embedding_values(GEMINI, "beta", dimensions=32)))
    assert older.data[1].embedding == embedding_values(TEXT_004, "beta gamma")
    # Vertex counts the tokens: its count is the usage.
    assert gemini.usage.prompt_tokens == token_count("alpha") + token_count("beta")
    assert older.usage.prompt_tokens == token_count("alpha") + token_count("beta gamma")
    batch, predict = embed_calls(fake)
    assert (batch.api, batch.action, predict.action) == ("vertex", "batchEmbedContents", "predict")
    assert batch.body["requests"][0] == {
        "content": {"parts": [{"text": "alpha"}]},
        "embedContentConfig": {"outputDimensionality": 32},
    }
    assert predict.body == {"instances": [{"content": "alpha"}, {"content": "beta gamma"}]}


def test_a_service_account_embeds_with_its_token(
    start_proxy: StartProxy, fake: FakeGoogle, fake_server: FakeServer, tmp_path: Path
) -> None:
    _register(fake)
    proxy = _vertex_proxy(
        start_proxy, fake_server, _key_file(tmp_path / "sa.json", f"{fake_server.url}/token")
    )
    with proxy.client() as client:
        made = client.embeddings.create(
            model=TEXT_004, input=["x", "y"], dimensions=16, encoding_format="float"
        )
    assert made.data[0].embedding == pytest.approx(unit(embedding_values(TEXT_004, "x", dimensions=16)))
    call = embed_calls(fake)[0]
    assert call.path.endswith(f"/publishers/google/models/{TEXT_004}:predict") and "/projects/" in call.path
    assert call.body["parameters"] == {"outputDimensionality": 16}
    assert call.bearer_token


def test_code_assist_credentials_are_left_out_of_embeddings(
    start_proxy: StartProxy, fake: FakeGoogle, fake_server: FakeServer, tmp_path: Path
) -> None:
    only_oauth = start_kind("codeassist", start_proxy, fake, fake_server.url, tmp_path)
    reply = raw_embeddings(only_oauth, {"model": GEMINI, "input": "x"})
    assert reply.status_code == 503, reply.text
    error = reply.json()["error"]
    assert error["code"] == "no_credentials" and "codeassist" in error["message"]
    assert fake.received == []
    # Beside an AI Studio key, the OAuth account serves chat and the key every embedding.
    mixed = start_proxy(gemini_api_keys=KEYS[:1], gemini_oauth_creds=[str(_oauth_file(tmp_path))])
    with mixed.client() as client:
        for _ in range(4):
            client.embeddings.create(model=GEMINI, input="x")
    assert {(call.api, call.api_key) for call in embed_calls(fake)} == {("aistudio", KEYS[0])}


# -- the Gemini door -------------------------------------------------------------------------------------


def test_google_genai_embeds_through_the_gemini_door(proxy: Proxy, fake: FakeGoogle) -> None:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="any-key", http_options=types.HttpOptions(base_url=proxy.url))
    made = client.models.embed_content(
        model=GEMINI,
        contents=["first", "second"],
        config=types.EmbedContentConfig(output_dimensionality=12, task_type="SEMANTIC_SIMILARITY"),
    )
    assert made.embeddings and [e.values for e in made.embeddings] == [
        embedding_values(GEMINI, text, "SEMANTIC_SIMILARITY", 12) for text in ("first", "second")
    ]
    sent = embed_calls(fake)[0]
    assert sent.action == "batchEmbedContents" and sent.api_key != "any-key"
    assert sent.body["requests"][1]["taskType"] == "SEMANTIC_SIMILARITY"
    models = {m.name: m.supported_actions for m in client.models.list()}
    assert models[f"models/{GEMINI}"] == ["embedContent", "batchEmbedContents"]


def test_embed_content_and_googles_errors_on_the_gemini_door(proxy: Proxy, fake: FakeGoogle) -> None:
    base = f"{proxy.url}/v1beta/models"
    one = httpx.post(f"{base}/{GEMINI}:embedContent", json={"content": {"parts": [{"text": "solo"}]}})
    assert one.status_code == 200, one.text
    assert one.json() == {"embedding": {"values": embedding_values(GEMINI, "solo")}}
    wrong_kind = httpx.post(
        f"{base}/gemini-2.5-flash:embedContent", json={"content": {"parts": [{"text": "x"}]}}
    )
    generate_embedder = httpx.post(f"{base}/{GEMINI}:generateContent", json={"contents": []})
    no_parts = httpx.post(f"{base}/{GEMINI}:batchEmbedContents", json={"requests": [{"content": {}}]})
    no_list = httpx.post(f"{base}/{GEMINI}:batchEmbedContents", json={"requests": "x"})
    too_big = httpx.post(
        f"{base}/{GEMINI}:embedContent",
        json={"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 5000},
    )
    for reply in (wrong_kind, generate_embedder, no_parts, no_list, too_big):
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "requests[0].content" in no_parts.json()["error"]["message"]
    assert len(embed_calls(fake)) == 1 and fake.generate_requests() == []


def test_a_vertex_answer_keeps_its_usage_on_the_gemini_door(
    start_proxy: StartProxy, fake: FakeGoogle, fake_server: FakeServer, tmp_path: Path
) -> None:
    proxy = start_kind("vertex", start_proxy, fake, fake_server.url, tmp_path)
    reply = httpx.post(
        f"{proxy.url}/v1beta/models/{GEMINI}:batchEmbedContents",
        json={"requests": [{"model": f"models/{GEMINI}", "content": {"parts": [{"text": "counted"}]}}]},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["usageMetadata"]["promptTokenCount"] == token_count("counted")


def test_the_gemini_doors_other_spellings_reach_every_kind_of_credential(
    start_proxy: StartProxy, fake: FakeGoogle, fake_server: FakeServer, tmp_path: Path
) -> None:
    """Google takes snake_case fields and Vertex's embedContentConfig: whichever credential the pool
    picks, the settings arrive (a Vertex credential once lost them, and made 768 numbers)."""
    proxy = start_kind("vertex", start_proxy, fake, fake_server.url, tmp_path)
    base = f"{proxy.url}/v1beta/models"
    snake = {"content": {"parts": [{"text": "x"}]}, "output_dimensionality": 8, "task_type": "CLUSTERING"}
    nested = {"content": {"parts": [{"text": "y"}]}, "embedContentConfig": {"outputDimensionality": 4}}
    for body, text, task, size in ((snake, "x", "CLUSTERING", 8), (nested, "y", "TASK_TYPE_UNSPECIFIED", 4)):
        reply = httpx.post(f"{base}/{TEXT_004}:embedContent", json=body)
        assert reply.status_code == 200, reply.text
        assert reply.json()["embedding"]["values"] == embedding_values(TEXT_004, text, task, size)
    too_big = httpx.post(f"{base}/{TEXT_004}:embedContent", json={**snake, "output_dimensionality": 769})
    not_text = httpx.post(f"{base}/{TEXT_004}:embedContent", json={"content": {"parts": [{"text": 5}]}})
    for reply in (too_big, not_text):
        assert reply.status_code == 400 and reply.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "parts[0].text" in not_text.json()["error"]["message"]
    assert len(embed_calls(fake)) == 2
