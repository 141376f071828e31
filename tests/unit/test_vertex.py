"""Vertex AI credentials (loading, ids, labels, errors) and the URL rules, without a network."""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gemini_cli_proxy.credentials import VertexKeyCredential, VertexServiceAccountCredential
from gemini_cli_proxy.pool.loading import load_credentials
from gemini_cli_proxy.settings import load_settings
from gemini_cli_proxy.upstream.vertex import VertexClient, vertex_base_url, vertex_express_models_url

EMAIL = "proxy-sa@proj-file.iam.gserviceaccount.com"
KEY_ID = "0123456789abcdef0123456789abcdef0badc0de"


@cache
def _pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _write(path: Path, **fields: Any) -> Path:
    data = {
        "type": "service_account",
        "project_id": "proj-file",
        "private_key_id": KEY_ID,
        "private_key": _pem(),
        "client_email": EMAIL,
        "token_uri": "http://127.0.0.1:9/token",
        **fields,
    }
    path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))
    return path


def _service_account(creds: list[Any]) -> VertexServiceAccountCredential:
    (cred,) = creds
    assert isinstance(cred, VertexServiceAccountCredential)
    return cred


# -- loading ---------------------------------------------------------------------------------------------


def test_service_account_file_project_location_and_pools(tmp_path: Path) -> None:
    primary = _write(tmp_path / "a.json")
    backup = _write(
        tmp_path / "b.json", client_email="other@proj-b.iam.gserviceaccount.com", project_id="proj-b"
    )
    settings = load_settings(
        vertex_credentials=[str(primary)],
        vertex_api_keys=["vertex-express-key-0001"],
        vertex_backup_credentials=[str(backup)],
        vertex_location="us-central1",
    )
    creds = load_credentials(settings)
    assert [(type(c).__name__, c.pool) for c in creds] == [
        ("VertexServiceAccountCredential", "primary"),
        ("VertexKeyCredential", "primary"),
        ("VertexServiceAccountCredential", "backup"),
    ]
    first, _, second = creds
    assert isinstance(first, VertexServiceAccountCredential) and isinstance(
        second, VertexServiceAccountCredential
    )
    assert (first.project_id, first.location, first.path) == ("proj-file", "us-central1", primary)
    assert (second.project_id, second.client_email) == ("proj-b", "other@proj-b.iam.gserviceaccount.com")
    assert first.token_uri == "http://127.0.0.1:9/token"
    assert first.project_key() == "project:proj-file"


def test_vertex_project_id_overrides_the_file_and_location_defaults_to_global(tmp_path: Path) -> None:
    settings = load_settings(
        vertex_credentials=[str(_write(tmp_path / "a.json"))], vertex_project_id="proj-x"
    )
    cred = _service_account(load_credentials(settings))
    assert (cred.project_id, cred.location) == ("proj-x", "global")
    # Without project_id in the file, VERTEX_PROJECT_ID supplies it.
    settings = load_settings(
        vertex_credentials=[str(_write(tmp_path / "b.json", project_id=None))], vertex_project_id="proj-y"
    )
    assert _service_account(load_credentials(settings)).project_id == "proj-y"


def test_the_same_key_named_twice_is_one_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "a.json")
    copy = _write(tmp_path / "copy.json")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    creds = load_credentials(load_settings(vertex_credentials=[str(path), str(copy)]))
    assert len(creds) == 1 and creds[0].id.startswith("vertex-")


def test_google_application_credentials_skips_user_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gemini_cli_proxy")
    user = tmp_path / "adc.json"
    user.write_text(json.dumps({"type": "authorized_user", "refresh_token": "1//secret-refresh-token-0000"}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(user))
    assert load_credentials(load_settings()) == []
    (line,) = [r.getMessage() for r in caplog.records if "GOOGLE_APPLICATION_CREDENTIALS" in r.getMessage()]
    assert "authorized_user" in line and "secret-refresh" not in line

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(_write(tmp_path / "sa.json")))
    assert _service_account(load_credentials(load_settings())).pool == "primary"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "authorized_user"}, "not a service-account key file"),
        ({"client_email": None}, "has no client_email"),
        ({"private_key_id": ""}, "has no private_key_id"),
        ({"token_uri": None}, "has no token_uri"),
        ({"project_id": None}, "set VERTEX_PROJECT_ID"),
        (
            {"private_key": "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"},
            "not a usable",
        ),
    ],
)
def test_a_broken_service_account_file_stops_start_up(
    tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    path = _write(tmp_path / "sa.json", **fields)
    with pytest.raises(ValueError, match=message) as caught:
        load_credentials(load_settings(vertex_credentials=[str(path)]))
    assert str(path) in str(caught.value) and "bm90IGEga2V5" not in str(caught.value)


def test_unreadable_or_missing_files_name_their_setting(tmp_path: Path) -> None:
    not_json = tmp_path / "sa.json"
    not_json.write_text("{nope")
    with pytest.raises(ValueError, match=r"VERTEX_CREDENTIALS: .* is not valid JSON"):
        load_credentials(load_settings(vertex_credentials=[str(not_json)]))
    with pytest.raises(ValueError, match=r"VERTEX_BACKUP_CREDENTIALS: .* does not exist"):
        load_credentials(load_settings(vertex_backup_credentials=[str(tmp_path / "absent.json")]))
    with pytest.raises(ValueError, match=r"GOOGLE_APPLICATION_CREDENTIALS: .* does not exist"):
        load_credentials(load_settings(google_application_credentials=str(tmp_path / "absent.json")))
    with pytest.raises(ValueError, match=r"VERTEX_LOCATION 'evil\.example/x' is not a Google Cloud location"):
        load_credentials(
            load_settings(
                vertex_credentials=[str(_write(tmp_path / "a.json"))], vertex_location="evil.example/x"
            )
        )


# -- ids, labels, reprs ------------------------------------------------------------------------------------


def test_ids_are_stable_and_labels_and_reprs_hide_secrets(tmp_path: Path) -> None:
    settings = load_settings(vertex_credentials=[str(_write(tmp_path / "a.json"))])
    first, second = (_service_account(load_credentials(settings)) for _ in range(2))
    first.access_token = "ya29.c.secret-access-token"
    assert first.id == second.id
    assert first.label == "vertex proxy-sa …c0de"
    body = _pem().splitlines()[5]
    for text in (first.id, first.label, repr(first), str(first)):
        assert body not in text and KEY_ID not in text and "secret-access-token" not in text
    assert set(first.secrets()) == {_pem(), "ya29.c.secret-access-token"}
    # Another key of the same account is another credential.
    other = _service_account(
        load_credentials(
            load_settings(vertex_credentials=[str(_write(tmp_path / "b.json", private_key_id="f" * 40))])
        )
    )
    assert other.id != first.id

    key = VertexKeyCredential("AQ.vertex-express-secret-abcd")
    assert key.id == VertexKeyCredential("AQ.vertex-express-secret-abcd").id
    assert key.label == "vertex key …abcd"
    for text in (key.id, key.label, repr(key)):
        assert "express-secret" not in text
    assert key.secrets() == ("AQ.vertex-express-secret-abcd",)


# -- URLs --------------------------------------------------------------------------------------------------


def test_base_url_follows_the_location() -> None:
    assert vertex_base_url("global") == "https://aiplatform.googleapis.com"
    assert vertex_base_url("us-central1") == "https://us-central1-aiplatform.googleapis.com"
    assert vertex_base_url("europe-west4") == "https://europe-west4-aiplatform.googleapis.com"
    assert vertex_base_url("europe-west4", "http://127.0.0.1:8090/") == "http://127.0.0.1:8090"


def test_request_urls_for_each_kind_of_credential(tmp_path: Path) -> None:
    settings = load_settings(
        vertex_credentials=[str(_write(tmp_path / "a.json"))], vertex_location="asia-east1"
    )
    account = _service_account(load_credentials(settings))
    model = "gemini-2.5-pro"

    client = VertexClient(None, base_url=None)  # type: ignore[arg-type]  # URLs need no session
    assert client.url(account, model, "generateContent") == (
        "https://asia-east1-aiplatform.googleapis.com/v1/projects/proj-file/locations/asia-east1"
        "/publishers/google/models/gemini-2.5-pro:generateContent"
    )
    # Express mode has no project or location, and only the global host serves it.
    assert vertex_express_models_url() == "https://aiplatform.googleapis.com/v1/publishers/google/models/"

    local = VertexClient(None, base_url="http://127.0.0.1:8090/")  # type: ignore[arg-type]
    assert local.url(account, model, "generateContent").startswith(
        "http://127.0.0.1:8090/v1/projects/proj-file/locations/asia-east1/"
    )
    assert vertex_express_models_url("http://127.0.0.1:8090/") == (
        "http://127.0.0.1:8090/v1/publishers/google/models/"
    )
