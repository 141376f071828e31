"""No secret of the pool's reaches a client or a log, whatever Google quotes back: every credential
kind through every error path, with secrets shaped like no known pattern, so that only scrubbing by
the credential's own secrets can catch them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gemini_cli_proxy.testing import FakeGoogle, Reply
from gemini_cli_proxy.testing import fake_misbehaving as misbehaving

from conftest import FakeServer, Proxy, StartProxy

MODEL = "gemini-2.5-flash"
CHAT: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}
STUDIO_KEY = "studio-key-quoted-back-0001"
EXPRESS_KEY = "express-key-quoted-back-0002"
REFRESH = "refresh-token-quoted-back-0003"
EMAIL = "quoted@proj-secrets.iam.gserviceaccount.com"
PROJECT = "proj-secrets"


@dataclass
class Setup:
    proxy: Proxy
    fixed: tuple[str, ...]  # secrets known before any call

    def secrets(self, fake: FakeGoogle) -> list[str]:
        """Every secret now in use: the fixed ones and the bearer token the proxy last sent."""
        tokens = [r.bearer_token for r in fake.generate_requests() if r.bearer_token]
        return [*self.fixed, *tokens]


def _aistudio(start: StartProxy, fake: FakeGoogle, server: FakeServer, tmp: Path) -> Setup:
    return Setup(start(gemini_api_keys=[STUDIO_KEY]), (STUDIO_KEY,))


def _vertex_express(start: StartProxy, fake: FakeGoogle, server: FakeServer, tmp: Path) -> Setup:
    proxy = start(gemini_api_keys=[], vertex_api_keys=[EXPRESS_KEY], vertex_api_base_url=server.url)
    return Setup(proxy, (EXPRESS_KEY,))


def _codeassist(start: StartProxy, fake: FakeGoogle, server: FakeServer, tmp: Path) -> Setup:
    fake.add_oauth_account(REFRESH, project_id=PROJECT)
    path = tmp / "oauth_creds.json"
    path.write_text(orjson.dumps({"refresh_token": REFRESH, "access_token": "", "expiry_date": 0}).decode())
    return Setup(start(gemini_api_keys=[], gemini_oauth_creds=[str(path)]), (REFRESH,))


def _vertex_service_account(start: StartProxy, fake: FakeGoogle, server: FakeServer, tmp: Path) -> Setup:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fake.add_service_account(EMAIL, public, project_id=PROJECT)
    path = tmp / "service-account.json"
    data = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0123456789abcdef",
        "private_key": private,
        "client_email": EMAIL,
        "token_uri": f"{server.url}/token",
    }
    path.write_text(orjson.dumps(data).decode())
    proxy = start(gemini_api_keys=[], vertex_credentials=[str(path)], vertex_api_base_url=server.url)
    return Setup(proxy, ())


KINDS: dict[str, Callable[[StartProxy, FakeGoogle, FakeServer, Path], Setup]] = {
    "aistudio": _aistudio,
    "vertex-express": _vertex_express,
    "codeassist": _codeassist,
    "vertex-service-account": _vertex_service_account,
}


def _quote(secrets: list[str]) -> str:
    return "Your credentials " + ", ".join(f"'{s}'" for s in secrets) + " are not valid here."


# Each path: (the reply that quotes the secrets, whether the client streams).
PATHS: dict[str, tuple[Callable[[str], Reply], bool]] = {
    "json error": (lambda text: Reply.error(400, text, "INVALID_ARGUMENT"), False),
    "rate limit": (
        lambda text: Reply.error(429, text, "RESOURCE_EXHAUSTED", details=[{"@type": "x.RetryInfo"}]),
        False,
    ),
    "server error page": (lambda text: Reply.raw(500, f"<html>{text}</html>".encode()), False),
    "json error on a stream": (lambda text: Reply.error(400, text, "INVALID_ARGUMENT"), True),
    "error event first": (lambda text: misbehaving.events(misbehaving.error_object(text, code=500)), True),
    "error event later": (
        lambda text: misbehaving.events(misbehaving.text_event("Hi"), misbehaving.error_object(text)),
        True,
    ),
    "error event with a word for a code": (
        lambda text: misbehaving.events(misbehaving.error_object(text, code="bad")),
        True,
    ),
    "wrong shape": (lambda text: misbehaving.json_reply({"candidates": text}), False),
}


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_secret_reaches_a_response_or_a_log(
    kind: str,
    path: str,
    start_proxy: StartProxy,
    fake: FakeGoogle,
    fake_server: FakeServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    setup = KINDS[kind](start_proxy, fake, fake_server, tmp_path)
    url = f"{setup.proxy.url}/v1/chat/completions"
    # A first call that works, so that token-based kinds hold a token Google can quote.
    assert httpx.post(url, json=CHAT, timeout=30).status_code == 200
    secrets = setup.secrets(fake)
    assert secrets, "every kind has a secret to leak"
    reply, stream = PATHS[path]
    fake.push(reply(_quote(secrets)))
    response = httpx.post(url, json={**CHAT, "stream": stream}, timeout=30)
    assert response.status_code >= 400 or "error" in response.text, response.text
    seen = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    for secret in secrets:
        assert secret not in seen, f"{kind}/{path}: a secret reached the client: {response.text}"
        assert secret not in logged, f"{kind}/{path}: a secret reached the log"
        # The label may show the last 4 characters, never more.
        assert secret[:-4] not in seen and secret[:-4] not in logged
