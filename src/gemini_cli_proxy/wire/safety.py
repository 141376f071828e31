"""Gemini's safetySettings: the categories and thresholds Google takes, and the PROXY_SAFETY_SETTINGS
setting that says which every request carries. Pure."""

from __future__ import annotations

from typing import Final

from typing_extensions import TypedDict  # pydantic (settings) needs this one on Python < 3.12

# The categories every Gemini model takes a threshold for; CIVIC_INTEGRITY only newer ones, so it
# is set only when named explicitly.
HARM_CATEGORIES: Final = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)
NAMED_CATEGORIES: Final = (*HARM_CATEGORIES, "HARM_CATEGORY_CIVIC_INTEGRITY")
THRESHOLDS: Final = frozenset(
    {"OFF", "BLOCK_NONE", "BLOCK_ONLY_HIGH", "BLOCK_MEDIUM_AND_ABOVE", "BLOCK_LOW_AND_ABOVE"}
)


class SafetySetting(TypedDict):
    category: str
    threshold: str


def parse_safety_settings(spec: str) -> list[SafetySetting] | None:
    """The safetySettings every request carries, from the PROXY_SAFETY_SETTINGS setting:
    `default` (send none: Google's defaults), one threshold for every category (e.g. `OFF`),
    or `CATEGORY=THRESHOLD` pairs, comma-separated (the rest left at Google's defaults)."""
    text = spec.strip()
    if text.lower() == "default":
        return None
    if "=" not in text:
        threshold = text.upper()
        if threshold not in THRESHOLDS:
            raise ValueError(f"unknown safety threshold {text!r}; use one of {', '.join(sorted(THRESHOLDS))}")
        return [{"category": category, "threshold": threshold} for category in HARM_CATEGORIES]
    settings: list[SafetySetting] = []
    for pair in text.split(","):
        category, _, threshold = pair.partition("=")
        name = category.strip().upper()
        name = name if name.startswith("HARM_CATEGORY_") else f"HARM_CATEGORY_{name}"
        if name not in NAMED_CATEGORIES or threshold.strip().upper() not in THRESHOLDS:
            raise ValueError(f"invalid safety setting {pair.strip()!r}")
        settings.append({"category": name, "threshold": threshold.strip().upper()})
    return settings
