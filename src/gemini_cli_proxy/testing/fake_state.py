"""The fake Google's state: scripted replies, recorded requests, OAuth accounts, tokens and operations.

A test thread scripts and inspects a `FakeGoogle` while its app runs on an event loop in another thread,
so everything shared sits behind one `threading.Lock` (held only for dict/list operations, never across
an await).
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gemini_cli_proxy.testing.fake_replies import ApiName, Reply
from gemini_cli_proxy.testing.fake_vertex import VertexAccounts

GENERATE_ACTIONS = frozenset({"generateContent", "streamGenerateContent"})
OAUTH_SCOPE = (
    "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/userinfo.email "
    "https://www.googleapis.com/auth/userinfo.profile openid"
)
_ONBOARD_RESPONSE_TYPE = "type.googleapis.com/google.internal.cloud.code.v1internal.OnboardUserResponse"
_FREE_TIER: Mapping[str, Any] = MappingProxyType(
    {
        "id": "free-tier",
        "name": "Gemini Code Assist for individuals",
        "description": "Gemini Code Assist for individuals",
        "userDefinedCloudaicompanionProject": False,
    }
)
_STANDARD_TIER: Mapping[str, Any] = MappingProxyType(
    {
        "id": "standard-tier",
        "name": "Gemini Code Assist",
        "description": "Unlimited coding assistant with the most powerful Gemini models",
        "userDefinedCloudaicompanionProject": True,
    }
)


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the fake saw it; `headers` has lower-case names."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON, the form fields for /token, or None (no body or not JSON)
    api: ApiName
    model: str | None = None
    stream: bool = False
    action: str = ""  # the RPC: "generateContent", "loadCodeAssist", "token", ...
    raw_body: bytes = b""

    @property
    def request(self) -> dict[str, Any]:
        """The GenerateContentRequest: the body for AI Studio, `body["request"]` for Code Assist."""
        inner = (
            self.body.get("request")
            if self.api == "codeassist" and isinstance(self.body, dict)
            else self.body
        )
        return inner if isinstance(inner, dict) else {}

    @property
    def is_generate(self) -> bool:
        return self.api in ("aistudio", "codeassist", "vertex") and self.action in GENERATE_ACTIONS

    @property
    def key_in_query(self) -> bool:
        """True when an API key came as `?key=` (which ends up in logs; the proxy must never do it)."""
        return "key" in self.query

    @property
    def api_key(self) -> str | None:
        return self.headers.get("x-goog-api-key") or self.query.get("key")

    @property
    def bearer_token(self) -> str | None:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" and token else None


@dataclass(slots=True)
class _Account:
    refresh_token: str
    project_id: str | None
    tier_id: str | None
    onboard_polls: int
    managed_project_id: str
    revoked: bool = False


@dataclass(slots=True)
class _Operation:
    name: str
    refresh_token: str
    polls_left: int
    project_id: str
    tier_id: str
    done: bool = False


@dataclass(slots=True)
class _State:
    queue: list[tuple[str | None, Reply]] = field(default_factory=list)
    accounts: dict[str, _Account] = field(default_factory=dict)
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # access token -> (refresh, expiry)
    operations: dict[str, _Operation] = field(default_factory=dict)


class FakeGoogle:
    """Scriptable stand-in for AI Studio, Code Assist and Google's OAuth token endpoint (see fake_google)."""

    def __init__(
        self,
        *,
        api_keys: Iterable[str] | None = None,
        default_stream_chunks: int = 3,
        known_models_prefix: str = "gemini-",
        stream_delay: float = 0.0,
        first_byte_delay: float = 0.0,
        max_received: int = 10_000,
    ) -> None:
        if default_stream_chunks < 1:
            raise ValueError("default_stream_chunks must be at least 1")
        self.api_keys: frozenset[str] | None = None if api_keys is None else frozenset(api_keys)
        self.default_stream_chunks = default_stream_chunks
        self.known_models_prefix = known_models_prefix
        self.stream_delay = stream_delay
        self.first_byte_delay = first_byte_delay
        # Benchmarks send hundreds of thousands of requests; keep only the newest ones.
        self.max_received = max_received
        self.missing_models: set[str] = set()
        self.received: list[Received] = []
        self.token_requests = 0
        self.vertex = VertexAccounts()
        self._lock = threading.Lock()
        self._state = _State()

    # -- scripting -------------------------------------------------------------------------------------

    def push(self, reply: Reply, *, model: str | None = None) -> None:
        """Queue a reply for the next generate/stream call (only a call for `model`, if given)."""
        with self._lock:
            self._state.queue.append((model, reply))

    def push_many(self, replies: Iterable[Reply], *, model: str | None = None) -> None:
        with self._lock:
            self._state.queue.extend((model, reply) for reply in replies)

    @property
    def pending_replies(self) -> int:
        with self._lock:
            return len(self._state.queue)

    def add_oauth_account(
        self,
        refresh_token: str,
        *,
        project_id: str | None = None,
        onboard_polls: int = 1,
        managed_project_id: str = "fake-managed-project",
    ) -> None:
        """An OAuth account: with `project_id` a standard-tier one, else free tier and not onboarded yet."""
        tier = "standard-tier" if project_id is not None else None
        with self._lock:
            self._state.accounts[refresh_token] = _Account(
                refresh_token, project_id, tier, onboard_polls, managed_project_id
            )

    def issue_access_token(self, refresh_token: str, *, expires_in: int = 3599) -> str:
        """An access token as if `refresh_token` had just been refreshed (the account is created if new)."""
        with self._lock:
            if refresh_token not in self._state.accounts:
                self._state.accounts[refresh_token] = _Account(
                    refresh_token, None, None, 1, "fake-managed-project"
                )
            return self._issue_locked(refresh_token, expires_in)

    def expire_access_tokens(self) -> None:
        """Google forgets every access token it issued, OAuth and service account alike."""
        with self._lock:
            self._state.tokens.clear()
        self.vertex.expire_tokens()

    def add_service_account(
        self, client_email: str, public_key_pem: bytes, *, project_id: str, token_expires_in: int = 3599
    ) -> None:
        """A service account whose JWT assertions, signed by the private half of `public_key_pem`, the
        token endpoint accepts; its tokens reach Vertex in `project_id` only."""
        self.vertex.add(
            client_email, public_key_pem, project_id=project_id, token_expires_in=token_expires_in
        )

    def exchange_jwt(self, fields: Mapping[str, str], audience: str) -> tuple[int, dict[str, Any]]:
        """Google's /token for grant_type=jwt-bearer (see fake_vertex): (status, body)."""
        with self._lock:
            self.token_requests += 1
        return self.vertex.exchange(fields, audience)

    def revoke(self, refresh_token: str) -> None:
        """The token endpoint now answers invalid_grant for it (tokens already issued keep working)."""
        with self._lock:
            account = self._state.accounts.get(refresh_token)
            if account is not None:
                account.revoked = True

    def account_project(self, refresh_token: str) -> str | None:
        with self._lock:
            account = self._state.accounts.get(refresh_token)
            return None if account is None else account.project_id

    def generate_requests(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.is_generate]

    def reset(self) -> None:
        """Forget queue, requests, counters, accounts, tokens and missing models; keep the settings."""
        with self._lock:
            self._state = _State()
            self.received.clear()
            self.missing_models.clear()
            self.token_requests = 0
        self.vertex.reset()

    # -- used by the routes ------------------------------------------------------------------------------

    def record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)
            if len(self.received) > self.max_received:
                del self.received[: max(1, self.max_received // 10)]

    def take_reply(self, model: str) -> Reply | None:
        with self._lock:
            queue = self._state.queue
            for i, (wanted, reply) in enumerate(queue):
                if wanted is None or wanted == model:
                    del queue[i]
                    return reply
        return None

    def model_known(self, model: str) -> bool:
        return model.startswith(self.known_models_prefix) and model not in self.missing_models

    def key_problem(self, key: str | None) -> str | None:
        """None for an acceptable key, "missing" or "invalid" otherwise."""
        if not key:
            return "missing"
        if self.api_keys is not None and key not in self.api_keys:
            return "invalid"
        return None

    def authenticate(self, authorization: str | None) -> str | None:
        """The refresh token behind a valid `Bearer` access token, or None (answer 401)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self._lock:
            entry = self._state.tokens.get(token.strip())
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def exchange_refresh_token(
        self, fields: Mapping[str, str], authorization: str | None
    ) -> tuple[int, dict[str, Any]]:
        """Google's /token for grant_type=refresh_token: (status, body)."""
        with self._lock:
            self.token_requests += 1
        grant = fields.get("grant_type")
        if grant != "refresh_token":
            return 400, _oauth_error("invalid_request", f"Invalid grant_type: {grant or ''}")
        client_id, client_secret = fields.get("client_id"), fields.get("client_secret")
        if (not client_id or not client_secret) and authorization:
            # RFC 6749 lets a client authenticate with HTTP Basic instead of form fields; Google accepts both.
            client_id, client_secret = _basic_credentials(authorization) or (client_id, client_secret)
        for name, value in (("refresh_token", fields.get("refresh_token")), ("client_id", client_id)):
            if not value:
                return 400, _oauth_error("invalid_request", f"Missing required parameter: {name}")
        if not client_secret:
            return 400, _oauth_error("invalid_request", "client_secret is missing.")
        refresh_token = fields["refresh_token"]
        with self._lock:
            account = self._state.accounts.get(refresh_token)
            if account is None or account.revoked:
                return 400, _oauth_error("invalid_grant", "Token has been expired or revoked.")
            token = self._issue_locked(refresh_token, 3599)
        return 200, {"access_token": token, "expires_in": 3599, "scope": OAUTH_SCOPE, "token_type": "Bearer"}

    def project_of(self, refresh_token: str) -> str | None:
        return self.account_project(refresh_token)

    def load_code_assist(self, refresh_token: str) -> dict[str, Any]:
        with self._lock:
            account = self._state.accounts[refresh_token]
            project, tier_id = account.project_id, account.tier_id
        if project is None:
            return {"allowedTiers": [{**_FREE_TIER, "isDefault": True}]}
        tier = _FREE_TIER if tier_id == "free-tier" else _STANDARD_TIER
        return {
            "currentTier": dict(tier),
            "cloudaicompanionProject": project,
            "allowedTiers": [{**tier, "isDefault": True}],
        }

    def onboard(self, refresh_token: str, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Start onboarding: (status, long-running operation or error body)."""
        tier_id = body.get("tierId")
        if not isinstance(tier_id, str) or not tier_id:
            return 400, _invalid_argument("Request contains an invalid argument.")
        requested = body.get("cloudaicompanionProject")
        with self._lock:
            account = self._state.accounts[refresh_token]
            if account.project_id is not None:
                project = account.project_id
            elif tier_id == "free-tier":
                project = account.managed_project_id
            elif isinstance(requested, str) and requested:
                project = requested
            else:
                return 400, _invalid_argument("Project id is required for tier " + tier_id)
            operation = _Operation(
                "operations/" + secrets.token_hex(8), refresh_token, account.onboard_polls, project, tier_id
            )
            self._state.operations[operation.name] = operation
            if operation.polls_left <= 0:
                return 200, self._finish_locked(operation)
        return 200, {"name": operation.name, "done": False}

    def poll_operation(self, name: str) -> dict[str, Any] | None:
        """One GET of a long-running operation; done after the account's `onboard_polls`-th poll."""
        with self._lock:
            operation = self._state.operations.get(name)
            if operation is None:
                return None
            if not operation.done:
                operation.polls_left -= 1
                if operation.polls_left > 0:
                    return {"name": name, "done": False}
            return self._finish_locked(operation)

    def _finish_locked(self, operation: _Operation) -> dict[str, Any]:
        operation.done = True
        account = self._state.accounts.get(operation.refresh_token)
        if account is not None and account.project_id is None:
            account.project_id, account.tier_id = operation.project_id, operation.tier_id
        project = {"id": operation.project_id, "name": operation.project_id}
        return {
            "name": operation.name,
            "done": True,
            "response": {"@type": _ONBOARD_RESPONSE_TYPE, "cloudaicompanionProject": project},
        }

    def _issue_locked(self, refresh_token: str, expires_in: int) -> str:
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self._state.tokens[token] = (refresh_token, time.monotonic() + expires_in)
        return token


def _oauth_error(error: str, description: str) -> dict[str, Any]:
    return {"error": error, "error_description": description}


def _invalid_argument(message: str) -> dict[str, Any]:
    return {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}


def _basic_credentials(authorization: str) -> tuple[str, str] | None:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip()).decode().partition(":")
    except ValueError:
        return None
    return (user, password) if sep else None
