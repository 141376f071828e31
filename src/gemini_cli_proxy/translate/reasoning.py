"""Reasoning controls -> Gemini's thinkingConfig, per model. Pure.

Gemini 2.5 takes `thinkingBudget` (tokens; each model has its own range, some cannot turn thinking
off) and rejects `thinkingLevel`; Gemini 3 takes `thinkingLevel` (each model its own set). Sending
both is a 400 from Google, so exactly one is ever sent. The client may speak OpenAI's
`reasoning_effort`, a top-level `thinking_budget`, or Google's own compat form
`extra_body: {"google": {"thinking_config": {...}}}` (a top-level `google` key once the SDK has
merged extra_body, or a literal `extra_body` key from raw HTTP clients).
"""

from __future__ import annotations

from typing import Any, Final

from ..catalog import ModelInfo
from ..errors import ProxyError, invalid_request
from ..wire.gemini_request import ThinkingConfig
from ..wire.openai import ChatCompletionRequest

EFFORTS: Final = ("none", "minimal", "low", "medium", "high")
# Google's OpenAI-compatible endpoint maps low / medium / high to these budgets (none -> 0).
EFFORT_BUDGETS: Final = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
LEVEL_ORDER: Final = ("MINIMAL", "LOW", "MEDIUM", "HIGH")
DYNAMIC_BUDGET: Final = -1


def _error(param: str, message: str) -> ProxyError:
    return invalid_request(message, param=param, code="invalid_value")


def _google_thinking(req: ChatCompletionRequest) -> tuple[dict[str, Any], str] | None:
    """Google's own form, wherever the client put it, with the param name to blame."""
    for param, holder in (
        ("google", req.google),
        ("extra_body.google", (req.extra_body or {}).get("google")),
    ):
        if isinstance(holder, dict):
            config = holder.get("thinking_config", holder.get("thinkingConfig"))
            if config is not None:
                if not isinstance(config, dict):
                    raise _error(f"{param}.thinking_config", f"'{param}.thinking_config' must be an object.")
                return config, f"{param}.thinking_config"
    return None


def _nearest_level(model: ModelInfo, wanted: str) -> str:
    """`wanted` if the model takes it, else the closest level it does take (upwards first)."""
    if wanted in model.levels:
        return wanted
    rank = LEVEL_ORDER.index(wanted)
    above = [level for level in model.levels if LEVEL_ORDER.index(level) > rank]
    return above[0] if above else model.levels[-1]


def _clamp_budget(model: ModelInfo, budget: int) -> int:
    return max(model.budget_min, min(model.budget_max, budget))


def _check_budget(model: ModelInfo, budget: int, param: str) -> int:
    if budget == DYNAMIC_BUDGET:
        return budget
    if budget == 0 and model.can_disable:
        return 0
    if model.budget_min <= budget <= model.budget_max:
        return budget
    allowed = f"{model.budget_min}..{model.budget_max}, -1 (dynamic)"
    if model.can_disable:
        allowed += " or 0 (off)"
    raise _error(param, f"'{param}' must be {allowed} for {model.id}; got {budget}.")


def _budget_to_level(model: ModelInfo, budget: int) -> str:
    if budget == DYNAMIC_BUDGET:
        return model.levels[-1]
    return _nearest_level(model, "LOW" if budget <= EFFORT_BUDGETS["low"] else "HIGH")


def _from_effort(model: ModelInfo, effort: str) -> ThinkingConfig:
    if model.thinking == "level":
        wanted = "MINIMAL" if effort == "none" else effort.upper()
        return {"thinkingLevel": _nearest_level(model, wanted)}
    if effort == "none":
        # 2.5 Pro cannot stop thinking: its smallest budget is the closest honest answer.
        return {"thinkingBudget": 0 if model.can_disable else model.budget_min}
    return {"thinkingBudget": _clamp_budget(model, EFFORT_BUDGETS[effort])}


def _from_google(model: ModelInfo, config: dict[str, Any], param: str) -> ThinkingConfig:
    out: ThinkingConfig = {}
    budget = config.get("thinking_budget", config.get("thinkingBudget"))
    level = config.get("thinking_level", config.get("thinkingLevel"))
    if budget is not None and level is not None:
        raise _error(param, f"'{param}' may set thinking_budget or thinking_level, not both.")
    if budget is not None:
        if not isinstance(budget, int) or isinstance(budget, bool):
            raise _error(f"{param}.thinking_budget", f"'{param}.thinking_budget' must be an integer.")
        out.update(_from_budget(model, budget, f"{param}.thinking_budget"))
    if level is not None:
        if not isinstance(level, str) or level.upper() not in LEVEL_ORDER:
            raise _error(
                f"{param}.thinking_level",
                f"'{param}.thinking_level' must be one of minimal, low, medium, high.",
            )
        if model.thinking != "level":
            raise _error(
                f"{param}.thinking_level", f"{model.id} takes a thinking budget, not a thinking level."
            )
        out["thinkingLevel"] = _nearest_level(model, level.upper())
    include = config.get("include_thoughts", config.get("includeThoughts"))
    if include is not None:
        if not isinstance(include, bool):
            raise _error(f"{param}.include_thoughts", f"'{param}.include_thoughts' must be a boolean.")
        out["includeThoughts"] = include
    return out


def _from_budget(model: ModelInfo, budget: int, param: str) -> ThinkingConfig:
    if model.thinking == "level":
        if budget == 0 or budget < DYNAMIC_BUDGET:
            raise _error(
                param, f"'{param}' must be -1 or positive for {model.id}, which cannot stop thinking."
            )
        return {"thinkingLevel": _budget_to_level(model, budget)}
    return {"thinkingBudget": _check_budget(model, budget, param)}


def thinking_config(
    req: ChatCompletionRequest, model: ModelInfo, *, show_thoughts: bool
) -> ThinkingConfig | None:
    """Gemini's thinkingConfig for this request, or None to leave the model's default."""
    google = _google_thinking(req)
    asked = req.reasoning_effort is not None or req.thinking_budget is not None or google is not None
    if model.thinking == "none":
        if asked:
            param = "reasoning_effort" if req.reasoning_effort is not None else "thinking_budget"
            if google is not None and req.reasoning_effort is None and req.thinking_budget is None:
                param = google[1]
            raise invalid_request(
                f"{model.id} does not support reasoning; remove '{param}'.",
                param=param,
                code="unsupported_parameter",
            )
        return None
    config: ThinkingConfig = {}
    if req.reasoning_effort is not None:
        if req.reasoning_effort not in EFFORTS:
            raise _error("reasoning_effort", f"'reasoning_effort' must be one of {', '.join(EFFORTS)}.")
        config = _from_effort(model, req.reasoning_effort)
    elif req.thinking_budget is not None:
        config = _from_budget(model, req.thinking_budget, "thinking_budget")
    elif google is not None:
        config = _from_google(model, *google)
    # Thought summaries are what fills reasoning_content; without includeThoughts Google sends none.
    if show_thoughts and config.get("thinkingBudget") != 0:
        config.setdefault("includeThoughts", True)
    return config or None
