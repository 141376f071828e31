"""OAuth access tokens for gemini-cli credentials: refresh, single flight, atomic write-back."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from ..credentials import OAuthCredential
from ..store.base import StateStore
from .token_exchange import exchange_token, expiry
from .tokens import REFRESH_MARGIN_SECONDS, TokenCache

log = logging.getLogger("gemini_cli_proxy.oauth")


def write_back(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` with `data` atomically (temp file + rename), readable by its owner only."""
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as temp:
            os.fchmod(temp.fileno(), 0o600)
            temp.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


class TokenManager(TokenCache[OAuthCredential]):
    """Tokens of gemini-cli accounts, refreshed with their refresh tokens and shared between
    instances through the store."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        clock: Callable[[], float],
        store: StateStore | None = None,
    ) -> None:
        super().__init__(self._refresh, clock=clock)
        self._session = session
        self._token_url = token_url
        self._client = {"client_id": client_id, "client_secret": client_secret}
        self._store = store

    async def _shared_token(self, cred: OAuthCredential, stale: str) -> str | None:
        """A fresh token another instance already refreshed and shared through the store."""
        if self._store is None:
            return None
        raw = await self._store.get_value(f"oauth-token:{cred.id}")
        if raw is None:
            return None
        shared = orjson.loads(raw)
        if shared["access_token"] == stale or shared["expires_at"] - self._clock() <= REFRESH_MARGIN_SECONDS:
            return None
        cred.access_token, cred.expires_at = shared["access_token"], float(shared["expires_at"])
        return cred.access_token

    async def _refresh(self, cred: OAuthCredential, stale: str) -> str:
        shared = await self._shared_token(cred, stale)
        if shared is not None:
            return shared
        form = {"grant_type": "refresh_token", "refresh_token": cred.refresh_token, **self._client}
        started = self._clock()
        token, reply = await exchange_token(
            self._session,
            self._token_url,
            form,
            label=cred.label,
            secrets=cred.secrets(),
            hint="sign in again with gemini-cli",
        )
        cred.access_token = token
        cred.refreshed_at = started
        cred.expires_at = expiry(started, reply)
        cred.raw.update(
            {k: v for k, v in reply.items() if k in {"access_token", "id_token", "scope", "token_type"}}
        )
        cred.raw["expiry_date"] = int(cred.expires_at * 1000)
        if isinstance(reply.get("refresh_token"), str):  # Google may rotate it; the id stays
            cred.refresh_token = cred.raw["refresh_token"] = reply["refresh_token"]
        if cred.path is not None:
            try:
                await asyncio.to_thread(write_back, cred.path, dict(cred.raw))
            except OSError as exc:
                log.warning("could not write the refreshed token back to %s: %s", cred.path, exc.strerror)
        if self._store is not None:
            shared = orjson.dumps({"access_token": token, "expires_at": cred.expires_at}).decode()
            await self._store.set_value(
                f"oauth-token:{cred.id}", shared, ttl=max(1.0, cred.expires_at - started)
            )
        log.info("oauth token refreshed for %s", cred.label)
        return token
