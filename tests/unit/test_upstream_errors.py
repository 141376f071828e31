"""Google's errors -> verdicts -> the client's OpenAI errors (CONTRACT.md's table)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gemini_cli_proxy.upstream.errors import Verdict, from_response, to_proxy_error
from gemini_cli_proxy.wire.openai import error_type

from support import recording


def google_error(
    code: int, status: str, message: str = "m", details: list[dict[str, Any]] | None = None
) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return orjson.dumps({"error": error})


RETRY = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}


def quota(quota_id: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": quota_id}]}


def info(reason: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "googleapis.com"}


def test_per_minute_rate_limit_carries_retry_after() -> None:
    body = google_error(
        429, "RESOURCE_EXHAUSTED", details=[quota("GenerateRequestsPerMinutePerProjectPerModel"), RETRY]
    )
    failure = from_response(429, body)
    # RetryInfo's whole seconds are truncated: a second more, so a spent quota is not tried early.
    assert failure.verdict is Verdict.RATE_LIMITED and failure.retry_after == 38.0
    error = to_proxy_error(failure)
    assert (error.status, error_type(error.status), error.code) == (429, "requests", "rate_limit_exceeded")
    assert error.headers() == {"Retry-After": "38"}


@pytest.mark.parametrize(
    "details",
    [
        [quota("GenerateRequestsPerDayPerProjectPerModel-FreeTier"), RETRY],
        [info("QUOTA_EXHAUSTED")],
        [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3600s"}],
    ],
)
def test_daily_exhaustion_is_insufficient_quota(details: list[dict[str, Any]]) -> None:
    failure = from_response(429, google_error(429, "RESOURCE_EXHAUSTED", details=details))
    assert failure.verdict is Verdict.QUOTA_EXHAUSTED
    assert to_proxy_error(failure).code == "insufficient_quota"


def test_model_capacity_is_googles_not_the_credentials() -> None:
    failure = from_response(
        429, google_error(429, "RESOURCE_EXHAUSTED", details=[info("MODEL_CAPACITY_EXHAUSTED")])
    )
    assert failure.verdict is Verdict.CAPACITY


def test_code_assist_array_wrapped_error() -> None:
    body = b"[" + google_error(429, "RESOURCE_EXHAUSTED", details=[RETRY]) + b"]"
    assert from_response(429, body).retry_after == 38.0


@pytest.mark.parametrize(
    ("retry_info", "message", "expected"),
    [
        ("58s", "Please retry in 58.934310785s.", 58.934310785),  # the message's exact delay
        ("58s", "Please retry in 58s.", 59.0),  # whole seconds either way: one more
        ("0s", "Please retry in 0.412s.", 0.412),  # a window's last second
        ("0s", "no delay in words", 1.0),
        ("7s", "Your quota will reset after 7.5s.", 7.5),  # Code Assist's wording
        ("7s", "Please retry in 31.2s.", 8.0),  # a message that disagrees is not believed
        ("2.5s", "", 2.5),  # a delay with a fraction is already exact
    ],
)
def test_retry_delays_are_rounded_up_to_when_the_quota_resets(
    retry_info: str, message: str, expected: float
) -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_info}]
    body = orjson.dumps(
        {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": details}}
    )
    assert from_response(429, body).retry_after == pytest.approx(expected)


@pytest.mark.parametrize(
    ("status", "google_status", "reason", "verdict"),
    [
        (400, "INVALID_ARGUMENT", "API_KEY_INVALID", Verdict.CREDENTIAL_INVALID),
        (403, "PERMISSION_DENIED", "CONSUMER_INVALID", Verdict.CREDENTIAL_INVALID),
        (403, "PERMISSION_DENIED", "", Verdict.PERMISSION),
        (401, "UNAUTHENTICATED", "", Verdict.UNAUTHENTICATED),
        (500, "INTERNAL", "", Verdict.SERVER),
        (503, "UNAVAILABLE", "", Verdict.SERVER),
        (504, "DEADLINE_EXCEEDED", "", Verdict.TIMEOUT),
        (400, "INVALID_ARGUMENT", "", Verdict.CLIENT),
        (404, "NOT_FOUND", "", Verdict.CLIENT),
    ],
)
def test_classification(status: int, google_status: str, reason: str, verdict: Verdict) -> None:
    details = [info(reason)] if reason else None
    assert from_response(status, google_error(status, google_status, details=details)).verdict is verdict


@pytest.mark.parametrize(
    ("verdict_status", "expected"),
    [
        (500, (502, "server_error", "upstream_error")),
        (504, (504, "server_error", "upstream_timeout")),
        (403, (403, "permission_error", "permission_denied")),
    ],
)
def test_contract_mapping(verdict_status: int, expected: tuple[int, str, str]) -> None:
    error = to_proxy_error(from_response(verdict_status, google_error(verdict_status, "X")))
    assert (error.status, error_type(error.status), error.code) == expected


def test_recorded_400_passes_googles_message_through() -> None:
    rec = recording("aistudio-error-400-4")
    error = to_proxy_error(from_response(400, orjson.dumps(rec["response_body"])))
    assert error.status == 400 and error_type(error.status) == "invalid_request_error"
    assert "Penalty is not enabled" in error.message


def test_recorded_404_is_model_not_found() -> None:
    rec = recording("aistudio-error-404-1")
    error = to_proxy_error(from_response(404, orjson.dumps(rec["response_body"])))
    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")


def test_garbage_is_a_bad_gateway_and_secrets_are_scrubbed() -> None:
    key = "AIzaSyA1234567890abcdefghijklmnopqrstu"
    failure = from_response(502, f"<html>oops {key}</html>".encode())
    error = to_proxy_error(failure)
    assert error.status == 502 and key not in error.message and "<html>" in error.message
    message = f"API key {key} not valid, token ya29.a0AfH6SMBabcdef"
    scrubbed = to_proxy_error(from_response(400, google_error(400, "INVALID_ARGUMENT", message))).message
    assert key not in scrubbed and "ya29.a0AfH6SMBabcdef" not in scrubbed


def test_oauth_invalid_grant() -> None:
    body = orjson.dumps({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    assert from_response(400, body).verdict is Verdict.CREDENTIAL_INVALID
