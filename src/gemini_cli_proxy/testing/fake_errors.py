"""Google's error bodies, as the fake serves them: `{"error": {code, message, status, details?}}`.

Messages are Google's own where a capture or Google's documentation gives them (403 unregistered caller,
400 API_KEY_INVALID, 401 UNAUTHENTICATED, the 404 of aistudio-error-404-1.json, Code Assist's 429 texts);
each builder returns a fresh dict so nothing module-level is ever shared or mutated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
INVALID_JSON = "Invalid JSON payload received. Unexpected token."
UNREGISTERED_CALLER = (
    "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or "
    "other form of API consumer identity to call this API."
)
KEY_INVALID = "API key not valid. Please pass a valid API key."
UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
    "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
# Google's front end answers unknown paths with this HTML page, not JSON.
NOT_FOUND_PAGE = (
    b"<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n"
    b"  <p><b>404.</b> <ins>That\xe2\x80\x99s an error.</ins>\n"
    b"  <p>The requested URL was not found on this server.  <ins>That\xe2\x80\x99s all we know.</ins>\n"
)

# api -> (ErrorInfo.domain, metadata.service): Code Assist errors name their own front end.
_DOMAINS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "aistudio": ("googleapis.com", "generativelanguage.googleapis.com"),
        "codeassist": ("cloudcode-pa.googleapis.com", "cloudcode-pa.googleapis.com"),
        "vertex": ("googleapis.com", "aiplatform.googleapis.com"),
    }
)
_PERMISSION_MESSAGES: Mapping[str, str] = MappingProxyType(
    {
        "PERMISSION_DENIED": "The caller does not have permission",
        "CONSUMER_INVALID": "Permission denied: Consumer 'projects/0' has been suspended.",
        "SERVICE_DISABLED": (
            "Generative Language API has not been used in project 0 before or it is disabled. Enable it by "
            "visiting the API console, then retry."
        ),
        "VALIDATION_REQUIRED": "Verify your account to continue.",
        "IAM_PERMISSION_DENIED": "Permission 'cloudaicompanion.companions.generateChat' denied on resource.",
    }
)


def error_body(
    code: int, message: str, status: str, details: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Google's error envelope; `details` is left out entirely when there are none, as Google does."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return {"error": error}


def key_invalid_body() -> dict[str, Any]:
    """400 for an API key Google does not know (the body every key-pool proxy must recognise)."""
    details: list[dict[str, Any]] = [
        {
            "@type": ERROR_INFO,
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": KEY_INVALID,
        },
    ]
    return error_body(400, KEY_INVALID, "INVALID_ARGUMENT", details)


def model_not_found_body(model: str, action: str) -> dict[str, Any]:
    """AI Studio's 404 for an unknown model, worded exactly as in aistudio-error-404-1.json."""
    message = (
        f"models/{model} is not found for API version v1beta, or is not supported for {action}. Call "
        "ModelService.ListModels to see the list of available models and their supported methods."
    )
    return error_body(404, message, "NOT_FOUND")


def project_denied_body(project: str) -> dict[str, Any]:
    """Code Assist's 403 when the envelope names a project the account may not use (or none)."""
    resource = f"//cloudaicompanion.googleapis.com/projects/{project}/locations/global"
    permission = "cloudaicompanion.companions.generateChat"
    message = f"Permission '{permission}' denied on resource '{resource}' (or it may not exist)."
    info = {
        "@type": ERROR_INFO,
        "reason": "IAM_PERMISSION_DENIED",
        "domain": "cloudaicompanion.googleapis.com",
        "metadata": {"permission": permission, "resource": resource},
    }
    return error_body(403, message, "PERMISSION_DENIED", [info])


def permission_body(api: str, reason: str) -> dict[str, Any]:
    """403 PERMISSION_DENIED with an ErrorInfo naming `reason` (CONSUMER_INVALID, VALIDATION_REQUIRED...)."""
    domain, service = _DOMAINS.get(api, _DOMAINS["aistudio"])
    message = _PERMISSION_MESSAGES.get(reason, _PERMISSION_MESSAGES["PERMISSION_DENIED"])
    info = {"@type": ERROR_INFO, "reason": reason, "domain": domain, "metadata": {"service": service}}
    return error_body(403, message, "PERMISSION_DENIED", [info])


def truncated(delay: str) -> str:
    """RetryInfo's form of a delay: "58.934s" -> "58s"."""
    return f"{int(float(delay.removesuffix('s')))}s"


def rate_limit_body(
    api: str, model: str, retry_delay: str, quota_id: str, reason: str | None
) -> dict[str, Any]:
    """429 RESOURCE_EXHAUSTED: [ErrorInfo if reason], QuotaFailure, Help, RetryInfo, as Google sends them."""
    tier = "free_tier" if "FreeTier" in quota_id else "paid_tier"
    what = "input_token_count" if "InputToken" in quota_id else "requests"
    metric = f"generativelanguage.googleapis.com/generate_content_{tier}_{what}"
    daily = "PerDay" in quota_id or "Daily" in quota_id
    value = ("250" if daily else "10") if what == "requests" else "250000"
    if reason == "MODEL_CAPACITY_EXHAUSTED":
        message = f"No capacity available for model {model} on the server"
    elif api == "codeassist":
        message = (
            f"You have exhausted your capacity on this model. Your quota will reset after {retry_delay}."
        )
    else:
        message = (
            "You exceeded your current quota, please check your plan and billing details. For more "
            "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. "
            "To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n"
            f"* Quota exceeded for metric: {metric}, limit: {value}, model: {model}\n"
            f"Please retry in {retry_delay}."
        )
    details: list[dict[str, Any]] = []
    if reason is not None:
        domain = _DOMAINS.get(api, _DOMAINS["aistudio"])[0]
        details.append(
            {"@type": ERROR_INFO, "reason": reason, "domain": domain, "metadata": {"model": model}}
        )
    violation = {
        "quotaMetric": metric,
        "quotaId": quota_id,
        "quotaDimensions": {"location": "global", "model": model},
        "quotaValue": value,
    }
    help_link = {
        "description": "Learn more about Gemini API quotas",
        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
    }
    details += [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]},
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [help_link]},
        # Whole seconds, truncated ("58s" for 58.93): the message keeps the exact delay.
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": truncated(retry_delay)},
    ]
    return error_body(429, message, "RESOURCE_EXHAUSTED", details)
