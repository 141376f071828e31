"""Access tokens kept on their credentials, and the one way a refused token is replaced.

OAuth (gemini-cli accounts, refreshed at Google's token endpoint) and service accounts (Vertex, a
signed JWT exchanged) mint tokens differently, and keep them alike: on the credential, until
REFRESH_MARGIN_SECONDS before they expire, one mint at a time per credential. A call that Google
answers 401 gets one fresh token and one retry (Google may revoke a token before its expiry).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from contextlib import aclosing
from typing import Any, Generic, Protocol, TypeVar

from .client import Events
from .errors import UpstreamError, Verdict
from .singleflight import SingleFlight

# Refresh this long before expiry, so a token never dies in the middle of a long stream's start.
REFRESH_MARGIN_SECONDS = 300.0


class HoldsToken(Protocol):
    """A credential that carries its current access token."""

    id: str
    access_token: str
    expires_at: float  # epoch seconds; 0 = none yet


Cred = TypeVar("Cred", bound=HoldsToken)
Result = TypeVar("Result")


class TokenCache(Generic[Cred]):
    """Hands out valid access tokens; concurrent callers share one mint per credential.

    `mint(cred, refused)` gets a new token and stores it on `cred`; `refused` is the token Google
    refused, if any (an instance sharing tokens through the store must not hand that one back)."""

    def __init__(
        self, mint: Callable[[Cred, str], Coroutine[Any, Any, str]], *, clock: Callable[[], float]
    ) -> None:
        self._mint = mint
        self._clock = clock  # wall clock: expiries are epoch times
        self._mints: SingleFlight[str] = SingleFlight()

    def is_fresh(self, cred: Cred) -> bool:
        return bool(cred.access_token) and cred.expires_at - self._clock() > REFRESH_MARGIN_SECONDS

    async def access_token(self, cred: Cred, *, force: bool = False, stale: str = "") -> str:
        """A token for `cred`. `force` mints even when the token looks fresh, unless it already
        differs from `stale` (the one Google refused): another request replaced it meanwhile."""
        if not force and self.is_fresh(cred):
            return cred.access_token
        if force and stale and cred.access_token and cred.access_token != stale:
            return cred.access_token
        refused = stale or cred.access_token
        return await self._mints.run(cred.id, lambda: self._mint(cred, refused))


def _refused(failure: UpstreamError) -> bool:
    return failure.verdict is Verdict.UNAUTHENTICATED


async def call_with_token(
    tokens: TokenCache[Cred], cred: Cred, call: Callable[[str], Awaitable[Result]]
) -> Result:
    """`call(token)`; when Google answers 401, once more with a fresh token."""
    token = await tokens.access_token(cred)
    try:
        return await call(token)
    except UpstreamError as failure:
        if not _refused(failure):
            raise
    return await call(await tokens.access_token(cred, force=True, stale=token))


async def stream_with_token(
    tokens: TokenCache[Cred], cred: Cred, open_stream: Callable[[str], Events]
) -> Events:
    """The events of `open_stream(token)`; when Google answers 401 before the first event, those of
    a second stream with a fresh token. The stream in use is always closed, also when the caller
    stops early (a client that goes away mid-stream closes Google's response too)."""
    token = await tokens.access_token(cred)
    events = open_stream(token)
    async with aclosing(events):
        try:
            first = await anext(events)
        except StopAsyncIteration:
            return
        except UpstreamError as failure:
            if not _refused(failure):
                raise
            first = None
        if first is not None:
            del open_stream  # an open stream holds only what it relays, not the request it sent
            yield first
            async for batch in events:
                yield batch
            return
    retry = open_stream(await tokens.access_token(cred, force=True, stale=token))
    del open_stream
    async with aclosing(retry):
        async for batch in retry:
            yield batch
