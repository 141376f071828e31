"""Settings: flag > env > TOML file > default; lists; every key source."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemini_cli_proxy.settings import GEMINI_CLI_CLIENT_ID, load_settings


def test_defaults() -> None:
    settings = load_settings()
    assert (settings.proxy_host, settings.proxy_port) == ("127.0.0.1", 8000)
    assert settings.client_keys() == ()
    assert settings.aistudio_keys() == ()
    assert settings.proxy_stream_default is False
    assert settings.proxy_state_url.startswith("sqlite:///") and settings.proxy_state_url.endswith(".sqlite3")
    assert settings.gemini_api_base_url == "https://generativelanguage.googleapis.com"
    assert settings.code_assist_endpoint == "https://cloudcode-pa.googleapis.com"
    assert settings.google_oauth_token_url == "https://oauth2.googleapis.com/token"
    assert settings.gemini_oauth_client_id == GEMINI_CLI_CLIENT_ID
    assert settings.proxy_log_level == "info"
    assert settings.is_loopback_bind()


def test_precedence_flag_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text(
        'PROXY_PORT = 7000\nproxy_host = "0.0.0.0"\nPROXY_MODELS = ["a", "b"]\nproxy_log_level = "debug"\n'
    )
    from_file = load_settings(proxy_config=str(config))
    assert (from_file.proxy_port, from_file.proxy_host, from_file.proxy_models) == (
        7000,
        "0.0.0.0",
        ["a", "b"],
    )
    monkeypatch.setenv("PROXY_PORT", "7100")
    assert load_settings(proxy_config=str(config)).proxy_port == 7100
    assert load_settings(proxy_config=str(config), proxy_port=7200).proxy_port == 7200
    monkeypatch.setenv("PROXY_CONFIG", str(config))
    assert load_settings().proxy_log_level == "debug"


def test_missing_or_broken_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        load_settings(proxy_config=str(tmp_path / "absent.toml"))
    broken = tmp_path / "broken.toml"
    broken.write_text("PROXY_PORT = = 1")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_settings(proxy_config=str(broken))


def test_every_api_key_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("file-key-1\n\n# a comment\nfile-key-2\nlist-key-a\n")
    monkeypatch.setenv("GEMINI_API_KEYS", "list-key-a, list-key-b,")
    monkeypatch.setenv("GEMINI_API_KEY", "single-key")
    monkeypatch.setenv("GEMINI_API_KEY_2", "numbered-2")
    monkeypatch.setenv("GEMINI_API_KEY_10", "numbered-10")
    monkeypatch.setenv("GEMINI_API_KEY_1", "numbered-1")
    monkeypatch.setenv("GEMINI_KEYS_FILE", str(keys_file))
    assert load_settings().aistudio_keys() == (
        "list-key-a",
        "list-key-b",
        "single-key",
        "numbered-1",
        "numbered-2",
        "numbered-10",
        "file-key-1",
        "file-key-2",
    )


def test_client_keys_from_proxy_api_keys_and_openai_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY_API_KEYS", "k1,k2")
    monkeypatch.setenv("OPENAI_API_KEY", "k3")
    assert load_settings().client_keys() == ("k1", "k2", "k3")


def test_booleans_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY_STREAM_DEFAULT", "true")
    monkeypatch.setenv("PROXY_ALLOW_PRIVATE_IMAGE_URLS", "1")
    settings = load_settings()
    assert settings.proxy_stream_default is True and settings.proxy_allow_private_image_urls is True
    monkeypatch.setenv("PROXY_PORT", "not-a-port")
    with pytest.raises(ValueError):
        load_settings()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("example.org", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert load_settings(proxy_host=host).is_loopback_bind() is loopback


def test_default_oauth_file_is_used_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_settings().oauth_cred_paths() == ()
    creds = tmp_path / ".gemini" / "oauth_creds.json"
    creds.parent.mkdir()
    creds.write_text("{}")
    assert load_settings().oauth_cred_paths() == (creds,)
    monkeypatch.setenv("GEMINI_OAUTH_CREDS", "")
    assert load_settings().oauth_cred_paths() == ()


def test_request_read_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().proxy_request_read_timeout == 75.0
    monkeypatch.setenv("PROXY_REQUEST_READ_TIMEOUT", "2.5")
    assert load_settings().proxy_request_read_timeout == 2.5
    for bad in ("0", "-1", "soon"):
        monkeypatch.setenv("PROXY_REQUEST_READ_TIMEOUT", bad)
        with pytest.raises(ValueError):
            load_settings()
