"""The one boundary where Google's errors become `UpstreamError`, and those become client errors.

Google's error body: `{"error": {code, message, status, details: [RetryInfo, QuotaFailure,
ErrorInfo, ...]}}`; Code Assist sometimes wraps it in a JSON array. OAuth's token endpoint answers
`{"error": "invalid_grant", "error_description": ...}` instead.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from .. import errors
from ..errors import ProxyError
from ..redact import scrub


class Verdict(enum.Enum):
    """What the failure says about the credential, which decides what the pool does next."""

    RATE_LIMITED = "rate_limited"  # cool the credential down for retry_after, try another
    QUOTA_EXHAUSTED = "quota_exhausted"  # out for the day, try another
    CAPACITY = "capacity"  # Google's capacity, not the credential's: try another, mark nothing
    SERVER = "server"  # 5xx: try another
    UNREACHABLE = "unreachable"  # connection failed or garbage: try another
    TIMEOUT = "timeout"  # no answer in time: try another
    UNAUTHENTICATED = "unauthenticated"  # OAuth token refused: refresh once, retry
    CREDENTIAL_INVALID = "credential_invalid"  # bad key, revoked grant: disable, try another
    PERMISSION = "permission"  # this credential may not do this: try another
    CLIENT = "client"  # the request itself is wrong: answer the client, retrying cannot help


# A timeout is not retried elsewhere: a slow model is slow on every credential, and N retries
# would make the client wait N times the timeout.
RETRY_ELSEWHERE: Final = frozenset(
    {
        Verdict.RATE_LIMITED,
        Verdict.QUOTA_EXHAUSTED,
        Verdict.CAPACITY,
        Verdict.SERVER,
        Verdict.UNREACHABLE,
        Verdict.CREDENTIAL_INVALID,
        Verdict.PERMISSION,
        Verdict.UNAUTHENTICATED,
    }
)

_DISABLING_REASONS: Final = frozenset({"API_KEY_INVALID", "CONSUMER_INVALID", "API_KEY_SERVICE_BLOCKED"})
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
# "Please retry in 58.934310785s." (AI Studio), "Your quota will reset after 58s." (Code Assist)
_MESSAGE_DELAY = re.compile(r"(?:retry in|reset after)\s+(\d+(?:\.\d+)?)\s*s", re.IGNORECASE)
# gemini-cli treats a retry delay this long as a spent quota rather than a rate limit.
LONG_DELAY_SECONDS: Final = 300.0


@dataclass(eq=False)
class UpstreamError(Exception):
    verdict: Verdict
    status: int  # Google's HTTP status, 0 when no answer came
    message: str
    google_status: str = ""
    reason: str = ""
    retry_after: float | None = None
    quota_ids: tuple[str, ...] = field(default_factory=tuple)
    consumer: str = ""  # "projects/<number>": the Google project whose quota was hit
    # False for what the proxy saw itself (no answer, an unreadable one): its message is ours, not Google's.
    from_google: bool = True
    # (quotaId, quotaValue) of each QuotaFailure violation that states its limit: the pool paces by them.
    quota_values: tuple[tuple[str, int], ...] = field(default_factory=tuple)

    def is_daily(self) -> bool:
        """Google named a per-day quota (as opposed to a long per-minute delay)."""
        return self.reason == "QUOTA_EXHAUSTED" or any("PerDay" in q or "Daily" in q for q in self.quota_ids)

    def scrub(self, secrets: tuple[str, ...]) -> None:
        """Every text of Google's in this failure, with `secrets` (and secret-looking strings) redacted."""
        self.message = scrub(self.message, secrets)
        self.google_status = scrub(self.google_status, secrets)
        self.reason = scrub(self.reason, secrets)
        self.consumer = scrub(self.consumer, secrets)
        self.quota_ids = tuple(scrub(quota, secrets) for quota in self.quota_ids)
        self.quota_values = tuple((scrub(quota, secrets), value) for quota, value in self.quota_values)

    def __str__(self) -> str:
        return f"{self.status} {self.google_status or self.verdict.value}: {self.message}"


def _error_object(payload: Any) -> dict[str, Any] | None:
    if isinstance(payload, list) and payload:
        payload = payload[0]  # Code Assist's array wrapping
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else None


def precise_delay(stated: float | None, message: str) -> float | None:
    """How long a 429 really asks to wait. RetryInfo's delay is whole seconds, truncated ("58s" where
    the message says "Please retry in 58.934310785s", "0s" in a window's last second): cooling for
    exactly that brings a spent key back up to a second early. So the message's exact delay when it
    has one, else the stated delay plus a second."""
    match = _MESSAGE_DELAY.search(message)
    said = match.group(1) if match else None
    if said is not None and "." in said and (stated is None or stated <= float(said) < stated + 1):
        return float(said)
    base = stated if stated is not None else (float(said) if said is not None else None)
    if base is None:
        return None
    return base + 1.0 if base == int(base) else base


def _quota_value(value: Any) -> int | None:
    """QuotaFailure's `quotaValue`: a decimal string ("15"), at times a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value) or None
    return None


def parse_delay(text: Any) -> float | None:
    if isinstance(text, str) and (match := _DELAY.match(text)):
        return float(match.group(1))
    return None


def error_status(error: Any) -> int | None:
    """The HTTP status an error object names in its `code`; None when it names none usable."""
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599 else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a list Google should have sent; anything else counts as none."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def from_response(status: int, body: bytes, *, secrets: tuple[str, ...] = ()) -> UpstreamError:
    """Classify one non-2xx answer from Google."""
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    return from_payload(status, payload, body, secrets=secrets)


def from_payload(status: int, payload: Any, body: bytes, *, secrets: tuple[str, ...] = ()) -> UpstreamError:
    """Classify Google's error `payload` (parsed from `body`), whatever its shape."""
    error = _error_object(payload)
    if error is None:
        if isinstance(payload, dict) and payload.get("error") == "invalid_grant":
            return UpstreamError(
                Verdict.CREDENTIAL_INVALID,
                status,
                "the OAuth refresh token was revoked or expired (invalid_grant)",
                reason="invalid_grant",
            )
        snippet = scrub(body[:200].decode("utf-8", "replace"), secrets)
        verdict = Verdict.SERVER if status >= 500 else Verdict.UNREACHABLE
        return UpstreamError(verdict, status, f"unexpected answer from Google: {snippet!r}")
    message = str(error.get("message", ""))
    google_status = str(error.get("status", ""))
    reason = ""
    consumer = ""
    retry_after: float | None = None
    quota_ids: list[str] = []
    quota_values: list[tuple[str, int]] = []
    for detail in _dicts(error.get("details")):
        kind = str(detail.get("@type", ""))
        if kind.endswith("ErrorInfo"):
            reason = reason or str(detail.get("reason", ""))
            metadata = detail.get("metadata")
            if isinstance(metadata, dict) and isinstance(metadata.get("consumer"), str):
                consumer = metadata["consumer"]
        elif kind.endswith("RetryInfo"):
            retry_after = parse_delay(detail.get("retryDelay"))
        elif kind.endswith("QuotaFailure"):
            for violation in _dicts(detail.get("violations")):
                quota_id = str(violation.get("quotaId", ""))
                quota_ids.append(quota_id)
                value = _quota_value(violation.get("quotaValue"))
                if value is not None:
                    quota_values.append((quota_id, value))
    verdict = _verdict(status, google_status, reason, retry_after, quota_ids)
    if status == 429:
        retry_after = precise_delay(retry_after, message)
    failure = UpstreamError(
        verdict,
        status,
        message,
        google_status,
        reason,
        retry_after,
        tuple(quota_ids),
        consumer,
        quota_values=tuple(quota_values),
    )
    failure.scrub(secrets)  # every text of Google's: any of them may quote what it was sent
    return failure


def _verdict(
    status: int, google_status: str, reason: str, retry_after: float | None, quota_ids: list[str]
) -> Verdict:
    if reason in _DISABLING_REASONS:
        return Verdict.CREDENTIAL_INVALID
    if status == 429:
        if reason == "MODEL_CAPACITY_EXHAUSTED":
            return Verdict.CAPACITY
        daily = reason == "QUOTA_EXHAUSTED" or any("PerDay" in q or "Daily" in q for q in quota_ids)
        if daily or (retry_after is not None and retry_after > LONG_DELAY_SECONDS):
            return Verdict.QUOTA_EXHAUSTED
        return Verdict.RATE_LIMITED
    if status == 401:
        return Verdict.UNAUTHENTICATED
    if status == 403:
        if reason in {"CONSUMER_INVALID", "SERVICE_DISABLED"}:
            return Verdict.CREDENTIAL_INVALID
        return Verdict.PERMISSION
    if status == 504 or google_status == "DEADLINE_EXCEEDED":
        return Verdict.TIMEOUT
    if status >= 500:
        return Verdict.SERVER
    return Verdict.CLIENT


def to_proxy_error(error: UpstreamError) -> ProxyError:
    """The client's view of a failure nobody could recover from."""
    if not error.from_google:
        text = error.message
    else:
        text = f"Gemini: {error.message}" if error.message else "Gemini refused the request."
    match error.verdict:
        case Verdict.RATE_LIMITED:
            return errors.rate_limited(f"Rate limited by Google. {text}", error.retry_after)
        case Verdict.QUOTA_EXHAUSTED:
            return errors.rate_limited(f"Google quota exhausted. {text}", error.retry_after, daily=True)
        case Verdict.CAPACITY:
            return errors.rate_limited(
                f"Google has no capacity for this model now. {text}", error.retry_after, overloaded=True
            )
        case Verdict.TIMEOUT:
            return errors.upstream_timeout(f"Google did not answer in time. {text}")
        case Verdict.SERVER | Verdict.UNREACHABLE if error.from_google:
            # Google's 503 UNAVAILABLE is "the model is overloaded": a door with a word for that uses it.
            return errors.upstream_error(
                f"Google failed to answer (HTTP {error.status}). {text}", overloaded=error.status == 503
            )
        case Verdict.SERVER | Verdict.UNREACHABLE:
            return errors.upstream_error(text)
        case Verdict.CREDENTIAL_INVALID:
            return errors.no_credentials(f"Every usable credential was rejected by Google. {text}")
        case Verdict.PERMISSION | Verdict.UNAUTHENTICATED:
            return errors.permission_denied(f"Google refused the credential's permission. {text}")
        case Verdict.CLIENT:
            if error.status == 404:
                return ProxyError(404, text, param="model", code="model_not_found")
            return ProxyError(400, text, param=None, code=None)


def unreachable(detail: str) -> UpstreamError:
    return UpstreamError(Verdict.UNREACHABLE, 0, f"Could not reach Google: {detail}.", from_google=False)


def timed_out(detail: str) -> UpstreamError:
    return UpstreamError(Verdict.TIMEOUT, 0, f"{detail}.", from_google=False)


def garbage(detail: str, status: int = 200) -> UpstreamError:
    return UpstreamError(
        Verdict.UNREACHABLE, status, f"Google's answer could not be read: {detail}.", from_google=False
    )
