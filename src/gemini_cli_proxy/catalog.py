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

    def as_openai(self) -> dict[str, Any]:
        """An OpenAI model object; the extra keys are ignored by OpenAI clients."""
        return {
            "id": self.id,
            "object": "model",
            "created": MODEL_CREATED,
            "owned_by": OWNER,
            "max_output_tokens": self.max_output_tokens,
            "capabilities": {
                "vision": self.vision,
                "tools": self.tools,
                "reasoning": self.thinking != "none",
                "thinking_style": self.thinking,
            },
        }


BUILT_IN_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("gemini-3-pro-preview", max_output_tokens=65536, thinking="level"),
    ModelInfo("gemini-2.5-pro", max_output_tokens=65536, thinking="budget"),
    ModelInfo("gemini-2.5-flash", max_output_tokens=65536, thinking="budget"),
    ModelInfo("gemini-2.5-flash-lite", max_output_tokens=65536, thinking="budget"),
    ModelInfo("gemini-2.0-flash-exp", max_output_tokens=8192),
    ModelInfo("gemini-2.0-flash", max_output_tokens=8192),
    ModelInfo("gemini-1.5-pro", max_output_tokens=8192),
    ModelInfo("gemini-1.5-flash", max_output_tokens=8192),
)


def _guess(model_id: str) -> ModelInfo:
    """Capabilities for an extra id from PROXY_MODELS, guessed from its family name."""
    if model_id.startswith("gemini-3"):
        return ModelInfo(model_id, max_output_tokens=65536, thinking="level")
    if model_id.startswith("gemini-2.5"):
        return ModelInfo(model_id, max_output_tokens=65536, thinking="budget")
    return ModelInfo(model_id)


class Catalog:
    """An immutable lookup of the models this proxy serves."""

    def __init__(self, models: Iterable[ModelInfo]) -> None:
        by_id: dict[str, ModelInfo] = {}
        for info in models:
            by_id.setdefault(info.id, info)
        self._by_id: Mapping[str, ModelInfo] = MappingProxyType(by_id)
        # The list answer never changes, so it is built once.
        self._listing = {"object": "list", "data": [m.as_openai() for m in by_id.values()]}

    @classmethod
    def with_extras(cls, extra_ids: Iterable[str]) -> Catalog:
        extras = [_guess(mid) for mid in extra_ids if mid]
        return cls([*BUILT_IN_MODELS, *extras])

    def get(self, model_id: str) -> ModelInfo | None:
        info = self._by_id.get(model_id)
        if info is None and model_id.startswith("models/"):
            # Google's own spelling of a model name; accepted as a courtesy.
            info = self._by_id.get(model_id.removeprefix("models/"))
        return info

    def listing(self) -> dict[str, Any]:
        return self._listing

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and self.get(model_id) is not None

    def __len__(self) -> int:
        return len(self._by_id)
