"""Tests for the fake Google's embedding methods (fake_embeddings, wired in fake_routes).

AI Studio's embedContent / batchEmbedContents, Vertex's embedContent / batchEmbedContents / predict,
their 400s and 404s, scripted replies and auth, over real HTTP. Each test runs its own fake on
127.0.0.1:0 inside `asyncio.run` (no pytest-asyncio here), as tests/fake does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt

from gemini_cli_proxy.testing import FakeGoogle, Reply, serve_fake
from gemini_cli_proxy.testing.fake_embeddings import (
    embedding_dimensions,
    embedding_values,
    is_embedding_model,
    token_count,
)

GEMINI = "gemini-embedding-001"
TEXT_MODEL = "text-embedding-005"
KEY = {"x-goog-api-key": "test-key"}
EMAIL = "embed-sa@proj-e.iam.gserviceaccount.com"
PROJECT = "proj-e"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class Resp:
    status: int
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)

    def error(self) -> dict[str, Any]:
        body = self.json()
        assert set(body) == {"error"}, body
        error: dict[str, Any] = body["error"]
        return error


@dataclass
class Client:
    session: aiohttp.ClientSession
    url: str

    async def post(self, path: str, body: Any, headers: Mapping[str, str] | None = None) -> Resp:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        send = {"Content-Type": "application/json", **(headers or {})}
        async with self.session.post(path, data=data, headers=send) as response:
            return Resp(response.status, await response.read())

    async def bearer(self) -> dict[str, str]:
        """A service account's access token from the fake's /token, as Authorization headers."""
        now = int(time.time())
        claims = {"iss": EMAIL, "scope": SCOPE, "aud": f"{self.url}/token", "iat": now, "exp": now + 3600}
        signed = jwt.encode(crypt.RSASigner.from_string(_private_pem(), "kid-1"), claims).decode()
        form = {"grant_type": JWT_BEARER, "assertion": signed}
        async with self.session.post("/token", data=form) as response:
            assert response.status == 200, await response.read()
            token = (await response.json())["access_token"]
        return {"Authorization": f"Bearer {token}"}


Scenario = Callable[[Client], Awaitable[None]]


@cache
def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _private_pem() -> str:
    return (
        _key()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )


def _public_pem() -> bytes:
    return (
        _key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def new_fake(**kwargs: Any) -> FakeGoogle:
    fake = FakeGoogle(**kwargs)
    fake.add_service_account(EMAIL, _public_pem(), project_id=PROJECT)
    return fake


@contextlib.asynccontextmanager
async def running(fake: FakeGoogle) -> AsyncIterator[Client]:
    runner, port = await serve_fake(fake, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(base_url=url) as session:
            yield Client(session, url)
    finally:
        await runner.cleanup()


def run_with(fake: FakeGoogle, scenario: Scenario) -> None:
    async def main() -> None:
        async with running(fake) as client:
            await scenario(client)

    asyncio.run(main())


def studio(model: str, method: str) -> str:
    return f"/v1beta/models/{model}:{method}"


def vertex(model: str, method: str, project: str = PROJECT) -> str:
    return f"/v1/projects/{project}/locations/us-central1/publishers/google/models/{model}:{method}"


def express(model: str, method: str) -> str:
    return f"/v1/publishers/google/models/{model}:{method}"


def content(text: str) -> dict[str, Any]:
    return {"parts": [{"text": text}]}


def studio_request(text: str, model: str = GEMINI, **options: Any) -> dict[str, Any]:
    return {"model": f"models/{model}", "content": content(text), **options}


def norm(values: list[float]) -> float:
    return math.sqrt(math.fsum(v * v for v in values))


def assert_unit(values: list[float]) -> None:
    assert norm(values) == pytest.approx(1.0, abs=1e-9)


# -- the pure helpers --------------------------------------------------------------------------------------


def test_embedding_models_and_their_sizes() -> None:
    for model in (GEMINI, "gemini-embedding-exp-03-07", TEXT_MODEL, "text-embedding-004"):
        assert is_embedding_model(model), model
    assert is_embedding_model("text-multilingual-embedding-002")
    for model in ("gemini-2.5-flash", "embedding", "text-bison", "gemini-2.0-embedding"):
        assert not is_embedding_model(model), model
    assert embedding_dimensions(GEMINI) == 3072
    assert embedding_dimensions("text-embedding-004") == embedding_dimensions(TEXT_MODEL) == 768
    assert embedding_dimensions("text-multilingual-embedding-002") == 768
    with pytest.raises(ValueError):
        embedding_dimensions("gemini-2.5-flash")


def test_vectors_are_deterministic_normalised_at_full_size_and_truncate_as_prefixes() -> None:
    full = embedding_values(GEMINI, "hello")
    assert len(full) == 3072 and full == embedding_values(GEMINI, "hello")
    assert_unit(full)
    assert full != embedding_values(GEMINI, "hello!")
    assert full != embedding_values(GEMINI, "hello", "RETRIEVAL_QUERY")
    assert embedding_values(TEXT_MODEL, "hello")[:5] != embedding_values("text-embedding-004", "hello")[:5]
    short = embedding_values(GEMINI, "hello", dimensions=256)
    assert len(short) == 256 and all(-1.0 <= v <= 1.0 for v in short)
    assert norm(short) > 2  # not normalised: 256 raw values spread over [-1, 1]
    scale = short[0] / full[0]
    assert all(s == pytest.approx(f * scale) for s, f in zip(short, full, strict=False))
    assert embedding_values(GEMINI, "hello", dimensions=3072) == full
    assert len(embedding_values(TEXT_MODEL, "x")) == 768
    assert token_count("three words here") == 3 and token_count("") == 1


# -- AI Studio ---------------------------------------------------------------------------------------------


def test_aistudio_batch_embed_contents_shape_order_and_determinism() -> None:
    fake = new_fake()
    requests = [
        studio_request("alpha beta"),
        studio_request("gamma", taskType="RETRIEVAL_DOCUMENT", title="doc"),
        studio_request("alpha beta", outputDimensionality=256),
        studio_request("alpha beta", task_type="RETRIEVAL_QUERY"),
    ]

    async def scenario(c: Client) -> None:
        resp = await c.post(studio(GEMINI, "batchEmbedContents"), {"requests": requests}, KEY)
        assert resp.status == 200, resp.raw
        body = resp.json()
        assert list(body) == ["embeddings"]  # no usageMetadata: AI Studio's documented shape
        first, second, short, query = (e["values"] for e in body["embeddings"])
        assert all(set(e) == {"values"} for e in body["embeddings"])
        assert len(first) == len(second) == len(query) == 3072 and len(short) == 256
        assert_unit(first)
        assert_unit(second)
        assert first == embedding_values(GEMINI, "alpha beta")
        assert second == embedding_values(GEMINI, "gamma", "RETRIEVAL_DOCUMENT")
        assert query == embedding_values(GEMINI, "alpha beta", "RETRIEVAL_QUERY") != first
        assert short == embedding_values(GEMINI, "alpha beta", dimensions=256)
        assert norm(short) > 2
        again = await c.post(studio(GEMINI, "batchEmbedContents"), {"requests": requests[:1]}, KEY)
        assert again.json()["embeddings"][0]["values"] == first
        assert b'\n  "embeddings": [' in resp.raw  # Google's pretty JSON
        (call, _) = fake.received
        assert (call.api, call.action, call.model, call.stream) == (
            "aistudio",
            "batchEmbedContents",
            GEMINI,
            False,
        )
        assert call.body == {"requests": requests} and not call.is_generate

    run_with(fake, scenario)


def test_aistudio_embed_content_and_text_embedding_models() -> None:
    fake = new_fake(api_keys={"test-key"})

    async def scenario(c: Client) -> None:
        body = {"content": {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]}}
        resp = await c.post(studio(GEMINI, "embedContent"), body, KEY)
        assert resp.status == 200, resp.raw
        reply = resp.json()
        assert list(reply) == ["embedding"] and list(reply["embedding"]) == ["values"]
        assert reply["embedding"]["values"] == embedding_values(GEMINI, "one\ntwo")
        named = {"model": f"models/{GEMINI}", "content": content("x"), "outputDimensionality": 8}
        resp = await c.post(studio(GEMINI, "embedContent") + "?key=test-key", named)
        assert resp.status == 200 and len(resp.json()["embedding"]["values"]) == 8
        assert fake.received[-1].key_in_query and fake.received[-1].action == "embedContent"
        old = {"requests": [studio_request("hi", "text-embedding-004")]}
        resp = await c.post(studio("text-embedding-004", "batchEmbedContents"), old, KEY)
        assert resp.status == 200, resp.raw
        values = resp.json()["embeddings"][0]["values"]
        assert len(values) == 768
        assert_unit(values)

    run_with(fake, scenario)


def test_aistudio_batch_limit_is_100_requests() -> None:
    fake = new_fake()

    async def scenario(c: Client) -> None:
        hundred = {"requests": [studio_request(f"text {i}") for i in range(100)]}
        resp = await c.post(studio(GEMINI, "batchEmbedContents"), hundred, KEY)
        assert resp.status == 200 and len(resp.json()["embeddings"]) == 100
        too_many = {"requests": [studio_request(f"text {i}") for i in range(101)]}
        resp = await c.post(studio(GEMINI, "batchEmbedContents"), too_many, KEY)
        assert resp.status == 400
        assert resp.error() == {
            "code": 400,
            "message": "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch.\n",
            "status": "INVALID_ARGUMENT",
        }

    run_with(fake, scenario)


_ONE = studio_request("fine")
_AISTUDIO_BAD_BATCHES: list[tuple[Any, str]] = [
    ({}, "requests must not be empty"),
    ({"requests": []}, "requests must not be empty"),
    ({"requests": {"content": content("x")}}, "Invalid value at 'requests'"),
    ([_ONE], "Expected an object"),
    ({"requests": [_ONE], "extra": 1}, 'Unknown name "extra"'),
    ({"requests": [_ONE, {"content": content("x")}]}, "requests[1].model: model is not specified"),
    (
        {"requests": [studio_request("x", "gemini-embedding-002")]},
        "Model specified in the request (models/gemini-embedding-002) does not match model in the URL "
        f"(models/{GEMINI}).",
    ),
    ({"requests": [{"model": GEMINI, "content": content("x")}]}, "does not match model in the URL"),
    ({"requests": [{"model": f"models/{GEMINI}"}]}, "requests[0].content: content is not specified"),
    ({"requests": [{**_ONE, "content": {"parts": []}}]}, "content.parts must not be empty"),
    ({"requests": [{**_ONE, "content": {}}]}, "content.parts must not be empty"),
    ({"requests": [{**_ONE, "content": "text"}]}, "Invalid value at 'requests[0].content'"),
    (
        {"requests": [{**_ONE, "content": {"parts": [{"inlineData": {"mimeType": "image/png"}}]}}]},
        "requests[0].content.parts[0]: only text parts",
    ),
    ({"requests": [{**_ONE, "content": {"parts": [{"text": 5}]}}]}, "only text parts"),
    ({"requests": [{**_ONE, "outputDimensionality": 0}]}, "must be in the range [1, 3072]"),
    ({"requests": [{**_ONE, "outputDimensionality": 3073}]}, "must be in the range [1, 3072]"),
    ({"requests": [{**_ONE, "outputDimensionality": "256"}]}, "output_dimensionality' (TYPE_INT32)"),
    ({"requests": [{**_ONE, "outputDimensionality": 2.5}]}, "(TYPE_INT32), 2.5"),
    ({"requests": [{**_ONE, "output_dimensionality": True}]}, "(TYPE_INT32), True"),
    (
        {"requests": [{**_ONE, "taskType": "SEARCH"}]},
        "Invalid value at 'requests[0].task_type' "
        '(type.googleapis.com/google.ai.generativelanguage.v1beta.TaskType), "SEARCH"',
    ),
    ({"requests": [{**_ONE, "title": 7}]}, "requests[0].title' (TYPE_STRING), 7"),
    ({"requests": [{**_ONE, "autoTruncate": True}]}, "Unknown name \"autoTruncate\" at 'requests[0]'"),
]


@pytest.mark.parametrize(("body", "expected"), _AISTUDIO_BAD_BATCHES)
def test_aistudio_batch_refuses_what_google_refuses(body: Any, expected: str) -> None:
    fake = new_fake()

    async def scenario(c: Client) -> None:
        resp = await c.post(studio(GEMINI, "batchEmbedContents"), body, KEY)
        assert resp.status == 400, resp.raw
        error = resp.error()
        assert error["status"] == "INVALID_ARGUMENT" and error["code"] == 400
        assert expected in error["message"]
        assert fake.received[0].action == "batchEmbedContents"  # recorded before the checks
        assert fake.pending_replies == 0

    run_with(fake, scenario)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, "* EmbedContentRequest.content: content is not specified"),
        ({"content": content("x"), "model": "models/other"}, "does not match model in the URL"),
        ({"content": content("x"), "taskType": "NOPE"}, "'task_type'"),
        ({"content": content("x"), "outputDimensionality": 5000}, "must be in the range [1, 3072]"),
        ({"content": content("x"), "requests": []}, 'Unknown name "requests"'),
    ],
)
def test_aistudio_embed_content_refusals(body: Any, expected: str) -> None:
    fake = new_fake()

    async def scenario(c: Client) -> None:
        resp = await c.post(studio(GEMINI, "embedContent"), body, KEY)
        assert resp.status == 400 and expected in resp.error()["message"], resp.raw

    run_with(fake, scenario)


def test_aistudio_invalid_json_is_refused() -> None:
    fake = new_fake()

    async def scenario(c: Client) -> None:
        resp = await c.post(studio(GEMINI, "batchEmbedContents"), b"{not json", KEY)
        assert resp.status == 400 and resp.error()["message"].startswith("Invalid JSON payload")

    run_with(fake, scenario)


def test_aistudio_wrong_kind_of_model_is_googles_not_supported_404() -> None:
    fake = new_fake()
    fake.missing_models.add("gemini-embedding-exp-03-07")

    async def scenario(c: Client) -> None:
        body = {"requests": [studio_request("x", "gemini-2.5-flash")]}
        resp = await c.post(studio("gemini-2.5-flash", "batchEmbedContents"), body, KEY)
        assert resp.status == 404
        assert resp.error() == {
            "code": 404,
            "message": "models/gemini-2.5-flash is not found for API version v1beta, or is not supported "
            "for batchEmbedContents. Call ModelService.ListModels to see the list of available models "
            "and their supported methods.",
            "status": "NOT_FOUND",
        }
        resp = await c.post(studio("gemini-2.5-flash", "embedContent"), {"content": content("x")}, KEY)
        assert resp.status == 404 and "not supported for embedContent" in resp.error()["message"]
        hello = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        for model in (GEMINI, TEXT_MODEL):
            for method in ("generateContent", "streamGenerateContent"):
                resp = await c.post(studio(model, method), hello, KEY)
                assert resp.status == 404, (model, method)
                assert f"models/{model} is not found" in resp.error()["message"]
                assert f"not supported for {method}" in resp.error()["message"]
        missing = "gemini-embedding-exp-03-07"
        resp = await c.post(studio(missing, "embedContent"), {"content": content("x")}, KEY)
        assert resp.status == 404 and f"models/{missing} is not found" in resp.error()["message"]
        assert (await c.post(studio("gemini-2.5-flash", "generateContent"), hello, KEY)).status == 200

    run_with(fake, scenario)


def test_aistudio_embedding_auth_and_unknown_methods() -> None:
    fake = new_fake(api_keys={"good-key"})
    body = {"requests": [studio_request("x")]}

    async def scenario(c: Client) -> None:
        resp = await c.post(studio(GEMINI, "batchEmbedContents"), body)
        assert resp.status == 403 and resp.error()["status"] == "PERMISSION_DENIED"
        resp = await c.post(studio(GEMINI, "batchEmbedContents"), body, {"x-goog-api-key": "bad"})
        assert resp.status == 400
        assert resp.error()["details"][0]["reason"] == "API_KEY_INVALID"
        resp = await c.post(studio(GEMINI, "embedContents"), body, {"x-goog-api-key": "good-key"})
        assert resp.status == 404 and resp.error()["message"] == "Method not found."
        resp = await c.post(studio(GEMINI, "predict"), body, {"x-goog-api-key": "good-key"})
        assert resp.status == 404 and resp.error()["message"] == "Method not found."
        resp = await c.post(studio(GEMINI, "batchEmbedContents"), body, {"x-goog-api-key": "good-key"})
        assert resp.status == 200
        assert [r.action for r in fake.received] == [
            "batchEmbedContents",
            "batchEmbedContents",
            "embedContents",
            "predict",
            "batchEmbedContents",
        ]

    run_with(fake, scenario)


# -- scripted replies -------------------------------------------------------------------------------------


def test_scripted_replies_on_embedding_calls() -> None:
    fake = new_fake()
    body = {"requests": [studio_request("x")]}
    path = studio(GEMINI, "batchEmbedContents")

    async def scenario(c: Client) -> None:
        fake.push(Reply.rate_limited(retry_delay="2.5s"))
        resp = await c.post(path, body, KEY)
        assert resp.status == 429
        error = resp.error()
        assert error["status"] == "RESOURCE_EXHAUSTED" and "Please retry in 2.5s." in error["message"]
        assert error["details"][-1] == {
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": "2s",
        }
        assert f"model: {GEMINI}" in error["message"]

        fake.push(Reply.response({"embeddings": [{"values": "garbage"}]}))
        resp = await c.post(path, body, KEY)
        assert resp.status == 200 and resp.json() == {"embeddings": [{"values": "garbage"}]}

        fake.push(Reply.delay(0.05, Reply.unavailable()))
        started = time.monotonic()
        resp = await c.post(path, body, KEY)
        assert resp.status == 503 and resp.error()["status"] == "UNAVAILABLE"
        assert time.monotonic() - started >= 0.05

        fake.push(Reply.raw(502, b"<html>bad gateway</html>"))
        resp = await c.post(path, body, KEY)
        assert (resp.status, resp.raw) == (502, b"<html>bad gateway</html>")

        fake.push(Reply.wire([b'{"embeddings": [', b"]}"], status=200))
        resp = await c.post(path, body, KEY)
        assert (resp.status, resp.raw) == (200, b'{"embeddings": []}')

        fake.push(Reply.permission_denied("CONSUMER_INVALID"))
        resp = await c.post(path, body, KEY)
        assert resp.status == 403 and resp.error()["details"][0]["reason"] == "CONSUMER_INVALID"

        fake.push(Reply.text("ignored"))  # a generate reply means nothing here: the default vectors
        resp = await c.post(path, body, KEY)
        assert resp.json() == {"embeddings": [{"values": embedding_values(GEMINI, "x")}]}
        assert fake.pending_replies == 0

        fake.push(Reply.unavailable(), model="gemini-2.5-pro")  # for another model: left queued
        assert (await c.post(path, body, KEY)).status == 200
        assert fake.pending_replies == 1
        fake.push(Reply.rate_limited(), model=GEMINI)
        bad = {"requests": [{"content": content("x")}]}
        assert (await c.post(path, bad, KEY)).status == 400  # refused before any reply is taken
        assert fake.pending_replies == 2

    run_with(fake, scenario)


def test_scripted_error_on_vertex_predict_and_first_byte_delay() -> None:
    fake = new_fake(first_byte_delay=0.05)

    async def scenario(c: Client) -> None:
        bearer = await c.bearer()
        fake.push(Reply.rate_limited(), model=TEXT_MODEL)
        body = {"instances": [{"content": "x"}]}
        started = time.monotonic()
        resp = await c.post(vertex(TEXT_MODEL, "predict"), body, bearer)
        assert resp.status == 429 and resp.error()["status"] == "RESOURCE_EXHAUSTED"
        assert time.monotonic() - started >= 0.05
        assert (await c.post(vertex(TEXT_MODEL, "predict"), body, bearer)).status == 200

    run_with(fake, scenario)


# -- Vertex AI ---------------------------------------------------------------------------------------------


def test_vertex_batch_embed_contents_with_usage() -> None:
    fake = new_fake()
    requests = [
        {"content": content("one two three")},
        {"content": content("four"), "embedContentConfig": {"taskType": "CLUSTERING", "title": "t"}},
        {"content": content("five six"), "embedContentConfig": {"outputDimensionality": 128}},
        {"content": content("seven"), "embedContentConfig": {"autoTruncate": False}},
    ]

    async def scenario(c: Client) -> None:
        resp = await c.post(vertex(GEMINI, "batchEmbedContents"), {"requests": requests}, await c.bearer())
        assert resp.status == 200, resp.raw
        body = resp.json()
        assert list(body) == ["embeddings", "usageMetadata"]
        assert body["usageMetadata"] == {"promptTokenCount": 7, "totalTokenCount": 7}
        first, second, third, fourth = (e["values"] for e in body["embeddings"])
        assert first == embedding_values(GEMINI, "one two three")
        assert second == embedding_values(GEMINI, "four", "CLUSTERING")
        assert len(third) == 128 and third == embedding_values(GEMINI, "five six", dimensions=128)
        assert len(fourth) == 3072
        assert_unit(first)
        call = fake.received[-1]
        assert (call.api, call.action, call.model) == ("vertex", "batchEmbedContents", GEMINI)

    run_with(fake, scenario)


def test_vertex_embed_content_in_express_mode_matches_aistudio_vectors() -> None:
    fake = new_fake()

    async def scenario(c: Client) -> None:
        body = {"content": content("same text"), "embedContentConfig": {"taskType": "RETRIEVAL_QUERY"}}
        resp = await c.post(express(GEMINI, "embedContent"), body, KEY)
        assert resp.status == 200, resp.raw
        reply = resp.json()
        assert list(reply) == ["embedding", "usageMetadata"]
        assert reply["usageMetadata"] == {"promptTokenCount": 2, "totalTokenCount": 2}
        studio_body = {"content": content("same text"), "taskType": "RETRIEVAL_QUERY"}
        other = await c.post(studio(GEMINI, "embedContent"), studio_body, KEY)
        assert reply["embedding"] == other.json()["embedding"]
        assert fake.received[0].path == f"/v1/publishers/google/models/{GEMINI}:embedContent"
        assert fake.received[0].api == "vertex"

    run_with(fake, scenario)


def test_vertex_predict_for_text_embedding_models() -> None:
    fake = new_fake()

    async def scenario(c: Client) -> None:
        bearer = await c.bearer()
        body = {
            "instances": [
                {"content": "Hello there world", "task_type": "RETRIEVAL_DOCUMENT", "title": "greeting"},
                {"content": " a  b "},
            ]
        }
        resp = await c.post(vertex(TEXT_MODEL, "predict"), body, bearer)
        assert resp.status == 200, resp.raw
        reply = resp.json()
        assert list(reply) == ["predictions", "metadata"]
        assert reply["metadata"] == {"billableCharacterCount": 17}  # whitespace is not billed
        first, second = (p["embeddings"] for p in reply["predictions"])
        assert set(first) == {"values", "statistics"}
        assert first["statistics"] == {"truncated": False, "token_count": 3}
        assert second["statistics"] == {"truncated": False, "token_count": 2}
        assert first["values"] == embedding_values(TEXT_MODEL, "Hello there world", "RETRIEVAL_DOCUMENT")
        assert len(second["values"]) == 768
        assert_unit(second["values"])

        sized = {
            "instances": [{"content": "x"}],
            "parameters": {"outputDimensionality": 64, "autoTruncate": True},
        }
        resp = await c.post(vertex("text-multilingual-embedding-002", "predict"), sized, bearer)
        assert resp.status == 200, resp.raw
        values = resp.json()["predictions"][0]["embeddings"]["values"]
        assert values == embedding_values("text-multilingual-embedding-002", "x", dimensions=64)

        resp = await c.post(express("text-embedding-004", "predict"), {"instances": [{"content": "x"}]}, KEY)
        assert resp.status == 200 and len(resp.json()["predictions"][0]["embeddings"]["values"]) == 768

        one = {"instances": [{"content": "solo"}]}
        resp = await c.post(vertex(GEMINI, "predict"), one, bearer)
        assert resp.status == 200, resp.raw
        assert resp.json()["predictions"][0]["embeddings"]["values"] == embedding_values(GEMINI, "solo")

    run_with(fake, scenario)


def test_vertex_predict_limits() -> None:
    fake = new_fake()

    async def scenario(c: Client) -> None:
        bearer = await c.bearer()
        many = {"instances": [{"content": f"t{i}"} for i in range(250)]}
        resp = await c.post(vertex(TEXT_MODEL, "predict"), many, bearer)
        assert resp.status == 200 and len(resp.json()["predictions"]) == 250
        many["instances"].append({"content": "one more"})
        resp = await c.post(vertex(TEXT_MODEL, "predict"), many, bearer)
        assert resp.status == 400 and resp.error()["status"] == "INVALID_ARGUMENT"
        assert "at most 250 instances" in resp.error()["message"]
        two = {"instances": [{"content": "a"}, {"content": "b"}]}
        resp = await c.post(vertex(GEMINI, "predict"), two, bearer)
        assert resp.status == 400 and "at most 1 instance per request" in resp.error()["message"]

    run_with(fake, scenario)


def test_vertex_batch_limit_is_100_requests() -> None:
    fake = new_fake()

    async def scenario(c: Client) -> None:
        bearer = await c.bearer()
        body = {"requests": [{"content": content(f"t{i}")} for i in range(100)]}
        resp = await c.post(vertex(GEMINI, "batchEmbedContents"), body, bearer)
        assert resp.status == 200 and len(resp.json()["embeddings"]) == 100
        body["requests"].append({"content": content("one more")})
        resp = await c.post(vertex(GEMINI, "batchEmbedContents"), body, bearer)
        assert resp.status == 400
        assert "at most 100 requests can be in one batch" in resp.error()["message"]

    run_with(fake, scenario)


_VERTEX_BAD: list[tuple[str, str, Any, str, str]] = [
    (
        TEXT_MODEL,
        "batchEmbedContents",
        {"requests": [{"content": content("x")}]},
        "INVALID_ARGUMENT",
        "predict",
    ),
    (TEXT_MODEL, "embedContent", {"content": content("x")}, "INVALID_ARGUMENT", "does not support"),
    ("gemini-2.5-flash", "embedContent", {"content": content("x")}, "INVALID_ARGUMENT", "does not support"),
    (
        "gemini-2.5-flash",
        "predict",
        {"instances": [{"content": "x"}]},
        "FAILED_PRECONDITION",
        "Predict/RawPredict",
    ),
    (GEMINI, "batchEmbedContents", {"requests": []}, "INVALID_ARGUMENT", "requests must not be empty"),
    (
        GEMINI,
        "batchEmbedContents",
        {"requests": [{"content": content("x"), "embedContentConfig": {"taskType": "X"}}]},
        "INVALID_ARGUMENT",
        "Invalid value at 'requests[0].embed_content_config.task_type'",
    ),
    (
        GEMINI,
        "embedContent",
        {"content": content("x"), "embedContentConfig": {"outputDimensionality": 4096}},
        "INVALID_ARGUMENT",
        "embed_content_config.output_dimensionality: output_dimensionality must be in the range [1, 3072]",
    ),
    (
        GEMINI,
        "embedContent",
        {"content": content("x"), "embedContentConfig": {"dims": 4}},
        "INVALID_ARGUMENT",
        "Unknown name \"dims\" at 'embed_content_config'",
    ),
    (
        GEMINI,
        "embedContent",
        {"content": content("x"), "embedContentConfig": {"autoTruncate": "yes"}},
        "INVALID_ARGUMENT",
        "(TYPE_BOOL)",
    ),
    (
        GEMINI,
        "embedContent",
        {"content": {"parts": []}},
        "INVALID_ARGUMENT",
        "content.parts must not be empty",
    ),
    (TEXT_MODEL, "predict", {"instances": []}, "INVALID_ARGUMENT", "no instances"),
    (TEXT_MODEL, "predict", {}, "INVALID_ARGUMENT", "no instances"),
    (TEXT_MODEL, "predict", {"instances": {"content": "x"}}, "INVALID_ARGUMENT", "instances must be a list"),
    (TEXT_MODEL, "predict", {"instances": [{"text": "x"}]}, "INVALID_ARGUMENT", "unsupported field 'text'"),
    (TEXT_MODEL, "predict", {"instances": [{"content": 5}]}, "INVALID_ARGUMENT", "content must be a string"),
    (
        TEXT_MODEL,
        "predict",
        {"instances": [{"content": "x", "taskType": "RETRIEVAL_QUERY"}]},
        "INVALID_ARGUMENT",
        "unsupported field 'taskType'",
    ),
    (
        TEXT_MODEL,
        "predict",
        {"instances": [{"content": "x", "task_type": "SEARCH"}]},
        "INVALID_ARGUMENT",
        'task_type "SEARCH" is not supported',
    ),
    (
        TEXT_MODEL,
        "predict",
        {"instances": [{"content": "x"}], "parameters": {"outputDimensionality": 769}},
        "INVALID_ARGUMENT",
        "must be an integer in [1, 768]",
    ),
    (
        TEXT_MODEL,
        "predict",
        {"instances": [{"content": "x"}], "parameters": {"output_dimensionality": 64}},
        "INVALID_ARGUMENT",
        "parameter 'output_dimensionality' is not supported",
    ),
    (
        TEXT_MODEL,
        "predict",
        {"instances": [{"content": "x"}], "extra": {}},
        "INVALID_ARGUMENT",
        'Unknown name "extra"',
    ),
]


@pytest.mark.parametrize(("model", "method", "body", "status", "expected"), _VERTEX_BAD)
def test_vertex_refuses_what_google_refuses(
    model: str, method: str, body: Any, status: str, expected: str
) -> None:
    fake = new_fake()

    async def scenario(c: Client) -> None:
        resp = await c.post(vertex(model, method), body, await c.bearer())
        assert resp.status == 400, resp.raw
        error = resp.error()
        assert error["status"] == status and expected in error["message"], error
        assert (fake.received[-1].action, fake.received[-1].model) == (method, model)

    run_with(fake, scenario)


def test_vertex_unknown_models_and_generate_on_an_embedder() -> None:
    fake = new_fake()
    fake.missing_models.add(TEXT_MODEL)

    async def scenario(c: Client) -> None:
        bearer = await c.bearer()
        for model, method, body in (
            (TEXT_MODEL, "predict", {"instances": [{"content": "x"}]}),
            ("claude-embedder", "predict", {"instances": [{"content": "x"}]}),
            ("claude-embedder", "batchEmbedContents", {"requests": [{"content": content("x")}]}),
        ):
            resp = await c.post(vertex(model, method), body, bearer)
            assert resp.status == 404, (model, method)
            name = f"projects/{PROJECT}/locations/us-central1/publishers/google/models/{model}"
            assert resp.error()["message"].startswith(f"Publisher Model `{name}` was not found")
        hello = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        resp = await c.post(vertex(GEMINI, "generateContent"), hello, bearer)
        assert resp.status == 400 and "does not support the generateContent method" in resp.error()["message"]

    run_with(fake, scenario)


def test_vertex_embedding_auth_failures() -> None:
    fake = new_fake(api_keys={"test-key"})
    body = {"instances": [{"content": "x"}]}

    async def scenario(c: Client) -> None:
        assert (await c.post(vertex(TEXT_MODEL, "predict"), body)).status == 401
        resp = await c.post(vertex(TEXT_MODEL, "predict"), body, {"Authorization": "Bearer nope"})
        assert resp.status == 401 and resp.error()["status"] == "UNAUTHENTICATED"
        resp = await c.post(vertex(TEXT_MODEL, "predict", project="someone-else"), body, await c.bearer())
        assert resp.status == 403 and resp.error()["details"][0]["reason"] == "IAM_PERMISSION_DENIED"
        assert (await c.post(express(GEMINI, "embedContent"), {"content": content("x")})).status == 401
        resp = await c.post(
            express(GEMINI, "embedContent"), {"content": content("x")}, {"x-goog-api-key": "k"}
        )
        assert resp.status == 400 and resp.error()["details"][0]["reason"] == "API_KEY_INVALID"
        resp = await c.post(vertex(TEXT_MODEL, "rawPredict"), body, await c.bearer())
        assert resp.status == 404 and resp.error()["message"] == "Method not found."

    run_with(fake, scenario)


def test_code_assist_has_no_embedding_method() -> None:
    fake = new_fake()

    async def scenario(c: Client) -> None:
        for method in ("embedContent", "batchEmbedContents"):
            resp = await c.post(f"/v1internal:{method}", {"model": GEMINI, "request": {}})
            assert resp.status == 404 and resp.raw.startswith(b"<!DOCTYPE html>")
        assert {r.api for r in fake.received} == {"other"}

    run_with(fake, scenario)
