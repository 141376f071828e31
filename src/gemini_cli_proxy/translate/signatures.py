"""Keys under which thought signatures are remembered server-side. Pure.

A signature normally travels through the client inside the tool call id and in
`extra_content.google.thought_signature`. Some clients rewrite or sanitise ids (dropping the
`.sig.` suffix) or drop unknown fields, and no client can carry the signature Gemini 3 puts on a
text reply. So the proxy also remembers each signature: under the tool call's base id, and under
a hash of the reply text; the next turn looks them up when the client brought none back.
"""

from __future__ import annotations

import hashlib
from typing import Final

from ..wire.openai import AssistantMessage, ChatCompletionRequest, TextPart
from .tools import SIGNATURE_MARK, signature_of

CALL_PREFIX: Final = "call:"
TEXT_PREFIX: Final = "text:"


def call_key(call_id: str) -> str:
    return CALL_PREFIX + call_id.partition(SIGNATURE_MARK)[0]


def text_key(text: str) -> str:
    return TEXT_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:32]


def assistant_text(message: AssistantMessage) -> str:
    content = message.content
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(part.text if isinstance(part, TextPart) else part.refusal for part in content)


def wanted_keys(req: ChatCompletionRequest) -> list[str]:
    """The keys worth looking up for `req`: calls and texts that came back without a signature."""
    keys: list[str] = []
    for message in req.messages:
        if not isinstance(message, AssistantMessage):
            continue
        text = assistant_text(message)
        if text:
            keys.append(text_key(text))
        keys.extend(
            call_key(call.id)
            for call in message.tool_calls or ()
            if signature_of(call.id, call.extra_content) is None
        )
    return keys
