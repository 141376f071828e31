"""The credentials the settings name, built once at start-up."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import orjson

from ..credentials import (
    Credential,
    OAuthCredential,
    Pool,
    VertexKeyCredential,
    VertexServiceAccountCredential,
    api_key,
)
from ..settings import Settings

_LOCATION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")  # global, us-central1, europe-west4, ...
log = logging.getLogger("gemini_cli_proxy.credentials")


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


def _read_json(path: Path, setting: str) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ValueError(f"{setting}: {path} does not exist") from None
    except OSError as exc:
        raise ValueError(f"{setting}: cannot read {path} ({exc.strerror})") from None
    except orjson.JSONDecodeError:
        raise ValueError(f"{setting}: {path} is not valid JSON") from None


def _load_vertex(
    settings: Settings, paths: list[str], pool: Pool, setting: str
) -> list[VertexServiceAccountCredential]:
    if paths and not _LOCATION.fullmatch(settings.vertex_location):
        # The location becomes part of a host name: refuse anything that is not a region id.
        raise ValueError(f"VERTEX_LOCATION {settings.vertex_location!r} is not a Google Cloud location")
    return [
        VertexServiceAccountCredential.from_json(
            _read_json(path, setting),
            path,
            pool,
            project_id=settings.vertex_project_id,
            location=settings.vertex_location,
        )
        for path in (Path(p).expanduser() for p in paths)
    ]


def _application_default(settings: Settings) -> list[VertexServiceAccountCredential]:
    """GOOGLE_APPLICATION_CREDENTIALS, when it names a service-account key.

    gcloud points it at user credentials (authorized_user) too, which Vertex would need a different
    flow for; those are skipped, not an error, since the variable is often set for other tools."""
    if not settings.google_application_credentials:
        return []
    setting = "GOOGLE_APPLICATION_CREDENTIALS"
    path = Path(settings.google_application_credentials).expanduser()
    data = _read_json(path, setting)
    kind = data.get("type") if isinstance(data, dict) else None
    if kind != "service_account":
        log.info("%s: skipping %s: a %r file, not a service-account key", setting, path, kind)
        return []
    return _load_vertex(settings, [str(path)], "primary", setting)


def load_credentials(settings: Settings) -> list[Credential]:
    """Every credential the settings name, primary pool first, duplicates dropped."""
    creds: list[Credential] = [api_key(entry) for entry in settings.aistudio_keys()]
    creds.extend(_load_oauth(settings.oauth_cred_paths(), "primary"))
    if settings.gcp_service_account:
        try:
            data = orjson.loads(settings.gcp_service_account)
        except orjson.JSONDecodeError:
            raise ValueError("GCP_SERVICE_ACCOUNT is not valid JSON") from None
        creds.append(OAuthCredential.from_json(data, None, "primary"))
    creds.extend(_load_vertex(settings, settings.vertex_credentials, "primary", "VERTEX_CREDENTIALS"))
    creds.extend(_application_default(settings))
    creds.extend(VertexKeyCredential(key) for key in settings.vertex_api_keys)
    creds.extend(api_key(entry, pool="backup") for entry in settings.gemini_backup_api_keys)
    creds.extend(_load_oauth([Path(p).expanduser() for p in settings.gemini_backup_oauth_creds], "backup"))
    creds.extend(
        _load_vertex(settings, settings.vertex_backup_credentials, "backup", "VERTEX_BACKUP_CREDENTIALS")
    )
    unique: dict[str, Credential] = {}
    for cred in creds:
        unique.setdefault(cred.id, cred)
    return list(unique.values())
