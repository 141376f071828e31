"""One exchange at a Google token endpoint (a refresh token or a signed JWT for an access token),
with the refusal mapped once: a 400/401 there is about the credential, and retrying it cannot help."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from .errors import UpstreamError, Verdict, garbage
from .http import request_json

log = logging.getLogger("gemini_cli_proxy.tokens")


async def exchange_token(
    session: aiohttp.ClientSession,
    url: str,
    form: dict[str, str],
    *,
    label: str,
    secrets: tuple[str, ...],
    hint: str,
    refused_message: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """(access token, the endpoint's whole reply). A refusal disables the credential: it raises
    CREDENTIAL_INVALID with `refused_message` (default: Google's own) and logs `hint`."""
    try:
        reply = await request_json(session, "POST", url, headers={}, form=form, secrets=secrets)
    except UpstreamError as exc:
        if exc.verdict is Verdict.CREDENTIAL_INVALID or exc.status in (400, 401):
            log.error(
                "token request refused for %s (status %s: %s); the credential is disabled: %s",
                label,
                exc.status,
                exc.message,
                hint,
            )
            message = refused_message if refused_message is not None else exc.message
            raise UpstreamError(
                Verdict.CREDENTIAL_INVALID, exc.status, message, reason="invalid_grant"
            ) from None
        raise
    token = reply.get("access_token") if isinstance(reply, dict) else None
    if not isinstance(token, str) or not token:
        raise garbage("the token endpoint returned no access_token")
    return token, reply


def expiry(started: float, reply: dict[str, Any]) -> float:
    """When the token expires (epoch seconds); an hour when the endpoint does not say."""
    expires_in = reply.get("expires_in", 3600)
    return started + float(expires_in if isinstance(expires_in, int | float) else 3600)
