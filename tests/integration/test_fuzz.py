"""Fuzzing the Chat Completions door over real HTTP: proxy on loopback -> fake Google.

Whatever the body, the answer is a 2xx, or a 4xx in OpenAI's error shape that names the field the
client got wrong (only a body that is not a JSON object at all may name none); never a 5xx, and
never an error or traceback in the log. Bodies are mostly valid requests with one or two fields
replaced by something wrong: a wrong type, a number no 64-bit type holds, deep nesting, a long
string, odd Unicode (lone surrogates, NUL, bidi marks), or a key removed.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemini_cli_proxy.testing import FakeGoogle

from conftest import Proxy

# About 9 s on two cores: each example is one HTTP round trip on a kept-alive connection.
EXAMPLES = 2000

MODELS = ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-3-pro-preview", "gemini-2.0-flash", "gemini-1.5-pro"]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
TOOL_NAMES = ["get_weather", "lookup", "odd name/with spaces"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# JSON that json.dumps cannot write, spliced into the body as text.
@dataclass(frozen=True)
class Raw:
    text: str


RAW_NUMBERS = [Raw("1e400"), Raw("-1e400"), Raw("1E+999"), Raw("-0"), Raw("1.0e-400"), Raw("0.1e310")]


def _encode(value: Any, raws: list[str]) -> Any:
    """`value` with each Raw swapped for a placeholder string that dumps() leaves findable."""
    if isinstance(value, Raw):
        raws.append(value.text)
        return f"@@raw{len(raws) - 1}@@"
    if isinstance(value, dict):
        return {key: _encode(item, raws) for key, item in value.items()}
    if isinstance(value, list):
        return [_encode(item, raws) for item in value]
    return value


def dumps(value: Any, *, ascii_only: bool) -> bytes:
    """JSON of anything: integers of any size, NaN / Infinity tokens, lone surrogates (escaped as
    `\\ud800`, or written raw as the invalid UTF-8 a careless client sends)."""
    raws: list[str] = []
    text = json.dumps(_encode(value, raws), ensure_ascii=ascii_only)
    for index, raw in enumerate(raws):
        text = text.replace(f'"@@raw{index}@@"', raw)
    return text.encode("utf-8", "surrogatepass")


# Valid pieces

short_text = st.text(max_size=12)
some_text = st.text(min_size=1, max_size=12)
text_part = st.builds(lambda text: {"type": "text", "text": text}, some_text)
# Sampled constants are copied: the mutations below change bodies in place.
media_part = st.sampled_from(
    [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(PNG)}", "detail": "low"}},
        {"type": "input_audio", "input_audio": {"data": b64(WAV), "format": "wav"}},
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{b64(PDF)}"}},
        {"type": "file", "file": {"file_data": b64(PDF), "filename": "a.pdf"}},
    ]
).map(copy.deepcopy)
user_message = st.builds(
    lambda content: {"role": "user", "content": content},
    st.one_of(some_text, st.lists(st.one_of(text_part, media_part), min_size=1, max_size=3)),
)
system_message = st.builds(
    lambda role, content: {"role": role, "content": content},
    st.sampled_from(["system", "developer"]),
    st.one_of(short_text, st.lists(text_part, min_size=1, max_size=2)),
)
assistant_message = st.builds(
    lambda content, reasoning: {"role": "assistant", "content": content, **reasoning},
    st.one_of(
        short_text,
        st.lists(
            st.one_of(text_part, st.builds(lambda text: {"type": "refusal", "refusal": text}, short_text)),
            min_size=1,
            max_size=2,
        ),
    ),
    st.sampled_from([{}, {"reasoning_content": "thought"}, {"name": "bot"}]),
)
arguments = st.dictionaries(
    st.sampled_from(["city", "unit", "q"]), st.one_of(short_text, st.integers()), max_size=2
)


@st.composite
def tool_exchange(draw: st.DrawFn) -> list[dict[str, Any]]:
    """An assistant turn of tool calls and one tool message answering each."""
    if draw(st.integers(0, 4)) == 0:  # the legacy form: one function_call, one `function` answer
        name = draw(st.sampled_from(TOOL_NAMES))
        call = {"name": name, "arguments": json.dumps(draw(arguments))}
        return [
            {"role": "assistant", "content": None, "function_call": call},
            {"role": "function", "name": name, "content": draw(short_text)},
        ]
    count = draw(st.integers(1, 2))
    calls = [
        {
            "id": draw(st.sampled_from([f"call_{index}", f"gcall_g{index}.sig.c2ln"])),
            "type": "function",
            "function": {"name": draw(st.sampled_from(TOOL_NAMES)), "arguments": json.dumps(draw(arguments))},
            **draw(st.sampled_from([{}, {"extra_content": {"google": {"thought_signature": "c2ln"}}}])),
        }
        for index in range(count)
    ]
    answers = [
        {
            "role": "tool",
            "tool_call_id": call["id"],
            "content": draw(
                st.one_of(short_text, st.just('{"ok": 1}'), st.lists(text_part, min_size=1, max_size=2))
            ),
        }
        for call in calls
    ]
    return [
        {"role": "assistant", "content": draw(st.sampled_from([None, "", "calling"])), "tool_calls": calls},
        *answers,
    ]


@st.composite
def conversation(draw: st.DrawFn) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append(draw(system_message))
    messages.append(draw(user_message))
    for _ in range(draw(st.integers(0, 2))):
        turn = draw(st.sampled_from(["assistant", "tools", "user"]))
        if turn == "assistant":
            messages.append(draw(assistant_message))
        elif turn == "tools":
            messages.extend(draw(tool_exchange()))
        else:
            messages.append(draw(user_message))
    return messages


tool = st.builds(
    lambda name, described: {
        "type": "function",
        "function": {
            "name": name,
            **({"description": "does things"} if described else {}),
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "n": {"type": "integer", "minimum": 0}},
                "required": ["city"],
            },
        },
    },
    st.sampled_from(TOOL_NAMES),
    st.booleans(),
)
OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "stream": st.booleans(),
    "stream_options": st.builds(lambda usage: {"include_usage": usage}, st.booleans()),
    "max_tokens": st.integers(1, 4096),
    "max_completion_tokens": st.integers(1, 4096),
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0, 1),
    "n": st.integers(1, 2),
    "stop": st.one_of(short_text, st.lists(short_text, max_size=4)),
    "presence_penalty": st.floats(-2, 2),
    "seed": st.integers(-(2**63), 2**63 - 1),
    "user": short_text,
    "metadata": st.dictionaries(short_text, short_text, max_size=2),
    "tools": st.lists(tool, min_size=1, max_size=2, unique_by=lambda t: t["function"]["name"]),
    "tool_choice": st.one_of(
        st.sampled_from(["auto", "none", "required"]),
        st.builds(lambda name: {"type": "function", "function": {"name": name}}, st.sampled_from(TOOL_NAMES)),
    ),
    "parallel_tool_calls": st.booleans(),
    "response_format": st.sampled_from(
        [
            {"type": "text"},
            {"type": "json_object"},
            {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}},
        ]
    ).map(copy.deepcopy),
    "reasoning_effort": st.sampled_from(["none", "minimal", "low", "medium", "high"]),
    "thinking_budget": st.integers(-1, 32768),
    "logprobs": st.booleans(),
    "top_logprobs": st.integers(0, 20),
    "functions": st.lists(tool.map(lambda t: t["function"]), min_size=1, max_size=2),
    "google": st.builds(lambda: {"thinking_config": {"thinking_budget": -1}}),
    "extra_body": st.builds(
        lambda: {"google": {"thinking_config": {"thinking_budget": 1024, "include_thoughts": True}}}
    ),
}


@st.composite
def valid_request(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"model": draw(st.sampled_from(MODELS)), "messages": draw(conversation())}
    # Hypothesis draws short lists: a seeded Random picks how many parameters, up to a dozen.
    rng = random.Random(draw(st.integers(0, 2**32)))
    chosen = rng.sample(sorted(OPTIONAL), rng.randint(0, 12))
    for key in chosen:
        body[key] = draw(OPTIONAL[key])
    if any(message.get("tool_calls") for message in body["messages"]) and "tools" not in body:
        body["tools"] = [draw(tool)]
    return body


# Wrong pieces


def _nest(depth: int, dicts: bool) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value} if dicts else [value]
    return value


ODD_STRINGS = [
    "\ud800",  # a lone high surrogate, escaped in the JSON
    "a\udc00b",
    "\x00",
    "nul\x00inside",
    "\u202eRTL override\u202c",
    "\u200f\u200e\u2067mixed\u2069",
    "😀👩‍👩‍👧‍👦🏳️‍🌈",
    "\ufeffbom",
    "\uffff\ufffe",
    "e\u0301\u0301\u0301",
    "",
    " ",
    "\n",
    "data:",
    "data:image/png;base64,",
    "http://",
    "https://127.0.0.1:1/x.png",
    "none",
    "function",
    "user",
    "text",
]
HUGE_NUMBERS: list[Any] = [
    2**64,
    2**64 - 1,
    -(2**70),
    -(2**63) - 1,
    2**63,
    10**30,
    -(10**30),
    2**31,
    2**31 - 1,
    -(2**31) - 1,
    1e308,
    -1e308,
    1.7976931348623157e308,
    5e-324,
    float("inf"),
    float("-inf"),
    float("nan"),
    -0.0,
    *RAW_NUMBERS,
]
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(HUGE_NUMBERS),
    st.text(max_size=8),
    st.sampled_from(ODD_STRINGS),
)
JSON_TEXTS = [
    '{"a": 18446744073709551616}',
    '{"a": -1180591620717411303424}',
    '{"a": 1e400}',
    '{"a": NaN}',
    "[1, 2]",
    "null",
    "{}",
    '{"a":' * 300 + "1" + "}" * 300,
    '{"a": ' + "[" * 1100 + "]" * 1100 + "}",
    '{"a": "\\ud800"}',
    '{"a": 1',
]
wrong_value = st.one_of(
    scalar,
    # Twice more: they are what breaks encoders.
    st.sampled_from(HUGE_NUMBERS),
    st.sampled_from(HUGE_NUMBERS),
    st.sampled_from(JSON_TEXTS),
    st.lists(scalar, max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=6), st.sampled_from(ODD_STRINGS)), scalar, max_size=3),
    st.builds(_nest, st.sampled_from([2, 50, 150, 190, 200, 260]), st.booleans()),
    st.builds(
        lambda n, c: c * n,
        st.sampled_from([1000, 20000, 100_000]),
        st.sampled_from(["x", "é", "😀", "\u202e"]),
    ),
    st.sampled_from([[], {}, "", [[]], [{}], {"type": "function"}, {"type": "text"}, {"role": "user"}]).map(
        copy.deepcopy
    ),
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in the body a value sits (the body itself excluded)."""
    items: Any = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, item in items:
        yield (*path, key)
        yield from _paths(item, (*path, key))


def _replace(body: Any, path: tuple[Any, ...], new: Any, delete: bool) -> None:
    holder = body
    for key in path[:-1]:
        holder = holder[key]
    if delete:
        del holder[path[-1]]
    else:
        holder[path[-1]] = new


def _dict_paths(body: Any) -> list[tuple[Any, ...]]:
    return [path for path in [(), *_paths(body)] if isinstance(_at(body, path), dict)]


def _at(body: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        body = body[key]
    return body


# Keys a client might add anywhere: top-level parameters, schema keywords, part and message fields.
ADDED_KEYS = [
    *sorted(OPTIONAL),
    "function_call",
    "maximum",
    "enum",
    "default",
    "properties",
    "items",
    "extra_content",
    "tool_calls",
    "name",
    "arguments",
    "image_url",
    "detail",
    "x_vendor",
]


# Parameters whose values are free JSON: no type checks them, so anything may sit deep inside.
FREE_JSON = ("tools", "functions", "response_format", "tool_choice", "metadata", "extra_body", "google")


def _pick(body: dict[str, Any], rng: random.Random) -> tuple[Any, ...]:
    """A place to change: any place in the body; or a top-level parameter first (so that each gets
    its turn), then any place inside it; or a place inside free JSON, where types check nothing."""
    how = rng.choice(["anywhere", "parameter", "free"])
    keys = sorted(key for key in body if how != "free" or key in FREE_JSON)
    if how == "anywhere" or not keys:
        return rng.choice(list(_paths(body)))
    key = rng.choice(keys)
    return rng.choice([(key,), *((key, *path) for path in _paths(body[key]))])


def _shuffle_messages(body: dict[str, Any], rng: random.Random) -> None:
    """The mistakes of a client that keeps its own history: a message lost, sent twice, or moved."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return
    index = rng.randrange(len(messages))
    how = rng.choice(["drop", "repeat", "move"])
    if how == "drop":
        del messages[index]
    elif how == "repeat":
        messages.insert(index, copy.deepcopy(messages[index]))
    else:
        messages.insert(rng.randrange(len(messages)), messages.pop(index))


@st.composite
def mutated_request(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request with one or two values replaced, removed, or added where none was, or its
    messages out of order."""
    body = draw(valid_request())
    # Hypothesis leans towards the first of a list (here always `model`): a seeded Random picks
    # places evenly instead, and stays reproducible.
    rng = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(draw(st.integers(1, 2))):
        kind = rng.choices(["replace", "add", "delete", "messages"], weights=[11, 4, 2, 3])[0]
        if kind == "messages":
            _shuffle_messages(body, rng)
        elif kind == "add":
            holder = _at(body, rng.choice(_dict_paths(body)))
            holder[draw(st.sampled_from(ADDED_KEYS))] = draw(wrong_value)
        else:
            path = _pick(body, rng)
            _replace(body, path, None if kind == "delete" else draw(wrong_value), kind == "delete")
    return body


NUMERIC = (
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "n",
    "top_logprobs",
    "thinking_budget",
    "temperature",
)


@st.composite
def planted_request(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request with a number no encoder takes, or deep nesting, planted where no type
    checks it (inside a tool's parameters, a schema, tool_choice ...) or in a numeric parameter."""
    body = draw(valid_request())
    body.setdefault("tools", [draw(tool)])
    rng = random.Random(draw(st.integers(0, 2**32)))
    value = draw(
        st.one_of(
            st.sampled_from(HUGE_NUMBERS), st.builds(_nest, st.sampled_from([150, 200, 260]), st.booleans())
        )
    )
    key = rng.choice([*(key for key in body if key in FREE_JSON), *NUMERIC])
    if key in NUMERIC:
        body[key] = value
        return body
    region = body[key]
    dicts = _dict_paths(region) if isinstance(region, dict | list) else []
    holder = _at(region, rng.choice(dicts)) if dicts else body
    holder[draw(st.sampled_from(["maximum", "default", "enum", "x"]))] = value
    return body


NOT_OBJECTS = [
    b"",
    b"  ",
    b"{",
    b"[]",
    b"null",
    b'"text"',
    b"1e400",
    b"\xff\xfe",
    b'{"model": "x",}',
    b"{'a': 1}",
]
request_body = st.one_of(
    st.sampled_from(NOT_OBJECTS),
    st.builds(lambda body, ascii_only: dumps(body, ascii_only=ascii_only), valid_request(), st.booleans()),
    st.builds(lambda body, ascii_only: dumps(body, ascii_only=ascii_only), mutated_request(), st.booleans()),
    st.builds(lambda body, ascii_only: dumps(body, ascii_only=ascii_only), mutated_request(), st.booleans()),
    st.builds(lambda body, ascii_only: dumps(body, ascii_only=ascii_only), mutated_request(), st.booleans()),
    st.builds(lambda body, ascii_only: dumps(body, ascii_only=ascii_only), planted_request(), st.booleans()),
)


# The property


class _Trouble(logging.Handler):
    """Collects every record at ERROR or above, and every record carrying a traceback."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)


@pytest.fixture
def trouble() -> Iterator[_Trouble]:
    handler = _Trouble()
    loggers = [logging.getLogger(name) for name in ("gemini_cli_proxy", "aiohttp")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def _check_answer(response: httpx.Response, body: bytes) -> None:
    status = response.status_code
    assert status < 500, f"{status} for {body[:300]!r}: {response.text[:500]}"
    if status < 300:
        if response.headers["content-type"].startswith("text/event-stream"):
            assert response.text.endswith("data: [DONE]\n\n"), response.text[-300:]
        return
    assert response.headers["content-type"].startswith("application/json"), response.text[:300]
    answer = response.json()
    assert set(answer) == {"error"}, answer
    error = answer["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str), error
    if status == 400 and error["code"] != "invalid_json":
        # A 400 that names nothing is Google's refusal passed through: the proxy should have caught it.
        assert isinstance(error["param"], str) and error["param"], f"{body[:300]!r}: {error}"


@pytest.fixture
def http(proxy: Proxy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=30) as client:  # one connection for every example
        yield client


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(body=request_body)
def test_any_body_gets_an_openai_answer_and_no_server_error(
    http: httpx.Client, fake: FakeGoogle, trouble: _Trouble, body: bytes
) -> None:
    fake.reset()  # the fake keeps every request; a few hundred examples need not pile up
    response = http.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    _check_answer(response, body)
    assert trouble.records == [], [record.getMessage() for record in trouble.records]
