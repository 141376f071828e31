"""Access tokens for Vertex AI service accounts: a signed JWT exchanged at the key file's token_uri.

The assertion is built and signed with google-auth (RFC 7523's jwt-bearer grant, as google-auth's own
service_account.Credentials does), but the exchange goes over the proxy's aiohttp session: google-auth's
refresh is a blocking HTTP call that would stall the event loop. A token is kept on its credential
as long as tokens.TokenCache keeps tokens, and concurrent callers share one exchange.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import aiohttp
from google.auth import jwt

from ..credentials import VertexServiceAccountCredential
from .token_exchange import exchange_token, expiry
from .tokens import TokenCache

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Google refuses assertions that live longer than an hour.
ASSERTION_LIFETIME_SECONDS = 3600

log = logging.getLogger("gemini_cli_proxy.service_account")


def signed_assertion(cred: VertexServiceAccountCredential, now: float) -> str:
    """The RS256 JWT that asks `cred.token_uri` for a cloud-platform access token."""
    issued = int(now)
    payload = {
        "iss": cred.client_email,
        "scope": SCOPE,
        "aud": cred.token_uri,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME_SECONDS,
    }
    token: bytes = jwt.encode(cred.signer, payload)  # type: ignore[no-untyped-call]
    return token.decode("ascii")


class ServiceAccountTokens(TokenCache[VertexServiceAccountCredential]):
    """Tokens of service accounts, minted from signed assertions."""

    def __init__(self, session: aiohttp.ClientSession, *, clock: Callable[[], float]) -> None:
        # Wall-clock time: the token endpoint checks the assertion's iat/exp against its own clock.
        super().__init__(self._mint_for, clock=clock)
        self._session = session

    async def _mint_for(self, cred: VertexServiceAccountCredential, refused: str) -> str:
        started = self._clock()
        form = {"grant_type": JWT_BEARER_GRANT, "assertion": signed_assertion(cred, started)}
        token, reply = await exchange_token(
            self._session,
            cred.token_uri,
            form,
            label=cred.label,
            secrets=cred.secrets(),
            hint="check that the key is not deleted or disabled in Google Cloud",
            refused_message=f"the token endpoint refused the service account {cred.label} (invalid_grant)",
        )
        cred.access_token = token
        cred.expires_at = expiry(started, reply)
        log.info("vertex access token minted for %s", cred.label)
        return token
