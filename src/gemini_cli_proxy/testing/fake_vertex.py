"""The fake's Vertex AI side: service accounts, the JWT-bearer token exchange, and Vertex's reply shapes.

Google's token endpoint takes `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>` and
verifies the RS256 assertion against the service account's public key; so does this fake (with
`cryptography`), along with `iss` (a registered account), `aud` (the URL the assertion was sent to) and
the one-hour limit on `iat`..`exp`. Anything wrong is Google's 400 `invalid_grant`. The access tokens it
issues are accepted by the Vertex routes for the account's own project only.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gemini_cli_proxy.testing.fake_errors import ERROR_INFO, error_body

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# Google's wording for each way an assertion can be wrong.
BAD_SIGNATURE = "Invalid JWT Signature."
UNKNOWN_ACCOUNT = "Invalid grant: account not found"
BAD_TIMES = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your "
    "iat and exp values in the JWT claim."
)
MAX_ASSERTION_SECONDS = 3600
CLOCK_SKEW_SECONDS = 300  # how far in the future an `iat` may be, as clocks differ


@dataclass(frozen=True, slots=True)
class _ServiceAccount:
    client_email: str
    public_key: rsa.RSAPublicKey
    project_id: str
    token_expires_in: int


@dataclass(frozen=True, slots=True)
class _Token:
    client_email: str
    scopes: frozenset[str]
    expires: float  # time.monotonic()


@dataclass(slots=True)
class _State:
    accounts: dict[str, _ServiceAccount] = field(default_factory=dict)
    tokens: dict[str, _Token] = field(default_factory=dict)


class VertexAccounts:
    """Registered service accounts and the access tokens issued to them; thread-safe like FakeGoogle."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _State()

    def add(
        self, client_email: str, public_key_pem: bytes, *, project_id: str, token_expires_in: int
    ) -> None:
        key = serialization.load_pem_public_key(public_key_pem)
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("a service account's key must be RSA (Google signs RS256)")
        with self._lock:
            self._state.accounts[client_email] = _ServiceAccount(
                client_email, key, project_id, token_expires_in
            )

    def reset(self) -> None:
        with self._lock:
            self._state = _State()

    def expire_tokens(self) -> None:
        with self._lock:
            self._state.tokens.clear()

    def exchange(self, fields: Mapping[str, str], audience: str) -> tuple[int, dict[str, Any]]:
        """Google's /token for the jwt-bearer grant: (status, body). `audience` is the URL it was sent to."""
        assertion = fields.get("assertion")
        if not assertion:
            return 400, _oauth_error("invalid_request", "Missing required parameter: assertion")
        parsed = _parse_jwt(assertion)
        if parsed is None:
            return 400, _oauth_error("invalid_grant", BAD_SIGNATURE)
        header, claims, signing_input, signature = parsed
        with self._lock:
            account = self._state.accounts.get(str(claims.get("iss")))
        if account is None:
            return 400, _oauth_error("invalid_grant", UNKNOWN_ACCOUNT)
        try:
            if header.get("alg") != "RS256":
                raise InvalidSignature
            account.public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return 400, _oauth_error("invalid_grant", BAD_SIGNATURE)
        if claims.get("aud") != audience:
            message = f"Invalid JWT: Failed audience check. The right audience is {audience}"
            return 400, _oauth_error("invalid_grant", message)
        issued, expires, now = claims.get("iat"), claims.get("exp"), time.time()
        if not isinstance(issued, int) or not isinstance(expires, int):
            return 400, _oauth_error("invalid_grant", BAD_TIMES)
        if expires <= now or expires - issued > MAX_ASSERTION_SECONDS or issued > now + CLOCK_SKEW_SECONDS:
            return 400, _oauth_error("invalid_grant", BAD_TIMES)
        scopes = frozenset(str(claims.get("scope") or "").split())
        if not scopes:
            return 400, _oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        # Google's service-account tokens start "ya29.c."; the padding mimics their length.
        token = "ya29.c.fake-" + secrets.token_urlsafe(32)
        with self._lock:
            expiry = time.monotonic() + account.token_expires_in
            self._state.tokens[token] = _Token(account.client_email, scopes, expiry)
        body = {"access_token": token, "expires_in": account.token_expires_in, "token_type": "Bearer"}
        return 200, body

    def check_token(
        self, authorization: str | None, project: str, resource: str
    ) -> tuple[int, dict[str, Any]] | None:
        """None if the bearer token may call `resource` (a publisher model in `project`), else the
        (status, error body)."""
        scheme, _, token = (authorization or "").partition(" ")
        with self._lock:
            entry = self._state.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            account = self._state.accounts.get(entry.client_email) if entry else None
        if entry is None or account is None or entry.expires <= time.monotonic():
            return 401, {}  # the routes answer their usual UNAUTHENTICATED
        if CLOUD_PLATFORM_SCOPE not in entry.scopes:
            return 403, error_body(
                403,
                "Request had insufficient authentication scopes.",
                "PERMISSION_DENIED",
                [_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT", {"service": "aiplatform.googleapis.com"})],
            )
        if account.project_id != project:
            return 403, project_denied_body(resource)
        return None


def project_denied_body(resource: str) -> dict[str, Any]:
    """Vertex's 403 when a service account calls a project it has no role in."""
    permission = "aiplatform.endpoints.predict"
    message = (
        f"Permission '{permission}' denied on resource '//aiplatform.googleapis.com/{resource}' "
        "(or it may not exist)."
    )
    metadata = {"permission": permission, "resource": resource}
    return error_body(403, message, "PERMISSION_DENIED", [_info("IAM_PERMISSION_DENIED", metadata)])


def vertex_model_not_found_body(name: str) -> dict[str, Any]:
    """Vertex's 404 for a model it does not serve; `name` is the path's publisher model."""
    message = (
        f"Publisher Model `{name}` was not found or your project does not have access to it. Please ensure "
        "you are using a valid model version. For more information, see: "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions"
    )
    return error_body(404, message, "NOT_FOUND")


def vertex_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Vertex's spelling of the fake's generated replies (vertex-stream-sse-flex-1.json): proto3 JSON drops
    a zero candidate index, and each event has `createTime` and `usageMetadata.trafficType`."""
    created = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    for event in events:
        for candidate in event.get("candidates") or ():
            if candidate.get("index") == 0:
                del candidate["index"]
        usage = event.get("usageMetadata")
        if isinstance(usage, dict):
            usage.setdefault("trafficType", "ON_DEMAND")
        event["createTime"] = created
    return events


def _parse_jwt(assertion: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes] | None:
    segments = assertion.split(".")
    if len(segments) != 3:
        return None
    try:
        header, claims = (orjson.loads(_unpadded_b64(s)) for s in segments[:2])
        signature = _unpadded_b64(segments[2])
    except (ValueError, binascii.Error):  # orjson.JSONDecodeError is a ValueError
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return header, claims, f"{segments[0]}.{segments[1]}".encode(), signature


def _unpadded_b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _info(reason: str, metadata: Mapping[str, str]) -> dict[str, Any]:
    return {
        "@type": ERROR_INFO,
        "reason": reason,
        "domain": "aiplatform.googleapis.com",
        "metadata": metadata,
    }


def _oauth_error(error: str, description: str) -> dict[str, Any]:
    return {"error": error, "error_description": description}
