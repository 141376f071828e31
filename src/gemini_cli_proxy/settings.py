"""Every setting of the proxy, read in this one place.

Precedence: CLI flag > environment variable > TOML file (`--config` / `PROXY_CONFIG`) > default.
Field names are the environment variable names in lower case; the TOML file uses the same names in
either case. Lists are comma-separated in the environment and may be TOML arrays in the file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .wire.safety import SafetySetting, parse_safety_settings

# gemini-cli's OAuth client: an "installed application" client, which Google documents as not
# confidential (RFC 8252); its refresh tokens can only be redeemed with this pair. The secret is
# split only so that secret scanners do not mistake this public constant for a leaked one.
GEMINI_CLI_CLIENT_ID = "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com"
GEMINI_CLI_CLIENT_SECRET = "GOCSPX-4uHgMPm" + "-1o7Sk-geV6Cu5clXFsxl"

CommaList = Annotated[list[str], NoDecode]
_NUMBERED_KEY = re.compile(r"^GEMINI_API_KEY_(\d+)$", re.IGNORECASE)


def _default_state_url() -> str:
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{data_home / 'gemini-cli-proxy' / 'state.sqlite3'}"


class _NumberedKeysSource(PydanticBaseSettingsSource):
    """GEMINI_API_KEY_1 .. GEMINI_API_KEY_N, in numeric order."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        numbered = sorted(
            (int(match.group(1)), value.strip())
            for name, value in os.environ.items()
            if (match := _NUMBERED_KEY.match(name)) and value.strip()
        )
        return {"gemini_api_key_numbered": [value for _, value in numbered]} if numbered else {}


def _read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ValueError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path} is not valid TOML: {exc}") from exc


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    proxy_config: str | None = None

    proxy_host: str = "127.0.0.1"
    proxy_port: int = Field(8000, ge=0, le=65535)
    proxy_workers: int = Field(1, ge=1, le=64)
    proxy_api_keys: CommaList = []
    openai_api_key: str | None = None

    gemini_api_keys: CommaList = []
    gemini_api_key: str | None = None
    gemini_api_key_numbered: list[str] = []
    gemini_keys_file: str | None = None
    gemini_oauth_creds: CommaList | None = None
    gemini_oauth_client_id: str = GEMINI_CLI_CLIENT_ID
    gemini_oauth_client_secret: str = GEMINI_CLI_CLIENT_SECRET
    gcp_service_account: str | None = None

    vertex_credentials: CommaList = []
    google_application_credentials: str | None = None
    vertex_project_id: str | None = None
    vertex_location: str = "global"
    vertex_api_keys: CommaList = []

    gemini_backup_api_keys: CommaList = []
    gemini_backup_oauth_creds: CommaList = []
    vertex_backup_credentials: CommaList = []

    gemini_project_id: str | None = None
    gemini_api_base_url: str = "https://generativelanguage.googleapis.com"
    code_assist_endpoint: str = "https://cloudcode-pa.googleapis.com"
    code_assist_api_version: str = "v1internal"
    vertex_api_base_url: str | None = None
    google_oauth_token_url: str = "https://oauth2.googleapis.com/token"

    proxy_state_url: str = Field(default_factory=_default_state_url)
    proxy_stream_default: bool = False
    proxy_models: CommaList = []
    # ALIAS=MODEL pairs (a trailing * in ALIAS matches a prefix): clients with fixed model names.
    proxy_model_aliases: CommaList = []
    proxy_allow_private_image_urls: bool = False
    # GET /metrics without the proxy key (for a Prometheus that cannot send one); the key guards it
    # otherwise, since model names and credential labels say something about the deployment.
    proxy_metrics_public: bool = False
    # The largest image the proxy fetches for an `image_url`; Google's inline-data limit is 20 MB.
    proxy_max_image_bytes: int = Field(20 * 1024 * 1024, ge=1)
    proxy_log_level: str = "info"
    # Where Gemini's thought summaries go: the reasoning_content field (the DeepSeek/vLLM
    # convention), `<think>` tags inside content (for clients that read only content), or nowhere.
    proxy_reasoning_output: Literal["reasoning_content", "think_tags", "hidden"] = "reasoning_content"
    # safetySettings sent with every request: one threshold for all categories, CATEGORY=THRESHOLD
    # pairs, or `default` for Google's own (None). OFF: a gateway should not censor its callers twice.
    proxy_safety_settings: Annotated[list[SafetySetting] | None, NoDecode] = Field(
        default_factory=lambda: parse_safety_settings("OFF")
    )

    # Stored Responses API responses (`store: true`): how long they are kept, and the largest record
    # (the response with its input and the chain's history before it) that is kept at all.
    proxy_responses_ttl: float = Field(604800.0, gt=0)
    proxy_responses_max_bytes: int = Field(16 * 1024 * 1024, ge=1024)

    # Not in CONTRACT.md's table: operational limits an operator may want to tune.
    proxy_max_body_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    proxy_connect_timeout: float = Field(10.0, gt=0)
    proxy_upstream_timeout: float = Field(300.0, gt=0)
    proxy_shutdown_grace: float = Field(10.0, ge=0)
    # How long a client may take to send a request head (from connecting, or from its previous request's
    # end: an idle keep-alive connection is closed after it too), and again its body; not the response.
    proxy_request_read_timeout: float = Field(75.0, gt=0)
    # The pool's failure policy: the cooldown after a 429 without RetryInfo (it doubles with each
    # consecutive 429), and how many credentials / how long one request may try before giving up.
    proxy_cooldown_seconds: float = Field(60.0, gt=0)
    proxy_retry_attempts: int = Field(5, ge=1)
    proxy_retry_deadline: float = Field(30.0, gt=0)
    # How stale this process's view of a shared store's cooldowns and disabled flags may be: reading the
    # store on every request costs more than the few extra 429s another instance's news may cause.
    proxy_state_max_age: float = Field(0.1, ge=0)

    @field_validator(
        "proxy_api_keys",
        "gemini_api_keys",
        "gemini_oauth_creds",
        "vertex_credentials",
        "vertex_api_keys",
        "gemini_backup_api_keys",
        "gemini_backup_oauth_creds",
        "vertex_backup_credentials",
        "proxy_models",
        "proxy_model_aliases",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("proxy_safety_settings", mode="before")
    @classmethod
    def _parse_safety(cls, value: Any) -> Any:
        return parse_safety_settings(value) if isinstance(value, str) else value

    @field_validator("proxy_log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.strip().lower()
        if level not in {"debug", "info", "warning", "error", "critical"}:
            raise ValueError("must be one of debug, info, warning, error, critical")
        return level

    @field_validator("gemini_api_base_url", "code_assist_endpoint", "google_oauth_token_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            _NumberedKeysSource(settings_cls),
        ]
        flags = init_settings.init_kwargs if isinstance(init_settings, InitSettingsSource) else {}
        config_path = flags.get("proxy_config") or os.environ.get("PROXY_CONFIG")
        if config_path:
            sources.append(InitSettingsSource(settings_cls, _read_toml(config_path)))
        return tuple(sources)

    # Derived views: the rest of the program asks these, never the raw fields.

    def client_keys(self) -> tuple[str, ...]:
        keys = [*self.proxy_api_keys]
        if self.openai_api_key:
            keys.append(self.openai_api_key.strip())
        return tuple(dict.fromkeys(k for k in keys if k))

    def aistudio_keys(self) -> tuple[str, ...]:
        keys = [*self.gemini_api_keys]
        if self.gemini_api_key:
            keys.append(self.gemini_api_key.strip())
        keys.extend(self.gemini_api_key_numbered)
        if self.gemini_keys_file:
            text = Path(self.gemini_keys_file).expanduser().read_text(encoding="utf-8")
            keys.extend(line.strip() for line in text.splitlines())
        return tuple(dict.fromkeys(k for k in keys if k and not k.startswith("#")))

    def oauth_cred_paths(self) -> tuple[Path, ...]:
        if self.gemini_oauth_creds is not None:
            return tuple(Path(p).expanduser() for p in self.gemini_oauth_creds)
        default = Path.home() / ".gemini" / "oauth_creds.json"
        return (default,) if default.is_file() else ()

    def is_loopback_bind(self) -> bool:
        host = self.proxy_host.strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def load_settings(**flags: Any) -> Settings:
    """Build the settings; `flags` are CLI values (None means 'not given')."""
    given = {name: value for name, value in flags.items() if value is not None}
    return Settings(**given)
