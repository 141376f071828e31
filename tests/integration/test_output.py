"""Structured output (incl. the SDK's parse), log probabilities, safety settings and blocks."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from gemini_cli_proxy.testing import FakeGoogle, Reply

from conftest import Proxy, StartProxy
from support import assert_schema, recording


class Step(BaseModel):
    explanation: str
    output: str


class MathAnswer(BaseModel):
    steps: list[Step]
    final_answer: str


ANSWER = {"steps": [{"explanation": "add", "output": "4"}], "final_answer": "4"}


def test_sdk_parse_with_a_pydantic_model(client: openai.OpenAI, fake: FakeGoogle) -> None:
    fake.push(Reply.text(json.dumps(ANSWER)))
    completion = client.chat.completions.parse(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "2+2"}], response_format=MathAnswer
    )
    parsed = completion.choices[0].message.parsed
    assert parsed == MathAnswer.model_validate(ANSWER)
    config = fake.generate_requests()[0].request["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    schema = config["responseJsonSchema"]
    assert "responseSchema" not in config
    assert schema["properties"]["steps"]["items"] == {"$ref": "#/$defs/Step"}
    assert schema["$defs"]["Step"]["additionalProperties"] is False


def test_json_object_and_zod_style_schema(proxy: Proxy, fake: FakeGoogle) -> None:
    base = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]}
    assert (
        httpx.post(
            f"{proxy.url}/v1/chat/completions", json={**base, "response_format": {"type": "json_object"}}
        ).status_code
        == 200
    )
    zod = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["name", "tags"],
        "additionalProperties": False,
    }
    body = {
        **base,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": zod, "strict": True},
        },
    }
    assert httpx.post(f"{proxy.url}/v1/chat/completions", json=body).status_code == 200
    first, second = (r.request["generationConfig"] for r in fake.generate_requests())
    assert first["responseMimeType"] == "application/json" and "responseJsonSchema" not in first
    expected = {k: v for k, v in zod.items() if k != "$schema"}
    assert second["responseJsonSchema"] == expected
    bad = httpx.post(f"{proxy.url}/v1/chat/completions", json={**base, "response_format": {"type": "yaml"}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "response_format.type"


LOGPROBS = {
    "candidates": [
        {
            "content": {"role": "model", "parts": [{"text": "Hi there"}]},
            "finishReason": "STOP",
            "logprobsResult": {
                "topCandidates": [
                    {
                        "candidates": [
                            {"token": "Hi", "logProbability": -0.1},
                            {"token": "Hello", "logProbability": -2.5},
                        ]
                    },
                    {"candidates": [{"token": " there", "logProbability": -0.3}]},
                ],
                "chosenCandidates": [
                    {"token": "Hi", "logProbability": -0.1},
                    {"token": " there", "logProbability": -0.3},
                ],
            },
        }
    ],
    "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 2, "totalTokenCount": 4},
}


@pytest.mark.parametrize("stream", [False, True])
def test_logprobs(client: openai.OpenAI, fake: FakeGoogle, stream: bool) -> None:
    fake.push(Reply.response(LOGPROBS))
    kwargs: Any = {
        "model": "gemini-2.5-flash",
        "messages": [{"role": "user", "content": "hi"}],
        "logprobs": True,
        "top_logprobs": 2,
    }
    if stream:
        chunks = list(client.chat.completions.create(**kwargs, stream=True))
        for chunk in chunks:
            assert_schema(
                chunk.model_dump(mode="json", exclude_unset=True), "CreateChatCompletionStreamResponse"
            )
        logprobs = next(c.choices[0].logprobs for c in chunks if c.choices[0].logprobs)
    else:
        result = client.chat.completions.create(**kwargs)
        assert_schema(result.model_dump(mode="json", exclude_unset=True), "CreateChatCompletionResponse")
        logprobs = result.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    assert [(t.token, t.logprob) for t in logprobs.content] == [("Hi", -0.1), (" there", -0.3)]
    assert [alt.token for alt in logprobs.content[0].top_logprobs] == ["Hi", "Hello"]
    config = fake.generate_requests()[0].request["generationConfig"]
    assert config["responseLogprobs"] is True and config["logprobs"] == 2


def test_safety_settings_default_and_configured(start_proxy: StartProxy, fake: FakeGoogle) -> None:
    body = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]}
    for setting, expected in [
        (
            "OFF",
            {
                "HARM_CATEGORY_HARASSMENT": "OFF",
                "HARM_CATEGORY_HATE_SPEECH": "OFF",
                "HARM_CATEGORY_SEXUALLY_EXPLICIT": "OFF",
                "HARM_CATEGORY_DANGEROUS_CONTENT": "OFF",
            },
        ),
        (
            "harassment=BLOCK_ONLY_HIGH,CIVIC_INTEGRITY=BLOCK_NONE",
            {"HARM_CATEGORY_HARASSMENT": "BLOCK_ONLY_HIGH", "HARM_CATEGORY_CIVIC_INTEGRITY": "BLOCK_NONE"},
        ),
        ("default", None),
    ]:
        fake.reset()
        proxy = start_proxy(proxy_safety_settings=setting)
        assert httpx.post(f"{proxy.url}/v1/chat/completions", json=body).status_code == 200
        sent = fake.generate_requests()[0].request.get("safetySettings")
        got = {s["category"]: s["threshold"] for s in sent} if sent is not None else None
        assert got == expected


def test_bad_safety_setting_stops_start_up(start_proxy: StartProxy) -> None:
    with pytest.raises(ValueError, match="safety"):
        start_proxy(proxy_safety_settings="SOMETIMES")


@pytest.mark.parametrize("stream", [False, True])
def test_blocks_carry_the_reason_as_refusal(client: openai.OpenAI, fake: FakeGoogle, stream: bool) -> None:
    blocked = recording("vertex-generate-prompt-blocked-1")["response_body"]
    fake.push(Reply.response(blocked))
    kwargs: Any = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}]}
    if stream:
        chunks = list(client.chat.completions.create(**kwargs, stream=True))
        refusal = "".join(c.choices[0].delta.refusal or "" for c in chunks)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    else:
        choice = client.chat.completions.create(**kwargs).choices[0]
        refusal, finish = choice.message.refusal or "", [choice.finish_reason]
        assert choice.message.content == ""
    assert finish == ["content_filter"]
    assert blocked["promptFeedback"]["blockReason"] in refusal
    assert blocked["promptFeedback"]["blockReasonMessage"] in refusal
    fake.push(Reply.response(recording("aistudio-generate-safety-1")["response_body"]))
    choice = client.chat.completions.create(**kwargs).choices[0]
    assert choice.finish_reason == "content_filter" and "SAFETY" in (choice.message.refusal or "")
