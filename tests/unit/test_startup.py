"""The start-up line: what the proxy serves with, never a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemini_cli_proxy.catalog import Catalog
from gemini_cli_proxy.credentials import ApiKeyCredential, OAuthCredential, VertexKeyCredential
from gemini_cli_proxy.startup import describe_credentials, describe_state_url, summary


def test_credentials_are_counted_by_pool_and_kind() -> None:
    creds = [
        ApiKeyCredential("key-1-secret"),
        ApiKeyCredential("key-2-secret"),
        OAuthCredential("refresh-secret", Path("a.json"), {}),
        VertexKeyCredential("vertex-secret"),
        ApiKeyCredential("key-3-secret", pool="backup"),
    ]
    assert describe_credentials(creds) == (
        "5 credentials (primary: 2 AI Studio keys, 1 gemini-cli account, 1 Vertex express key; "
        "backup: 1 AI Studio key)"
    )
    assert describe_credentials([]) == "no credentials"


def test_the_state_store_is_named_without_its_password() -> None:
    assert describe_state_url("redis://user:hunter2@cache.internal:6380/2?prefix=x") == (
        "redis cache.internal:6380/2"
    )
    assert describe_state_url("rediss://:hunter2@cache.internal/0") == "rediss cache.internal/0"
    assert describe_state_url("sqlite:///var/state.db") == "sqlite var/state.db"
    assert describe_state_url("memory://") == "memory (this process only)"


def test_one_line_with_the_models() -> None:
    line = summary([ApiKeyCredential("key-1-secret")], "memory://", Catalog.with_extras(["gemini-exp-1"]))
    assert "\n" not in line and "secret" not in line
    assert line.endswith(f"{len(Catalog.with_extras(['gemini-exp-1']))} models")


def test_aliases_name_models_exactly_or_by_prefix_and_exact_ones_are_listed() -> None:
    catalog = Catalog.with_extras(
        [],
        [
            "claude-sonnet-4-5=gemini-2.5-pro",
            "claude-*=gemini-2.5-flash",
            "claude-haiku-*=gemini-2.5-flash-lite",
        ],
    )
    assert catalog.get("claude-sonnet-4-5").id == "gemini-2.5-pro"  # type: ignore[union-attr]
    assert catalog.get("claude-haiku-4-5-20251001").id == "gemini-2.5-flash-lite"  # type: ignore[union-attr]
    assert catalog.get("claude-opus-4-1").id == "gemini-2.5-flash"  # type: ignore[union-attr]
    assert catalog.get("gpt-4o") is None
    listed = {m["id"]: m for m in catalog.listing()["data"]}
    assert listed["claude-sonnet-4-5"]["alias_of"] == "gemini-2.5-pro"
    assert "claude-*" not in listed


def test_an_alias_of_a_model_not_served_stops_start_up() -> None:
    for entry in ["claude=gemini-9", "no-equals-sign", "=gemini-2.5-pro"]:
        with pytest.raises(ValueError, match="PROXY_MODEL_ALIASES"):
            Catalog.with_extras([], [entry])
