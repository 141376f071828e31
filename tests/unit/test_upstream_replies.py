"""Google's replies checked at the boundary: wrong shapes and error objects of any shape become one
classified UpstreamError, and Google's text in them is scrubbed of the credential's secrets."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gemini_cli_proxy.testing.fake_misbehaving import LENIENT_SHAPES, WRONG_SHAPES
from gemini_cli_proxy.upstream.errors import UpstreamError, Verdict, error_status, from_response
from gemini_cli_proxy.upstream.replies import code_assist_reply_of, gemini_reply

from support import recording

SECRET = "key-of-no-known-pattern-1234"


@pytest.mark.parametrize("name", sorted(WRONG_SHAPES))
def test_every_wrong_shape_is_one_upstream_error(name: str) -> None:
    raw = orjson.dumps(WRONG_SHAPES[name])
    with pytest.raises(UpstreamError) as caught:
        gemini_reply(raw, (SECRET,))
    assert caught.value.verdict in {Verdict.UNREACHABLE, Verdict.SERVER}
    with pytest.raises(UpstreamError):
        code_assist_reply_of(orjson.dumps({"response": WRONG_SHAPES[name]}), (SECRET,))


def test_recorded_replies_pass_unchanged() -> None:
    for name in ("aistudio-generate-thinking-1", "aistudio-generate-function-call-parallel-1"):
        body = recording(name)["response_body"]
        assert gemini_reply(orjson.dumps(body), ()) == body
    for event in recording("aistudio-stream-sse-thinking-1")["response_events"]:
        assert gemini_reply(orjson.dumps(event), ()) == event


def test_lenient_shapes_are_read() -> None:
    reply = gemini_reply(orjson.dumps(LENIENT_SHAPES["usage counts as strings"]), ())
    assert reply["usageMetadata"]["promptTokenCount"] == 3


def test_an_error_event_is_classified_and_scrubbed() -> None:
    event = {"error": {"code": 429, "message": f"key {SECRET} is over quota", "status": "RESOURCE_EXHAUSTED"}}
    with pytest.raises(UpstreamError) as caught:
        gemini_reply(orjson.dumps(event), (SECRET,))
    assert caught.value.verdict is Verdict.RATE_LIMITED
    assert SECRET not in caught.value.message and "…1234" in caught.value.message
    with pytest.raises(UpstreamError) as wrapped:
        code_assist_reply_of(orjson.dumps({"response": event}), (SECRET,))
    assert SECRET not in wrapped.value.message


@pytest.mark.parametrize("code", ["bad", None, 5, 99999, True, 1.5, [500], {"a": 1}])
def test_an_error_code_of_any_shape_is_read_or_reported_as_unreadable(code: Any) -> None:
    assert error_status({"code": 503}) == 503
    assert error_status({"code": code}) is None
    # Inside a 200: an answer that cannot be read, not a status the proxy makes up.
    with pytest.raises(UpstreamError) as caught:
        gemini_reply(orjson.dumps({"error": {"code": code, "message": "broken"}}), ())
    assert caught.value.verdict is Verdict.UNREACHABLE and not caught.value.from_google
    assert caught.value.message == "Google's answer could not be read: an error object without a valid code."


@pytest.mark.parametrize(
    "error",
    [
        {"code": 429, "message": "x", "details": 5},
        {"code": 429, "message": "x", "details": "text"},
        {"code": 429, "message": "x", "details": [{"@type": "x.QuotaFailure", "violations": 7}]},
        {"code": 429, "message": "x", "details": [{"@type": "x.ErrorInfo", "metadata": [1]}]},
        {"code": 429, "message": {"nested": True}, "status": ["RESOURCE_EXHAUSTED"]},
    ],
)
def test_error_details_of_any_shape_are_classified(error: dict[str, Any]) -> None:
    failure = from_response(429, orjson.dumps({"error": error}))
    assert failure.verdict is Verdict.RATE_LIMITED


def test_code_assist_errors_inside_the_envelope_or_an_array_are_classified() -> None:
    error = {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}
    for raw in (
        orjson.dumps({"response": {"error": error}, "traceId": "t"}),
        orjson.dumps({"error": error}),
        orjson.dumps([{"error": error}]),
    ):
        with pytest.raises(UpstreamError) as caught:
            code_assist_reply_of(raw, ())
        assert (caught.value.verdict, caught.value.status) == (Verdict.RATE_LIMITED, 429), raw
    with pytest.raises(UpstreamError) as wrapped:
        gemini_reply(orjson.dumps([{"error": error}]), ())
    assert wrapped.value.verdict is Verdict.RATE_LIMITED


def test_every_text_of_googles_error_is_scrubbed() -> None:
    details = [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": f"BAD {SECRET}"},
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": SECRET}]},
    ]
    body = {"error": {"code": 403, "message": f"m {SECRET}", "status": f"S {SECRET}", "details": details}}
    failure = from_response(403, orjson.dumps(body), secrets=(SECRET,))
    assert SECRET not in str(failure) and SECRET not in repr(failure)
    assert SECRET not in failure.reason and SECRET not in "".join(failure.quota_ids)
