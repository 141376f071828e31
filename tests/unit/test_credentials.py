"""Loading credentials: every source, stable ids, redacted labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gemini_cli_proxy.credentials import ApiKeyCredential, OAuthCredential
from gemini_cli_proxy.pool.loading import load_credentials
from gemini_cli_proxy.settings import load_settings


def write_creds(path: Path, refresh_token: str) -> Path:
    path.write_text(
        json.dumps({"refresh_token": refresh_token, "access_token": "ya29.x", "expiry_date": 1_000})
    )
    return path


def test_every_source_in_pool_order(tmp_path: Path) -> None:
    folder = tmp_path / "gemini"
    folder.mkdir()
    write_creds(folder / "a.json", "1//refresh-a-000000000000000")
    (folder / "settings.json").write_text('{"theme": "dark"}')  # gemini-cli keeps other JSON here
    (folder / "notes.txt").write_text("not json")
    backup = write_creds(tmp_path / "backup.json", "1//refresh-b-000000000000000")
    settings = load_settings(
        gemini_api_keys=["key-one-1234", "key-one-1234"],
        gemini_oauth_creds=[str(folder)],
        gcp_service_account=json.dumps({"refresh_token": "1//refresh-c-000000000000000"}),
        gemini_backup_api_keys=["backup-key-9876"],
        gemini_backup_oauth_creds=[str(backup)],
    )
    creds = load_credentials(settings)
    assert [(type(c).__name__, c.pool) for c in creds] == [
        ("ApiKeyCredential", "primary"),
        ("OAuthCredential", "primary"),
        ("OAuthCredential", "primary"),
        ("ApiKeyCredential", "backup"),
        ("OAuthCredential", "backup"),
    ]
    oauth = creds[1]
    assert isinstance(oauth, OAuthCredential) and oauth.expires_at == 1.0 and oauth.path == folder / "a.json"


def test_ids_are_stable_and_labels_show_at_most_four_characters() -> None:
    key = "AIzaSyD-secret-key-abcd"
    first, second = ApiKeyCredential(key), ApiKeyCredential(key)
    assert first.id == second.id and key not in first.id
    assert first.label.endswith("abcd") and "secret" not in first.label


def test_an_explicit_file_that_is_not_a_credential_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "oauth_creds.json"
    bad.write_text('{"theme": "dark"}')
    with pytest.raises(ValueError, match="not a gemini-cli OAuth credential"):
        load_credentials(load_settings(gemini_oauth_creds=[str(bad)]))
    with pytest.raises(ValueError, match="does not exist"):
        load_credentials(load_settings(gemini_oauth_creds=[str(tmp_path / "absent.json")]))
    with pytest.raises(ValueError, match="GCP_SERVICE_ACCOUNT"):
        load_credentials(load_settings(gcp_service_account="{not json"))


def test_keys_may_name_their_google_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(
        "# key, then its project\nkey-file-one-1111 proj-b\nkey-file-two-2222@proj-b\nkey-plain-3333\n"
    )
    monkeypatch.setenv(
        "GEMINI_API_KEYS", "key-env-one-4444@proj-a,key-env-two-5555@proj-a,key-env-three-6666"
    )
    monkeypatch.setenv("GEMINI_KEYS_FILE", str(keys_file))
    monkeypatch.setenv("GEMINI_BACKUP_API_KEYS", "key-backup-7777@proj-c")
    creds = [c for c in load_credentials(load_settings()) if isinstance(c, ApiKeyCredential)]
    projects = {c.key: c.project for c in creds}
    assert projects == {
        "key-env-one-4444": "proj-a",
        "key-env-two-5555": "proj-a",
        "key-env-three-6666": None,
        "key-file-one-1111": "proj-b",
        "key-file-two-2222": "proj-b",
        "key-plain-3333": None,
        "key-backup-7777": "proj-c",
    }
    # The id is the key's alone: declaring a project later keeps the credential's state.
    assert ApiKeyCredential("key-env-one-4444").id == next(c.id for c in creds if c.key == "key-env-one-4444")
    assert {c.project_key() for c in creds if c.project == "proj-a"} == {"project:proj-a"}
