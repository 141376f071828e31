"""Tests for the fake's Vertex AI side: the JWT-bearer token exchange and the Vertex routes.

The assertions are signed with google-auth, as the proxy signs them, or forged by hand to break one
claim at a time. Each test runs its own fake on 127.0.0.1:0 inside `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from functools import cache
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt

from gemini_cli_proxy.testing import FakeGoogle, Reply, serve_fake

MODEL = "gemini-2.5-flash"
EMAIL = "proxy-sa@proj-a.iam.gserviceaccount.com"
PROJECT = "proj-a"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
HELLO = {"contents": [{"role": "user", "parts": [{"text": "hello there friend"}]}]}
BAD_SIGNATURE = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
SSE_FRAME = re.compile(rb"^(data: \{[^\r\n]*\}\r\n\r\n)+$")

Scenario = Callable[[aiohttp.ClientSession, str], Awaitable[None]]


@cache
def private_key(name: str) -> rsa.RSAPrivateKey:
    """One throwaway RSA key per name, made once per test run."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(name: str) -> str:
    return (
        private_key(name)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def public_pem(name: str) -> bytes:
    return (
        private_key(name)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def assertion(audience: str, *, key: str = "good", **claims: Any) -> str:
    """A JWT-bearer assertion signed by `key`, with any claim replaced (None drops it)."""
    now = int(time.time())
    payload = {"iss": EMAIL, "scope": SCOPE, "aud": audience, "iat": now, "exp": now + 3600, **claims}
    signer = crypt.RSASigner.from_string(private_pem(key), "key-id-0001")
    token: bytes = jwt.encode(signer, {k: v for k, v in payload.items() if v is not None})
    return token.decode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@contextlib.asynccontextmanager
async def running(fake: FakeGoogle) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    runner, port = await serve_fake(fake, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(base_url=url) as session:
            yield session, url
    finally:
        await runner.cleanup()


def run_with(fake: FakeGoogle, scenario: Scenario) -> None:
    async def main() -> None:
        async with running(fake) as (session, url):
            await scenario(session, url)

    asyncio.run(main())


async def post(
    session: aiohttp.ClientSession,
    path: str,
    *,
    body: Any = None,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, bytes]:
    data: Any = form if form is not None else json.dumps(body).encode()
    async with session.post(path, data=data, headers=dict(headers or {})) as response:
        return response.status, await response.read()


async def exchange(session: aiohttp.ClientSession, signed: str) -> tuple[int, Any]:
    status, raw = await post(session, "/token", form={"grant_type": JWT_BEARER, "assertion": signed})
    return status, json.loads(raw)


def vertex_path(project: str = PROJECT, location: str = "global", method: str = "generateContent") -> str:
    return f"/v1/projects/{project}/locations/{location}/publishers/google/models/{MODEL}:{method}"


def registered_fake(**kwargs: Any) -> FakeGoogle:
    fake = FakeGoogle()
    fake.add_service_account(EMAIL, public_pem("good"), project_id=PROJECT, **kwargs)
    return fake


# -- the token endpoint ----------------------------------------------------------------------------------


def test_a_valid_assertion_gets_a_token_that_vertex_accepts() -> None:
    fake = registered_fake()

    async def scenario(s: aiohttp.ClientSession, url: str) -> None:
        status, token = await exchange(s, assertion(f"{url}/token"))
        assert status == 200, token
        assert set(token) == {"access_token", "expires_in", "token_type"}
        assert token["access_token"].startswith("ya29.c.") and token["expires_in"] == 3599
        assert token["token_type"] == "Bearer"
        bearer = {"Authorization": f"Bearer {token['access_token']}"}

        status, raw = await post(s, vertex_path(), body=HELLO, headers=bearer)
        assert status == 200, raw
        reply = json.loads(raw)
        (candidate,) = reply["candidates"]
        assert "index" not in candidate  # proto3 JSON drops a zero index, as Vertex's captures show
        assert candidate["content"]["parts"] == [{"text": "Echo: hello there friend"}]
        assert reply["usageMetadata"]["trafficType"] == "ON_DEMAND"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", reply["createTime"])

        status, raw = await post(
            s, vertex_path(method="streamGenerateContent") + "?alt=sse", body=HELLO, headers=bearer
        )
        assert status == 200 and SSE_FRAME.match(raw), raw[:200]
        events = [json.loads(frame[6:]) for frame in raw.split(b"\r\n\r\n") if frame]
        assert len(events) == 3 and events[-1]["candidates"][0]["finishReason"] == "STOP"
        assert len({e["createTime"] for e in events}) == 1

        assert fake.token_requests == 1
        token_call, generate, stream = fake.received
        assert token_call.api == "oauth" and token_call.body["grant_type"] == JWT_BEARER
        assert (generate.api, generate.model, generate.action) == ("vertex", MODEL, "generateContent")
        assert generate.request == HELLO and generate.bearer_token == token["access_token"]
        assert stream.stream and stream.query == {"alt": "sse"}
        assert fake.generate_requests() == [generate, stream]

    run_with(fake, scenario)


def test_assertion_signed_by_another_key_is_refused() -> None:
    fake = registered_fake()

    async def scenario(s: aiohttp.ClientSession, url: str) -> None:
        assert await exchange(s, assertion(f"{url}/token", key="other")) == (400, BAD_SIGNATURE)
        # A valid signature over different claims: the signature no longer matches.
        header, _, signature = assertion(f"{url}/token").split(".")
        forged = b64(json.dumps({"iss": EMAIL, "aud": f"{url}/token", "exp": 1}).encode())
        assert await exchange(s, f"{header}.{forged}.{signature}") == (400, BAD_SIGNATURE)
        # alg "none" with no signature at all.
        none = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        _, claims, _ = assertion(f"{url}/token").split(".")
        assert await exchange(s, f"{none}.{claims}.") == (400, BAD_SIGNATURE)
        assert await exchange(s, "not-a-jwt") == (400, BAD_SIGNATURE)
        assert fake.token_requests == 4

    run_with(fake, scenario)


def test_wrong_audience_is_refused() -> None:
    fake = registered_fake()

    async def scenario(s: aiohttp.ClientSession, url: str) -> None:
        for audience in ("https://oauth2.example.invalid/token", f"{url}/other", None):
            status, body = await exchange(s, assertion(f"{url}/token", aud=audience))
            assert status == 400 and body["error"] == "invalid_grant"
            assert body["error_description"].startswith("Invalid JWT: Failed audience check.")
            assert f"{url}/token" in body["error_description"]

    run_with(fake, scenario)


def test_expired_or_too_long_assertions_are_refused() -> None:
    fake = registered_fake()
    now = int(time.time())

    async def scenario(s: aiohttp.ClientSession, url: str) -> None:
        cases = [
            {"iat": now - 7200, "exp": now - 3600},  # expired
            {"iat": now, "exp": now + 3601},  # longer than an hour
            {"iat": now + 3600, "exp": now + 3700},  # issued in the future
            {"iat": None},
            {"exp": str(now + 60)},
        ]
        for claims in cases:
            status, body = await exchange(s, assertion(f"{url}/token", **claims))
            assert status == 400 and body["error"] == "invalid_grant", claims
            assert "Check your iat and exp values" in body["error_description"]
        status, body = await exchange(s, assertion(f"{url}/token", iat=now - 60, exp=now + 3540))
        assert status == 200, body

    run_with(fake, scenario)


def test_unknown_issuer_missing_assertion_and_missing_scope() -> None:
    fake = registered_fake()

    async def scenario(s: aiohttp.ClientSession, url: str) -> None:
        status, body = await exchange(
            s, assertion(f"{url}/token", iss="stranger@proj.iam.gserviceaccount.com")
        )
        assert status == 400 and body == {
            "error": "invalid_grant",
            "error_description": "Invalid grant: account not found",
        }
        status, raw = await post(s, "/token", form={"grant_type": JWT_BEARER})
        assert status == 400 and json.loads(raw)["error"] == "invalid_request"
        status, body = await exchange(s, assertion(f"{url}/token", scope=None))
        assert status == 400 and body["error"] == "invalid_scope"
        assert fake.token_requests == 3

    run_with(fake, scenario)


# -- the Vertex routes -----------------------------------------------------------------------------------


def test_tokens_work_only_for_their_own_project_and_until_expired() -> None:
    fake = registered_fake()

    async def scenario(s: aiohttp.ClientSession, url: str) -> None:
        _, token = await exchange(s, assertion(f"{url}/token"))
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        status, raw = await post(s, vertex_path(project="someone-else"), body=HELLO, headers=bearer)
        error = json.loads(raw)["error"]
        assert status == 403 and error["status"] == "PERMISSION_DENIED"
        assert error["details"][0]["reason"] == "IAM_PERMISSION_DENIED"
        assert "projects/someone-else/locations/global" in error["message"]
        status, _ = await post(s, vertex_path(location="europe-west4"), body=HELLO, headers=bearer)
        assert status == 200
        assert (await post(s, vertex_path(), body=HELLO))[0] == 401
        assert (await post(s, vertex_path(), body=HELLO, headers={"Authorization": "Bearer nope"}))[0] == 401

        _, narrow = await exchange(
            s, assertion(f"{url}/token", scope="https://www.googleapis.com/auth/drive")
        )
        status, raw = await post(
            s, vertex_path(), body=HELLO, headers={"Authorization": f"Bearer {narrow['access_token']}"}
        )
        assert status == 403 and "insufficient authentication scopes" in json.loads(raw)["error"]["message"]

        fake.expire_access_tokens()
        status, raw = await post(s, vertex_path(), body=HELLO, headers=bearer)
        assert status == 401 and json.loads(raw)["error"]["status"] == "UNAUTHENTICATED"

    run_with(fake, scenario)


def test_token_lifetime_is_configurable() -> None:
    fake = registered_fake(token_expires_in=1)

    async def scenario(s: aiohttp.ClientSession, url: str) -> None:
        _, token = await exchange(s, assertion(f"{url}/token"))
        assert token["expires_in"] == 1
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        assert (await post(s, vertex_path(), body=HELLO, headers=bearer))[0] == 200
        await asyncio.sleep(1.05)
        assert (await post(s, vertex_path(), body=HELLO, headers=bearer))[0] == 401

    run_with(fake, scenario)


def test_express_mode_takes_an_api_key_header() -> None:
    fake = FakeGoogle(api_keys={"vertex-key-1"})
    path = f"/v1/publishers/google/models/{MODEL}:generateContent"

    async def scenario(s: aiohttp.ClientSession, url: str) -> None:
        status, raw = await post(s, path, body=HELLO, headers={"x-goog-api-key": "vertex-key-1"})
        assert status == 200 and "index" not in json.loads(raw)["candidates"][0]
        assert (await post(s, path, body=HELLO))[0] == 401
        status, raw = await post(s, path, body=HELLO, headers={"x-goog-api-key": "wrong"})
        assert status == 400 and json.loads(raw)["error"]["details"][0]["reason"] == "API_KEY_INVALID"
        sent = fake.received[0]
        assert sent.api == "vertex" and sent.api_key == "vertex-key-1" and not sent.key_in_query

    run_with(fake, scenario)


def test_validation_scripted_replies_and_unknown_models_as_for_ai_studio() -> None:
    fake = FakeGoogle()
    path = f"/v1/publishers/google/models/{MODEL}:generateContent"
    key = {"x-goog-api-key": "k"}

    async def scenario(s: aiohttp.ClientSession, url: str) -> None:
        status, raw = await post(
            s, path, body={"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, headers=key
        )
        assert status == 400 and "valid role" in json.loads(raw)["error"]["message"]
        fake.push(Reply.rate_limited(retry_delay="9s"))
        status, raw = await post(s, path, body=HELLO, headers=key)
        error = json.loads(raw)["error"]
        assert status == 429 and error["details"][-1]["retryDelay"] == "9s"
        fake.push(Reply.response({"candidates": [], "promptFeedback": {"blockReason": "MODEL_ARMOR"}}))
        status, raw = await post(s, path, body=HELLO, headers=key)
        assert json.loads(raw) == {"candidates": [], "promptFeedback": {"blockReason": "MODEL_ARMOR"}}
        fake.missing_models.add(MODEL)
        status, raw = await post(s, path, body=HELLO, headers=key)
        assert status == 404
        assert (
            f"Publisher Model `publishers/google/models/{MODEL}` was not found"
            in json.loads(raw)["error"]["message"]
        )
        assert [r.api for r in fake.received] == ["vertex"] * 4

    run_with(fake, scenario)


def test_reset_forgets_service_accounts_and_their_tokens() -> None:
    fake = registered_fake()

    async def scenario(s: aiohttp.ClientSession, url: str) -> None:
        _, token = await exchange(s, assertion(f"{url}/token"))
        fake.reset()
        assert fake.token_requests == 0
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        assert (await post(s, vertex_path(), body=HELLO, headers=bearer))[0] == 401
        assert (await exchange(s, assertion(f"{url}/token")))[0] == 400

    run_with(fake, scenario)
