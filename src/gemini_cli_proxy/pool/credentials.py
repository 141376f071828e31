"""The credentials a proxy holds, loaded from the settings once at start-up.

Each has a stable `id` derived from it (a hash, never the secret) and a `label` that shows at most
the last 4 characters of the secret, for logs and debug output.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from ..redact import tail
from ..settings import Settings

Pool = Literal["primary", "backup"]
log = logging.getLogger("gemini_cli_proxy.credentials")


def _stable_id(kind: str, secret: str) -> str:
    return f"{kind}-{hashlib.sha256(f'{kind}:{secret}'.encode()).hexdigest()[:12]}"


@dataclass(eq=False)
class ApiKeyCredential:
    """A Google AI Studio API key."""

    key: str = field(repr=False)
    pool: Pool = "primary"
    kind: Literal["aistudio"] = "aistudio"
    id: str = field(init=False)
    label: str = field(init=False)

    def __post_init__(self) -> None:
        self.id = _stable_id(self.kind, self.key)
        self.label = f"aistudio key {tail(self.key)}"

    def secrets(self) -> tuple[str, ...]:
        return (self.key,)


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


Credential = ApiKeyCredential | OAuthCredential


def _oauth_files(paths: tuple[Path, ...] | list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix == ".json" and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"OAuth credential path does not exist: {path}")
    return files


def _load_oauth(paths: tuple[Path, ...] | list[Path], pool: Pool) -> list[OAuthCredential]:
    creds = []
    for path in paths:
        in_folder = path.is_dir()
        for file in _oauth_files([path]):
            try:
                creds.append(OAuthCredential.from_json(orjson.loads(file.read_bytes()), file, pool))
            except (orjson.JSONDecodeError, ValueError) as exc:
                if not in_folder:
                    raise ValueError(f"{file}: not a gemini-cli OAuth credential ({exc})") from None
                # A folder such as ~/.gemini also holds settings and other JSON files.
                log.info("skipping %s: not an OAuth credential", file)
    return creds


def load_credentials(settings: Settings) -> list[Credential]:
    """Every credential the settings name, primary pool first, duplicates dropped."""
    creds: list[Credential] = [ApiKeyCredential(key) for key in settings.aistudio_keys()]
    creds.extend(_load_oauth(settings.oauth_cred_paths(), "primary"))
    if settings.gcp_service_account:
        try:
            data = orjson.loads(settings.gcp_service_account)
        except orjson.JSONDecodeError:
            raise ValueError("GCP_SERVICE_ACCOUNT is not valid JSON") from None
        creds.append(OAuthCredential.from_json(data, None, "primary"))
    creds.extend(ApiKeyCredential(key, pool="backup") for key in settings.gemini_backup_api_keys)
    creds.extend(_load_oauth([Path(p).expanduser() for p in settings.gemini_backup_oauth_creds], "backup"))
    unique: dict[str, Credential] = {}
    for cred in creds:
        unique.setdefault(cred.id, cred)
    return list(unique.values())
