"""OpenAI messages -> Gemini `systemInstruction` and `contents`. Pure.

System and developer messages go to systemInstruction, never into a turn. Roles in contents are
only `user` and `model`. All results of one step's tool calls travel in ONE user turn (Google
rejects a mismatch), kept apart from any user text that follows. Thought signatures go back on
exactly the part they came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import orjson

from ..errors import invalid_request
from ..wire.gemini_request import FunctionResponse, RequestContent, RequestPart
from ..wire.json_values import MAX_DEPTH, Path, find_unsendable, render
from ..wire.openai import (
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    FunctionMessage,
    Message,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)
from .media import InlineData, media_part
from .signatures import ConversationDigest, assistant_text, call_key, text_key
from .tools import SKIP_SIGNATURE, NameMap, google_id_of, signature_of


def _text_of(content: str | list[TextPart]) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content)


def _unsendable(value: Any, text: str) -> tuple[Path, str] | None:
    """What orjson.loads accepted but cannot be written back (it reads 1024 levels of nesting and
    writes 255; integers beyond 64 bits it reads as floats). A text shorter than MAX_DEPTH cannot
    nest that deep, so the usual small arguments are not walked at all."""
    return find_unsendable(value, max_depth=MAX_DEPTH) if len(text) > MAX_DEPTH else None


def _arguments(text: str, param: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text) if text.strip() else {}
    except orjson.JSONDecodeError:
        raise invalid_request(f"'{param}' is not valid JSON.", param=param, code="invalid_value") from None
    if not isinstance(value, dict):
        raise invalid_request(f"'{param}' must be a JSON object.", param=param, code="invalid_value")
    found = _unsendable(value, text)
    if found is not None:
        path, problem = found
        raise invalid_request(
            f"'{param}' cannot be sent to Gemini: at '{render('', path)}' {problem}.",
            param=param,
            code="invalid_value",
        )
    return value


def _tool_result(text: str) -> dict[str, Any]:
    """Gemini wants an object; a client's result is usually a string, JSON or not. JSON that Gemini
    cannot take as an object goes as the text it is: a tool's output is not the client's mistake."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"output": text}
    if _unsendable(value, text) is not None:
        return {"output": text}
    return value if isinstance(value, dict) else {"output": value}


@dataclass
class _Turn:
    """One content of the request, as far as Google's tool-turn rule cares: the function calls of
    a model turn and the answers of a tool turn, each as (param, call id)."""

    kind: str
    calls: list[tuple[str, str]] = field(default_factory=list)
    answers: list[tuple[str, str]] = field(default_factory=list)

    def record(self, message: Message, index: int) -> None:
        if isinstance(message, AssistantMessage):
            self.calls.extend(
                (f"messages[{index}].tool_calls[{position}]", call.id)
                for position, call in enumerate(message.tool_calls or ())
            )
            if message.function_call is not None:
                self.calls.append((f"messages[{index}].function_call", f"legacy_{index}"))
        elif isinstance(message, ToolMessage):
            self.answers.append((f"messages[{index}].tool_call_id", message.tool_call_id))
        elif isinstance(message, FunctionMessage):
            self.answers.append((f"messages[{index}]", ""))


def _check_answers(turns: list[_Turn]) -> None:
    """Google refuses a turn of N function calls followed by anything but a turn of exactly N
    function responses (a 400 that names nothing); refused here, naming the call or the answer."""
    for turn, following in pairwise(turns):
        calls, answers = turn.calls, following.answers
        if not calls or len(answers) == len(calls):
            continue
        if len(answers) > len(calls):
            param = answers[len(calls)][0]
            raise invalid_request(
                f"'{param}' is one answer too many: the assistant turn before it made {len(calls)} tool "
                "call(s), and each needs exactly one 'tool' message.",
                param=param,
                code="invalid_value",
            )
        answered = {call_id for _, call_id in answers}
        unanswered = [param for param, call_id in calls if call_id not in answered] or [
            param for param, _ in calls[len(answers) :]
        ]
        raise invalid_request(
            f"'{unanswered[0]}' has no 'tool' message answering it: every tool call of an assistant "
            "turn needs one, right after it and before the next user or assistant message.",
            param=unanswered[0],
            code="invalid_value",
        )


class ContentsBuilder:
    """Builds the contents of one request; holds what one message needs from earlier ones."""

    def __init__(
        self,
        names: NameMap,
        *,
        media: Mapping[str, InlineData],
        known_signatures: Mapping[str, str],
        require_signatures: bool,
        max_media_bytes: int | None = None,
    ) -> None:
        self._names = names
        self._media = media
        self._max_media_bytes = max_media_bytes
        self._known = known_signatures
        # Gemini 3 refuses a replayed first function call without its thought signature.
        self._require_signatures = require_signatures
        self._call_names: dict[str, str] = {}  # tool_call_id -> the client's function name
        self._digest = ConversationDigest()

    def build(self, req: ChatCompletionRequest) -> tuple[list[RequestPart], list[RequestContent]]:
        """(systemInstruction parts, contents)."""
        system_parts: list[RequestPart] = []
        contents: list[RequestContent] = []
        turns: list[_Turn] = []
        for index, message in enumerate(req.messages):
            if isinstance(message, SystemMessage | DeveloperMessage):
                text = _text_of(message.content)
                if text:
                    system_parts.append({"text": text})
                continue
            if isinstance(message, UserMessage):
                self._digest.add(message)
                kind, role, parts = "user", "user", self._user_parts(message, index)
            elif isinstance(message, AssistantMessage):
                kind, role, parts = "model", "model", self._assistant_parts(message, index)
            else:
                kind, role, parts = "tool", "user", [self._tool_part(message, index)]
            if not parts:
                continue  # Gemini rejects empty turns; an empty message carries nothing anyway.
            if turns and turns[-1].kind == kind:
                contents[-1]["parts"].extend(parts)
            else:
                contents.append({"role": role, "parts": parts})
                turns.append(_Turn(kind))
            turns[-1].record(message, index)
        _check_answers(turns)
        return system_parts, contents

    def _user_parts(self, message: UserMessage, index: int) -> list[RequestPart]:
        if isinstance(message.content, str):
            return [{"text": message.content}] if message.content else []
        parts: list[RequestPart] = []
        for position, part in enumerate(message.content):
            if isinstance(part, TextPart):
                if part.text:
                    parts.append({"text": part.text})
            else:
                param = f"messages[{index}].content[{position}]"
                parts.append(media_part(part, param, self._media, max_bytes=self._max_media_bytes))
        return parts

    def _assistant_parts(self, message: AssistantMessage, index: int) -> list[RequestPart]:
        parts: list[RequestPart] = []
        content = message.content
        if isinstance(content, str):
            if content:
                parts.append({"text": content})
        elif content is not None:
            texts = [part.text if isinstance(part, TextPart) else part.refusal for part in content]
            parts.extend({"text": text} for text in texts if text)
        if parts:
            # Gemini signs a text reply on its last part; the client could not carry it back.
            signature = self._known.get(text_key(assistant_text(message), self._digest.value()))
            if signature is not None:
                parts[-1]["thoughtSignature"] = signature
        calls = [
            (call.id, call.function, call.extra_content, f"messages[{index}].tool_calls[{position}].function")
            for position, call in enumerate(message.tool_calls or ())
        ]
        if message.function_call is not None:
            calls.append((f"legacy_{index}", message.function_call, None, f"messages[{index}].function_call"))
        for position, (call_id, function, extra, where) in enumerate(calls):
            self._call_names[call_id] = function.name
            param = f"{where}.arguments"
            part: RequestPart = {
                "functionCall": {
                    "name": self._names.to_gemini(function.name),
                    "args": _arguments(function.arguments, param),
                }
            }
            google_id = google_id_of(call_id)
            if google_id is not None:
                part["functionCall"]["id"] = google_id
            signature = signature_of(call_id, extra) or self._known.get(call_key(call_id))
            if signature is None and position == 0 and self._require_signatures:
                signature = SKIP_SIGNATURE  # all three sources missed: Gemini's documented bypass
            if signature is not None:
                part["thoughtSignature"] = signature
            parts.append(part)
        return parts

    def _tool_part(self, message: ToolMessage | FunctionMessage, index: int) -> RequestPart:
        if isinstance(message, FunctionMessage):
            name, text = message.name, message.content or ""
        else:
            found = self._call_names.get(message.tool_call_id) or message.name
            if found is None:
                raise invalid_request(
                    f"'messages[{index}].tool_call_id' matches no tool call of an earlier assistant message.",
                    param=f"messages[{index}].tool_call_id",
                    code="invalid_value",
                )
            name, text = found, _text_of(message.content)
        response: FunctionResponse = {"name": self._names.to_gemini(name), "response": _tool_result(text)}
        google_id = google_id_of(message.tool_call_id) if isinstance(message, ToolMessage) else None
        if google_id is not None:
            response["id"] = google_id
        return {"functionResponse": response}
