"""The kinds of Google credential a proxy holds: plain data, imported by the pool and the upstream
clients alike (pool/loading.py builds them from the settings).

Each has a stable `id` derived from it (a hash, never the secret) and a `label` that shows at most
the last 4 characters of the secret, for logs and debug output.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import UnsupportedAlgorithm
from google.auth import crypt

from .redact import tail

Pool = Literal["primary", "backup"]


def _stable_id(kind: str, secret: str) -> str:
    return f"{kind}-{hashlib.sha256(f'{kind}:{secret}'.encode()).hexdigest()[:12]}"


@dataclass(eq=False)
class ApiKeyCredential:
    """A Google AI Studio API key."""

    key: str = field(repr=False)
    pool: Pool = "primary"
    project: str | None = None  # the Google project behind the key, once an error named it
    kind: Literal["aistudio"] = "aistudio"
    id: str = field(init=False)
    label: str = field(init=False)

    def __post_init__(self) -> None:
        self.id = _stable_id(self.kind, self.key)
        self.label = f"aistudio key {tail(self.key)}"

    def secrets(self) -> tuple[str, ...]:
        return (self.key,)

    def project_key(self) -> str:
        """Which Google project's quota this key spends: learned from Google's errors, else its own."""
        return f"project:{self.project}" if self.project else f"credential:{self.id}"


@dataclass(eq=False)
class OAuthCredential:
    """A gemini-cli OAuth credential (oauth_creds.json), used against Code Assist.

    The token fields change as the proxy refreshes them; `raw` keeps every other key of the file so
    that writing it back loses nothing gemini-cli put there.
    """

    refresh_token: str = field(repr=False)
    path: Path | None
    raw: dict[str, Any] = field(repr=False)
    access_token: str = field(default="", repr=False)
    expires_at: float = 0.0  # epoch seconds; 0 = unknown, refresh before use
    refreshed_at: float | None = None  # when this process last refreshed the token
    pool: Pool = "primary"
    kind: Literal["codeassist"] = "codeassist"
    project_id: str | None = None
    id: str = field(init=False)
    label: str = field(init=False)

    def __post_init__(self) -> None:
        self.id = _stable_id(self.kind, self.refresh_token)
        where = self.path.name if self.path else "GCP_SERVICE_ACCOUNT"
        self.label = f"oauth {where} {tail(self.refresh_token)}"

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.refresh_token, self.access_token) if s)

    def project_key(self) -> str:
        return f"project:{self.project_id}" if self.project_id else f"credential:{self.id}"

    @classmethod
    def from_json(cls, data: Any, path: Path | None, pool: Pool) -> OAuthCredential:
        if not isinstance(data, dict) or not isinstance(data.get("refresh_token"), str):
            where = path or "GCP_SERVICE_ACCOUNT"
            raise ValueError(f"{where}: not a gemini-cli OAuth credential (no refresh_token)")
        expiry = data.get("expiry_date")  # gemini-cli writes milliseconds since the epoch
        expires_at = float(expiry) / 1000.0 if isinstance(expiry, int | float) else 0.0
        return cls(
            refresh_token=data["refresh_token"],
            path=path,
            raw=dict(data),
            access_token=str(data.get("access_token") or ""),
            expires_at=expires_at,
            pool=pool,
        )


@dataclass(eq=False)
class VertexServiceAccountCredential:
    """A Google Cloud service-account key file, used against Vertex AI with minted access tokens.

    `signer` holds the parsed private key, built once at load time so that a broken key stops
    start-up instead of failing the first request.
    """

    info: dict[str, Any] = field(repr=False)  # the parsed key file, private key included
    signer: crypt.Signer = field(repr=False)
    path: Path | None
    project_id: str
    location: str
    access_token: str = field(default="", repr=False)
    expires_at: float = 0.0  # epoch seconds; 0 = no token yet
    pool: Pool = "primary"
    kind: Literal["vertex"] = "vertex"
    id: str = field(init=False)
    label: str = field(init=False)

    def __post_init__(self) -> None:
        # The key id names the key without revealing it; with the account it is stable across restarts.
        self.id = _stable_id(self.kind, f"{self.client_email}:{self.private_key_id}")
        account = self.client_email.partition("@")[0]
        self.label = f"vertex {account} {tail(self.private_key_id)}"

    @property
    def client_email(self) -> str:
        return str(self.info["client_email"])

    @property
    def private_key_id(self) -> str:
        return str(self.info["private_key_id"])

    @property
    def token_uri(self) -> str:
        return str(self.info["token_uri"])

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (str(self.info["private_key"]), self.access_token) if s)

    def project_key(self) -> str:
        return f"project:{self.project_id}"

    @classmethod
    def from_json(
        cls, data: Any, path: Path, pool: Pool, *, project_id: str | None, location: str
    ) -> VertexServiceAccountCredential:
        if not isinstance(data, dict) or data.get("type") != "service_account":
            kind = data.get("type") if isinstance(data, dict) else None
            raise ValueError(
                f"{path}: not a service-account key file (type {kind!r}, expected 'service_account')"
            )
        for name in ("client_email", "private_key", "private_key_id", "token_uri"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise ValueError(f"{path}: the service-account key file has no {name}")
        project = project_id or data.get("project_id")
        if not isinstance(project, str) or not project:
            raise ValueError(f"{path}: the service-account key file has no project_id; set VERTEX_PROJECT_ID")
        try:
            signer = crypt.RSASigner.from_service_account_info(data)  # type: ignore[no-untyped-call]
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            # The exception's text is not shown: it might quote part of the key.
            raise ValueError(
                f"{path}: the service account's private_key is not a usable PEM RSA key "
                f"({type(exc).__name__})"
            ) from None
        return cls(
            info=dict(data), signer=signer, path=path, project_id=project, location=location, pool=pool
        )


@dataclass(eq=False)
class VertexKeyCredential:
    """A Vertex AI express-mode API key (no project or location: Google derives them from the key)."""

    key: str = field(repr=False)
    pool: Pool = "primary"
    kind: Literal["vertex-key"] = "vertex-key"
    id: str = field(init=False)
    label: str = field(init=False)

    def __post_init__(self) -> None:
        self.id = _stable_id(self.kind, self.key)
        self.label = f"vertex key {tail(self.key)}"

    def secrets(self) -> tuple[str, ...]:
        return (self.key,)

    def project_key(self) -> str:
        return f"credential:{self.id}"


Credential = ApiKeyCredential | OAuthCredential | VertexServiceAccountCredential | VertexKeyCredential


def api_key(entry: str, pool: Pool = "primary") -> ApiKeyCredential:
    """An AI Studio key from a key list entry: `KEY`, `KEY@PROJECT`, or `KEY PROJECT` (a column in
    the keys file). AI Studio's 429s never name the project, and quota is per project: keys an
    operator declares to share one cool down together from the first 429, instead of each finding
    the spent quota by a 429 of its own."""
    fields = entry.replace("@", " ", 1).split()  # AI Studio keys never hold "@" or spaces
    return ApiKeyCredential(fields[0], pool=pool, project=fields[1] if len(fields) > 1 else None)
