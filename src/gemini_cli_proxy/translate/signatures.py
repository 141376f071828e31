"""Keys under which thought signatures are remembered server-side. Pure.

A signature normally travels through the client inside the tool call id and in
`extra_content.google.thought_signature`. Some clients rewrite or sanitise ids (dropping the
`.sig.` suffix) or drop unknown fields, and no client can carry the signature Gemini 3 puts on a
text reply. So the proxy also remembers each signature: under the tool call's base id, and under
a hash of the reply text together with the user turns before it (so that two conversations that
got the same short reply never share a signature); the next turn looks them up when the client
brought none back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

from ..wire.openai import AssistantMessage, ChatCompletionRequest, Message, TextPart, UserMessage
from .tools import SIGNATURE_MARK, signature_of

CALL_PREFIX: Final = "call:"
TEXT_PREFIX: Final = "text:"


def call_key(call_id: str) -> str:
    return CALL_PREFIX + call_id.partition(SIGNATURE_MARK)[0]


def text_key(text: str, context: str) -> str:
    return TEXT_PREFIX + hashlib.sha256(f"{context}\0{text}".encode()).hexdigest()[:32]


class ConversationDigest:
    """A running hash of a conversation's user turns: the context a reply's text key includes."""

    __slots__ = ("_hash",)

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, message: UserMessage) -> None:
        content = message.content
        text = (
            content
            if isinstance(content, str)
            else "".join(p.text for p in content if isinstance(p, TextPart))
        )
        self._hash.update(text.encode() + b"\0")

    def value(self) -> str:
        return self._hash.copy().hexdigest()[:32]


def conversation_digest(messages: Sequence[Message]) -> str:
    digest = ConversationDigest()
    for message in messages:
        if isinstance(message, UserMessage):
            digest.add(message)
    return digest.value()


def assistant_text(message: AssistantMessage) -> str:
    content = message.content
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(part.text if isinstance(part, TextPart) else part.refusal for part in content)


def wanted_keys(req: ChatCompletionRequest) -> list[str]:
    """The keys worth looking up for `req`: calls and texts that came back without a signature."""
    keys: list[str] = []
    digest = ConversationDigest()
    for message in req.messages:
        if isinstance(message, UserMessage):
            digest.add(message)
        if not isinstance(message, AssistantMessage):
            continue
        text = assistant_text(message)
        if text:
            keys.append(text_key(text, digest.value()))
        keys.extend(
            call_key(call.id)
            for call in message.tool_calls or ()
            if signature_of(call.id, call.extra_content) is None
        )
    return keys
