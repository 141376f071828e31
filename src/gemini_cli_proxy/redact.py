"""Keeping secrets out of logs and error messages. Pure."""

from __future__ import annotations

import re
from typing import Final

# Google API keys, OAuth access tokens, refresh tokens, and bearer headers.
_SECRET_PATTERNS: Final = re.compile(
    r"AIza[0-9A-Za-z_\-]{20,}|ya29\.[0-9A-Za-z_\-.]+|1//[0-9A-Za-z_\-]{20,}|(?i:bearer)\s+[0-9A-Za-z_\-.~+/]+=*"
)


# Each pattern above starts with one of these (compared lower-cased): text with none of them needs no
# regex scan, which is most log text and costs a few µs a line.
_MARKERS: Final = ("aiza", "ya29.", "1//", "bearer")


def tail(secret: str) -> str:
    """A label for a secret: never more than its last 4 characters."""
    return f"…{secret[-4:]}" if len(secret) > 8 else "…"


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with every known and every secret-looking string replaced by a redacted label."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, tail(secret))
    lowered = text.lower()
    if not any(marker in lowered for marker in _MARKERS):
        return text
    return _SECRET_PATTERNS.sub(lambda match: "[redacted]" + tail(match.group(0)), text)
