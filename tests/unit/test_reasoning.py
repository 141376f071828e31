"""reasoning_effort / thinking_budget / Google's thinking_config -> thinkingConfig, per model."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gemini_cli_proxy.catalog import Catalog
from gemini_cli_proxy.errors import ProxyError
from gemini_cli_proxy.translate.reasoning import thinking_config
from gemini_cli_proxy.wire.openai import parse_chat_request

CATALOG = Catalog.with_extras(["gemini-3-flash-preview"])


def config(model: str, show_thoughts: bool = True, **body: Any) -> dict[str, Any] | None:
    info = CATALOG.get(model)
    assert info is not None
    request = parse_chat_request(
        orjson.dumps({"model": model, "messages": [{"role": "user", "content": "x"}], **body})
    )
    return thinking_config(request, info, show_thoughts=show_thoughts)


def refused(model: str, **body: Any) -> ProxyError:
    with pytest.raises(ProxyError) as caught:
        config(model, **body)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(
    ("model", "effort", "expected"),
    [
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
        ("gemini-2.5-flash", "low", {"thinkingBudget": 1024, "includeThoughts": True}),
        ("gemini-2.5-flash", "medium", {"thinkingBudget": 8192, "includeThoughts": True}),
        ("gemini-2.5-flash", "high", {"thinkingBudget": 24576, "includeThoughts": True}),
        ("gemini-2.5-pro", "none", {"thinkingBudget": 128, "includeThoughts": True}),
        ("gemini-2.5-pro", "high", {"thinkingBudget": 24576, "includeThoughts": True}),
        ("gemini-2.5-flash-lite", "minimal", {"thinkingBudget": 512, "includeThoughts": True}),
        ("gemini-3-pro-preview", "low", {"thinkingLevel": "LOW", "includeThoughts": True}),
        ("gemini-3-pro-preview", "medium", {"thinkingLevel": "HIGH", "includeThoughts": True}),
        ("gemini-3-pro-preview", "none", {"thinkingLevel": "LOW", "includeThoughts": True}),
        ("gemini-3-flash-preview", "minimal", {"thinkingLevel": "MINIMAL", "includeThoughts": True}),
        ("gemini-3-flash-preview", "medium", {"thinkingLevel": "MEDIUM", "includeThoughts": True}),
    ],
)
def test_reasoning_effort(model: str, effort: str, expected: dict[str, Any]) -> None:
    assert config(model, reasoning_effort=effort) == expected


def test_never_both_budget_and_level() -> None:
    for model in ("gemini-3-pro-preview", "gemini-2.5-pro"):
        for body in ({"reasoning_effort": "high"}, {"thinking_budget": 2048}, {"thinking_budget": -1}):
            result = config(model, **body) or {}
            assert not ("thinkingBudget" in result and "thinkingLevel" in result)


@pytest.mark.parametrize(
    ("model", "budget", "expected"),
    [
        ("gemini-2.5-flash", 0, {"thinkingBudget": 0}),
        ("gemini-2.5-flash", -1, {"thinkingBudget": -1, "includeThoughts": True}),
        ("gemini-2.5-pro", 32768, {"thinkingBudget": 32768, "includeThoughts": True}),
        ("gemini-3-pro-preview", 512, {"thinkingLevel": "LOW", "includeThoughts": True}),
        ("gemini-3-pro-preview", 20000, {"thinkingLevel": "HIGH", "includeThoughts": True}),
    ],
)
def test_thinking_budget(model: str, budget: int, expected: dict[str, Any]) -> None:
    assert config(model, thinking_budget=budget) == expected


@pytest.mark.parametrize(
    ("model", "budget"),
    [
        ("gemini-2.5-pro", 0),
        ("gemini-2.5-pro", 64),
        ("gemini-2.5-flash", 30000),
        ("gemini-2.5-flash-lite", 100),
        ("gemini-3-pro-preview", 0),
    ],
)
def test_out_of_range_budgets_are_refused(model: str, budget: int) -> None:
    assert refused(model, thinking_budget=budget).param == "thinking_budget"


def test_google_extra_body_forms() -> None:
    google = {"thinking_config": {"thinking_budget": 2048, "include_thoughts": False}}
    assert config("gemini-2.5-flash", google=google) == {"thinkingBudget": 2048, "includeThoughts": False}
    assert config("gemini-2.5-flash", extra_body={"google": google}) == {
        "thinkingBudget": 2048,
        "includeThoughts": False,
    }
    level = {"thinking_config": {"thinking_level": "low"}}
    assert config("gemini-3-pro-preview", google=level) == {"thinkingLevel": "LOW", "includeThoughts": True}
    both = {"thinking_config": {"thinking_level": "low", "thinking_budget": 100}}
    assert refused("gemini-3-pro-preview", google=both).param == "google.thinking_config"
    assert refused("gemini-2.5-flash", google=level).param == "google.thinking_config.thinking_level"


def test_no_request_means_default_plus_thought_summaries() -> None:
    assert config("gemini-2.5-flash") == {"includeThoughts": True}
    assert config("gemini-2.5-flash", show_thoughts=False) is None
    assert config("gemini-2.0-flash") is None


def test_models_without_reasoning_refuse_it() -> None:
    error = refused("gemini-2.0-flash", reasoning_effort="low")
    assert error.param == "reasoning_effort" and error.code == "unsupported_parameter"
    assert refused("gemini-2.5-flash", reasoning_effort="extreme").param == "reasoning_effort"
