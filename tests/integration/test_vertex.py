"""Vertex AI credentials end to end: openai SDK -> proxy -> fake Google (token endpoint and Vertex routes).

A throwaway RSA key signs a service-account key file written to tmp_path, whose token_uri is the fake's
/token; the fake verifies the proxy's JWT assertions against the public half. Each test checks what the
client got and what the fake received: the assertion's claims, the bearer token, the URL with project and
location, the body.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gemini_cli_proxy.testing import FakeGoogle, Received, Reply

from conftest import FakeServer, Proxy, StartProxy
from support import LoopThread, assert_schema

MODEL = "gemini-2.5-flash"
EMAIL = "proxy-sa@proj-file.iam.gserviceaccount.com"
KEY_ID = "0123456789abcdef0123456789abcdef0badc0de"
PROJECT = "proj-file"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
EXPRESS_KEY = "AQ.vertex-express-key-000000000000wxyz"
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Capital of France?"},
]


# -- helpers ----------------------------------------------------------------------------------------------


@cache
def _private_key(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _private_pem(name: str = "good") -> str:
    return (
        _private_key(name)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )


def _public_pem(name: str = "good") -> bytes:
    return (
        _private_key(name)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _key_file(path: Path, token_uri: str, *, key: str = "good", email: str = EMAIL, **extra: Any) -> Path:
    """A service-account key file as the Cloud console writes it."""
    data = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": KEY_ID,
        "private_key": _private_pem(key),
        "client_email": email,
        "client_id": "104242424242424242424",
        "token_uri": token_uri,
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


def _register(fake: FakeGoogle, project: str = PROJECT, **kwargs: Any) -> None:
    fake.add_service_account(EMAIL, _public_pem(), project_id=project, **kwargs)


def _vertex_proxy(start_proxy: StartProxy, fake_server: FakeServer, *files: Path, **overrides: Any) -> Proxy:
    settings: dict[str, Any] = {
        "gemini_api_keys": [],
        "vertex_credentials": [str(f) for f in files],
        "vertex_api_base_url": fake_server.url,
    }
    settings.update(overrides)
    return start_proxy(**settings)


def _dump(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = obj.model_dump(mode="json", exclude_unset=True)
    return data


def _ask(client: openai.OpenAI, content: str = "Capital of France?") -> str | None:
    result = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}])
    return result.choices[0].message.content


def _token_calls(fake: FakeGoogle) -> list[Received]:
    return [r for r in fake.received if r.api == "oauth"]


def _jwt_part(segment: str) -> dict[str, Any]:
    part: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return part


def _error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body: dict[str, Any] = exc.response.json()["error"]
    return body


def _project_path(project: str = PROJECT, location: str = "global", method: str = "generateContent") -> str:
    return f"/v1/projects/{project}/locations/{location}/publishers/google/models/{MODEL}:{method}"


@pytest.fixture
def key_file(tmp_path: Path, fake_server: FakeServer) -> Path:
    return _key_file(tmp_path / "sa.json", f"{fake_server.url}/token")


# -- service account: minting and calls ---------------------------------------------------------------------


def test_service_account_mints_a_token_and_calls_vertex(
    start_proxy: StartProxy,
    fake_server: FakeServer,
    fake: FakeGoogle,
    key_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gemini_cli_proxy")
    _register(fake)
    proxy = _vertex_proxy(start_proxy, fake_server, key_file)
    fake.push(Reply.text("Paris.", usage={"promptTokenCount": 7, "candidatesTokenCount": 2}))

    with proxy.client() as client:
        result = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, temperature=0.2, max_tokens=50
        )

    assert_schema(_dump(result), "CreateChatCompletionResponse")
    assert result.choices[0].message.content == "Paris."
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None and result.usage.total_tokens == 9

    assert [(r.api, r.action) for r in fake.received] == [("oauth", "token"), ("vertex", "generateContent")]
    (token_call,) = _token_calls(fake)
    assert token_call.path == "/token"
    assert token_call.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert set(token_call.body) == {"grant_type", "assertion"}
    assert token_call.body["grant_type"] == JWT_BEARER
    header, claims, _ = token_call.body["assertion"].split(".")
    assert _jwt_part(header) == {"alg": "RS256", "typ": "JWT", "kid": KEY_ID}
    claims_seen = _jwt_part(claims)
    assert claims_seen["iss"] == EMAIL and claims_seen["aud"] == f"{fake_server.url}/token"
    assert claims_seen["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert claims_seen["exp"] - claims_seen["iat"] == 3600

    (sent,) = fake.generate_requests()
    assert sent.path == _project_path() and sent.query == {}
    assert sent.bearer_token is not None and sent.bearer_token.startswith("ya29.c.fake-")
    assert "x-goog-api-key" not in sent.headers
    assert sent.request["contents"] == [{"role": "user", "parts": [{"text": "Capital of France?"}]}]
    assert sent.request["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert sent.request["generationConfig"]["temperature"] == 0.2
    assert sent.request["generationConfig"]["maxOutputTokens"] == 50

    secrets = (_private_pem().splitlines()[5], sent.bearer_token, token_call.body["assertion"])
    for record in caplog.records:
        assert not any(secret in record.getMessage() for secret in secrets), record.getMessage()


def test_streamed_completion_through_a_service_account(
    start_proxy: StartProxy, fake_server: FakeServer, fake: FakeGoogle, key_file: Path
) -> None:
    _register(fake)
    proxy = _vertex_proxy(start_proxy, fake_server, key_file)
    fake.push(Reply.text("Paris is the capital of France.", chunks=3))

    with proxy.client() as client:
        chunks = list(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))

    for chunk in chunks:
        assert_schema(_dump(chunk), "CreateChatCompletionStreamResponse")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Paris is the capital of France."
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    (sent,) = fake.generate_requests()
    assert sent.path == _project_path(method="streamGenerateContent")
    assert sent.query == {"alt": "sse"} and sent.stream
    assert sent.request["systemInstruction"] == {"parts": [{"text": "You are terse."}]}


def test_recorded_vertex_stream_is_translated(
    start_proxy: StartProxy, fake_server: FakeServer, fake: FakeGoogle, key_file: Path
) -> None:
    """A real Vertex event (vertex-stream-sse-flex-1.json): no candidate index, createTime, trafficType."""
    _register(fake)
    proxy = _vertex_proxy(start_proxy, fake_server, key_file)
    event = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "OK", "thoughtSignature": "CiQBjz1rX"}]},
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 5,
            "candidatesTokenCount": 1,
            "totalTokenCount": 106,
            "trafficType": "ON_DEMAND_FLEX",
            "thoughtsTokenCount": 100,
        },
        "modelVersion": "gemini-3-flash-preview",
        "createTime": "2026-03-21T18:11:55.919086Z",
        "responseId": "a9--aa6MOKL4vdIPz7X2iQ4",
    }
    fake.push(Reply.stream([event]))

    with proxy.client() as client:
        chunks = list(
            client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
        )

    for chunk in chunks:
        assert_schema(_dump(chunk), "CreateChatCompletionStreamResponse")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "OK"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 106


def test_one_token_serves_many_requests(
    start_proxy: StartProxy, fake_server: FakeServer, fake: FakeGoogle, key_file: Path
) -> None:
    _register(fake)
    proxy = _vertex_proxy(start_proxy, fake_server, key_file)

    with proxy.client() as client:
        assert [_ask(client, f"q{i}") for i in range(4)] == [f"Echo: q{i}" for i in range(4)]

    assert fake.token_requests == 1
    assert len({r.bearer_token for r in fake.generate_requests()}) == 1


@pytest.fixture
def slow_token_url(loop_thread: LoopThread, fake_server: FakeServer) -> Iterator[str]:
    """A token endpoint that forwards to the fake's after 0.3 s, so concurrent mints would overlap.

    It passes its own Host on, so the fake checks the assertion's `aud` against this relay's URL."""

    async def relay(request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(0.3)
        headers = {"Content-Type": request.headers["Content-Type"], "Host": request.host}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{fake_server.url}/token", data=body, headers=headers) as upstream,
        ):
            return web.Response(
                status=upstream.status, body=await upstream.read(), content_type="application/json"
            )

    app = web.Application()
    app.router.add_post("/token", relay)
    runner, url = loop_thread.start_app(app)
    yield f"{url}/token"
    loop_thread.stop_app(runner)


def test_concurrent_requests_share_one_mint(
    start_proxy: StartProxy, fake_server: FakeServer, fake: FakeGoogle, tmp_path: Path, slow_token_url: str
) -> None:
    _register(fake)
    proxy = _vertex_proxy(start_proxy, fake_server, _key_file(tmp_path / "sa.json", slow_token_url))

    async def scenario() -> list[str]:
        async with proxy.async_client() as sdk:
            results = await asyncio.gather(
                *(
                    sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"q{i}"}])
                    for i in range(10)
                )
            )
        return [r.choices[0].message.content or "" for r in results]

    answers = asyncio.run(scenario())

    assert sorted(answers) == sorted(f"Echo: q{i}" for i in range(10))
    assert fake.token_requests == 1
    (token_call,) = _token_calls(fake)
    assert _jwt_part(token_call.body["assertion"].split(".")[1])["aud"] == slow_token_url
    generated = fake.generate_requests()
    assert len(generated) == 10 and len({r.bearer_token for r in generated}) == 1


def test_token_near_expiry_is_minted_again(
    start_proxy: StartProxy, fake_server: FakeServer, fake: FakeGoogle, key_file: Path
) -> None:
    # Google's tokens normally live an hour; one that lives 4 minutes is inside the 5-minute margin
    # from the moment it arrives, so each request mints a fresh one.
    _register(fake, token_expires_in=240)
    proxy = _vertex_proxy(start_proxy, fake_server, key_file)

    with proxy.client() as client:
        assert _ask(client, "one") == "Echo: one"
        assert _ask(client, "two") == "Echo: two"

    assert fake.token_requests == 2
    first, second = fake.generate_requests()
    assert first.bearer_token != second.bearer_token


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_unauthenticated_reply_mints_once_and_retries(
    start_proxy: StartProxy, fake_server: FakeServer, fake: FakeGoogle, key_file: Path, stream: bool
) -> None:
    _register(fake)
    proxy = _vertex_proxy(start_proxy, fake_server, key_file)

    with proxy.client() as client:
        assert _ask(client, "first") == "Echo: first"
        fake.expire_access_tokens()  # Google forgets the token the proxy still thinks is fresh
        if stream:
            chunks = list(
                client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "second"}], stream=True
                )
            )
            for chunk in chunks:
                assert_schema(_dump(chunk), "CreateChatCompletionStreamResponse")
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            text = _ask(client, "second") or ""
    assert text == "Echo: second"

    assert fake.token_requests == 2
    generated = fake.generate_requests()
    tokens = [r.bearer_token for r in generated]
    assert tokens[0] == tokens[1] != tokens[2]
    assert generated[1].request == generated[2].request


def test_second_unauthenticated_reply_is_not_retried_again(
    start_proxy: StartProxy, fake_server: FakeServer, fake: FakeGoogle, key_file: Path
) -> None:
    _register(fake)
    proxy = _vertex_proxy(start_proxy, fake_server, key_file)
    unauthenticated = Reply.error(401, "Request had invalid authentication credentials.", "UNAUTHENTICATED")
    fake.push_many([unauthenticated, unauthenticated])

    with proxy.client() as client, pytest.raises(openai.PermissionDeniedError) as caught:
        _ask(client)

    assert _error_of(caught.value)["code"] == "permission_denied"
    assert fake.token_requests == 2  # the first mint and one forced re-mint, no loop
    assert len(fake.generate_requests()) == 2


# -- refused credentials -----------------------------------------------------------------------------------


@pytest.mark.parametrize("problem", ["wrong key", "unregistered account"])
def test_refused_assertion_disables_the_credential(
    start_proxy: StartProxy,
    fake_server: FakeServer,
    fake: FakeGoogle,
    tmp_path: Path,
    problem: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gemini_cli_proxy")
    if problem == "wrong key":
        fake.add_service_account(EMAIL, _public_pem("rotated"), project_id=PROJECT)
    key_file = _key_file(tmp_path / "sa.json", f"{fake_server.url}/token")
    proxy = _vertex_proxy(start_proxy, fake_server, key_file)

    with proxy.client() as client:
        for _ in range(2):
            with pytest.raises(openai.InternalServerError) as caught:
                _ask(client)
            assert caught.value.status_code == 503
            error = _error_of(caught.value)
            assert error["code"] == "no_credentials" and error["type"] == "server_error"
            assert "PRIVATE KEY" not in caught.value.response.text

    assert fake.token_requests == 1  # disabled after the first refusal, never tried again
    assert fake.generate_requests() == []
    pem_line = _private_pem().splitlines()[5]
    assert all(pem_line not in record.getMessage() for record in caplog.records)
    assert any("disabled" in record.getMessage() for record in caplog.records)


def test_service_account_for_another_project_is_refused(
    start_proxy: StartProxy, fake_server: FakeServer, fake: FakeGoogle, key_file: Path
) -> None:
    _register(fake, project="the-real-project")
    proxy = _vertex_proxy(start_proxy, fake_server, key_file)

    with proxy.client() as client, pytest.raises(openai.PermissionDeniedError) as caught:
        _ask(client)

    assert caught.value.status_code == 403
    assert _error_of(caught.value)["code"] == "permission_denied"
    (sent,) = fake.generate_requests()
    assert sent.path == _project_path()


# -- express mode, locations, projects ----------------------------------------------------------------------


def test_express_key_uses_the_publisher_path_and_header(
    start_proxy: StartProxy, fake_server: FakeServer, fake: FakeGoogle
) -> None:
    proxy = start_proxy(
        gemini_api_keys=[], vertex_api_keys=[EXPRESS_KEY], vertex_api_base_url=fake_server.url
    )

    with proxy.client() as client:
        assert _ask(client, "one") == "Echo: one"
        chunks = list(
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "two"}], stream=True
            )
        )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: two"

    plain, streamed = fake.generate_requests()
    assert plain.api == streamed.api == "vertex"
    assert plain.path == f"/v1/publishers/google/models/{MODEL}:generateContent" and plain.query == {}
    assert streamed.path == f"/v1/publishers/google/models/{MODEL}:streamGenerateContent"
    assert streamed.query == {"alt": "sse"}
    for sent in (plain, streamed):
        assert sent.headers["x-goog-api-key"] == EXPRESS_KEY
        assert not sent.key_in_query and sent.bearer_token is None
    assert fake.token_requests == 0


def test_location_and_project_override_shape_the_url(
    start_proxy: StartProxy, fake_server: FakeServer, fake: FakeGoogle, key_file: Path
) -> None:
    _register(fake, project="proj-override")
    proxy = _vertex_proxy(
        start_proxy, fake_server, key_file, vertex_location="europe-west4", vertex_project_id="proj-override"
    )

    with proxy.client() as client:
        assert _ask(client) == "Echo: Capital of France?"

    (sent,) = fake.generate_requests()
    assert sent.path == _project_path(project="proj-override", location="europe-west4")


def test_google_application_credentials_is_honoured(
    start_proxy: StartProxy,
    fake_server: FakeServer,
    fake: FakeGoogle,
    key_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _register(fake)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    proxy = start_proxy(gemini_api_keys=[], vertex_api_base_url=fake_server.url)

    with proxy.client() as client:
        assert _ask(client) == "Echo: Capital of France?"

    assert fake.token_requests == 1
    assert fake.generate_requests()[0].path == _project_path()


def test_gcloud_user_credentials_are_skipped(
    start_proxy: StartProxy,
    fake_server: FakeServer,
    fake: FakeGoogle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gemini_cli_proxy")
    user = tmp_path / "application_default_credentials.json"
    user.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "764086051850-fake.apps.googleusercontent.com",
                "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty",
                "refresh_token": "1//fake-gcloud-refresh-token-000000",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(user))
    proxy = start_proxy(vertex_api_base_url=fake_server.url)  # with the default AI Studio key

    with proxy.client() as client:
        assert _ask(client) == "Echo: Capital of France?"

    assert [r.api for r in fake.received] == ["aistudio"]
    skipped = [r.getMessage() for r in caplog.records if "authorized_user" in r.getMessage()]
    assert len(skipped) == 1 and str(user) in skipped[0]
    assert "1//fake-gcloud" not in skipped[0]


def test_mixed_pool_takes_turns(
    start_proxy: StartProxy, fake_server: FakeServer, fake: FakeGoogle, key_file: Path
) -> None:
    _register(fake)
    proxy = _vertex_proxy(start_proxy, fake_server, key_file, gemini_api_keys=["aistudio-key-0001"])

    with proxy.client() as client:
        assert [_ask(client, f"q{i}") for i in range(4)] == [f"Echo: q{i}" for i in range(4)]

    apis = [r.api for r in fake.generate_requests()]
    assert sorted(apis[:2]) == ["aistudio", "vertex"] and apis[2:] == apis[:2]
    assert fake.token_requests == 1


def test_vertex_key_falls_back_to_the_backup_pool(
    start_proxy: StartProxy, fake_server: FakeServer, fake: FakeGoogle, key_file: Path
) -> None:
    _register(fake)
    fake.api_keys = {"some-other-key"}  # the express key is refused: API_KEY_INVALID
    proxy = start_proxy(
        gemini_api_keys=[],
        vertex_api_keys=[EXPRESS_KEY],
        vertex_backup_credentials=[str(key_file)],
        vertex_api_base_url=fake_server.url,
    )

    with proxy.client() as client:
        assert _ask(client, "one") == "Echo: one"
        assert _ask(client, "two") == "Echo: two"

    assert [r.bearer_token is not None for r in fake.generate_requests()] == [False, True, True]
