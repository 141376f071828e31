"""The models the proxy lists and accepts, and what each can do.

Built once at start-up from the built-in list plus `PROXY_MODELS`; requests for any other id are
refused with 404 before an upstream call is made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

ThinkingStyle = Literal["none", "budget", "level"]

# OpenAI's model objects need a creation time; a fixed one keeps the list stable across restarts.
MODEL_CREATED = 1726070400
OWNER = "google"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    max_output_tokens: int = 8192
    thinking: ThinkingStyle = "none"
    vision: bool = True
    tools: bool = True
    # thinking == "budget": the thinkingBudget range, and whether 0 (off) is allowed besides it.
    budget_min: int = 0
    budget_max: int = 0
    can_disable: bool = False
    # thinking == "level": the thinkingLevel values this model accepts, lowest first.
    levels: tuple[str, ...] = ()
    logprobs: bool = False
    # Google answers "Penalty is not enabled for models/..." for presence/frequency penalties on
    # Gemini 2.5 and later.
    penalties: bool = False
    # An embedding model's vector size, the most outputDimensionality may ask; 0: a model that
    # generates. The two kinds share no method: each door refuses the other kind before a call.
    embedding_dimensions: int = 0

    @property
    def embeds(self) -> bool:
        return self.embedding_dimensions > 0

    def as_openai(self) -> dict[str, Any]:
        """An OpenAI model object; the extra keys are ignored by OpenAI clients."""
        head = {"id": self.id, "object": "model", "created": MODEL_CREATED, "owned_by": OWNER}
        if self.embeds:
            return {**head, "capabilities": {"embeddings": True, "dimensions": self.embedding_dimensions}}
        return {
            **head,
            "max_output_tokens": self.max_output_tokens,
            "capabilities": {
                "embeddings": False,
                "vision": self.vision,
                "tools": self.tools,
                "reasoning": self.thinking != "none",
                "thinking_style": self.thinking,
                "logprobs": self.logprobs,
                **self._thinking_limits(),
            },
        }

    def _thinking_limits(self) -> dict[str, Any]:
        if self.thinking == "budget":
            return {
                "thinking_budget": {
                    "min": self.budget_min,
                    "max": self.budget_max,
                    "can_disable": self.can_disable,
                }
            }
        if self.thinking == "level":
            return {"thinking_levels": [level.lower() for level in self.levels]}
        return {}


def _gemini3(model_id: str, levels: tuple[str, ...] = ("LOW", "HIGH")) -> ModelInfo:
    return ModelInfo(model_id, max_output_tokens=65536, thinking="level", levels=levels)


def _gemini25(model_id: str, low: int, high: int, *, can_disable: bool) -> ModelInfo:
    return ModelInfo(
        model_id,
        max_output_tokens=65536,
        thinking="budget",
        budget_min=low,
        budget_max=high,
        can_disable=can_disable,
        logprobs=True,
    )


def _embedding(model_id: str, dimensions: int) -> ModelInfo:
    return ModelInfo(model_id, vision=False, tools=False, embedding_dimensions=dimensions)


# Thinking ranges from Google's documentation: 2.5 Pro 128..32768 and cannot be off; 2.5 Flash
# 1..24576 or 0 (off); 2.5 Flash-Lite 512..24576 or 0 (its default). Gemini 3 Pro: LOW or HIGH;
# Gemini 3 Flash: MINIMAL, LOW, MEDIUM or HIGH.
BUILT_IN_MODELS: tuple[ModelInfo, ...] = (
    _gemini3("gemini-3-pro-preview"),
    _gemini3("gemini-3-flash-preview", ("MINIMAL", "LOW", "MEDIUM", "HIGH")),
    _gemini25("gemini-2.5-pro", 128, 32768, can_disable=False),
    _gemini25("gemini-2.5-flash", 1, 24576, can_disable=True),
    _gemini25("gemini-2.5-flash-lite", 512, 24576, can_disable=True),
    ModelInfo("gemini-2.0-flash-exp", max_output_tokens=8192, penalties=True),
    ModelInfo("gemini-2.0-flash", max_output_tokens=8192, logprobs=True, penalties=True),
    ModelInfo("gemini-1.5-pro", max_output_tokens=8192, logprobs=True, penalties=True),
    ModelInfo("gemini-1.5-flash", max_output_tokens=8192, logprobs=True, penalties=True),
    # Embedding models: gemini-embedding-001 makes 3072 numbers (fewer on request), Google's older
    # text-embedding-004 768.
    _embedding("gemini-embedding-001", 3072),
    _embedding("text-embedding-004", 768),
)


def _guess(model_id: str) -> ModelInfo:
    """Capabilities for an extra id from PROXY_MODELS, guessed from its family name. Unknown and
    `-latest` Gemini ids are taken as the newest family (Gemini 3: thinking levels, signatures).
    An id naming an embedding model is one: Gemini's make 3072 numbers, the older text ones 768."""
    if "embedding" in model_id:
        return _embedding(model_id, 3072 if model_id.startswith("gemini-") else 768)
    if model_id.startswith("gemini-2.5"):
        if "lite" in model_id:
            return _gemini25(model_id, 512, 24576, can_disable=True)
        if "pro" in model_id:
            return _gemini25(model_id, 128, 32768, can_disable=False)
        return _gemini25(model_id, 1, 24576, can_disable=True)
    if model_id.startswith(("gemini-1.", "gemini-2.0")):
        return ModelInfo(model_id, logprobs=True, penalties=True)
    if model_id.startswith("gemini-"):
        pro = "pro" in model_id
        return _gemini3(model_id, ("LOW", "HIGH") if pro else ("MINIMAL", "LOW", "MEDIUM", "HIGH"))
    return ModelInfo(model_id)


class Catalog:
    """An immutable lookup of the models this proxy serves, and of the aliases clients with fixed
    model names use (`PROXY_MODEL_ALIASES`: `claude-sonnet-4-5=gemini-2.5-pro`, and with a trailing
    `*` a prefix: `claude-haiku-*=gemini-2.5-flash`)."""

    def __init__(self, models: Iterable[ModelInfo], aliases: Iterable[str] = ()) -> None:
        by_id: dict[str, ModelInfo] = {}
        for info in models:
            by_id.setdefault(info.id, info)
        self._by_id: Mapping[str, ModelInfo] = MappingProxyType(by_id)
        exact: dict[str, ModelInfo] = {}
        prefixes: list[tuple[str, ModelInfo]] = []
        for entry in aliases:
            alias, sep, target = (part.strip() for part in entry.partition("="))
            found = self._find(target)
            if not sep or not alias or found is None:
                raise ValueError(
                    f"PROXY_MODEL_ALIASES: {entry!r} is not ALIAS=MODEL with a model this proxy serves "
                    "(add it to PROXY_MODELS)"
                )
            if alias.endswith("*"):
                prefixes.append((alias.removesuffix("*"), found))
            else:
                exact[alias] = found
        self._aliases: Mapping[str, ModelInfo] = MappingProxyType(exact)
        # The longest prefix wins: `claude-*` and `claude-haiku-*` may both be given.
        self._prefixes = tuple(sorted(prefixes, key=lambda pair: -len(pair[0])))
        # The list answer never changes, so it is built once: the models, then the exact aliases
        # (a prefix names no one model id to list).
        listed = [m.as_openai() for m in by_id.values()]
        listed += [{**info.as_openai(), "id": alias, "alias_of": info.id} for alias, info in exact.items()]
        self._listing = {"object": "list", "data": listed}

    @classmethod
    def with_extras(cls, extra_ids: Iterable[str], aliases: Iterable[str] = ()) -> Catalog:
        extras = [_guess(mid) for mid in extra_ids if mid]
        return cls([*BUILT_IN_MODELS, *extras], aliases)

    def _find(self, model_id: str) -> ModelInfo | None:
        info = self._by_id.get(model_id)
        if info is None and model_id.startswith("models/"):
            # Google's own spelling of a model name; accepted as a courtesy.
            info = self._by_id.get(model_id.removeprefix("models/"))
        return info

    def get(self, model_id: str) -> ModelInfo | None:
        """The model a client's id names: a model's own id, an alias, or an alias prefix."""
        info = self._find(model_id) or self._aliases.get(model_id)
        if info is None:
            info = next((target for prefix, target in self._prefixes if model_id.startswith(prefix)), None)
        return info

    def listing(self) -> dict[str, Any]:
        return self._listing

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and self.get(model_id) is not None

    def __len__(self) -> int:
        return len(self._by_id)
