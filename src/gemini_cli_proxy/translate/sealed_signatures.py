"""Thought signatures sealed into the one opaque field a client carries back without reading it: a
Responses API reasoning item's `encrypted_content`, an Anthropic thinking block's `signature`. Pure.

Codex CLI keeps no server state (`store: false`) and sends each turn's reasoning items back verbatim
on the next turn, `encrypted_content` included; Claude Code sends thinking blocks back, signature
included.
The proxy puts there the thought signatures of the turn (under the keys of translate/signatures.py:
`call:<call id>`, `text:<hash of the reply text and the user turns before it>`), so the next turn
can give Gemini back every signature without any server state. The content is not secret (Gemini's
signatures are opaque tokens the client already holds), only opaque: versioned, base64url JSON.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Final

import orjson

PREFIX: Final = "gcp1."  # what this proxy wrote; anything else (OpenAI's own content) is not ours


def seal(signatures: Sequence[tuple[str, str]]) -> str:
    """`encrypted_content` carrying these (key, signature) pairs."""
    raw = orjson.dumps([[key, signature] for key, signature in signatures])
    return PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unseal(content: str | None) -> list[tuple[str, str]]:
    """The (key, signature) pairs `seal` put in `content`; none from content this proxy did not
    write or that was damaged on the way (a turn without them still works: the signature store is
    the fallback, and Gemini 2.5 needs none)."""
    if not content or not content.startswith(PREFIX):
        return []
    body = content[len(PREFIX) :]
    try:
        pairs = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return []
    if not isinstance(pairs, list):
        return []
    return [
        (pair[0], pair[1])
        for pair in pairs
        if isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)
    ]
