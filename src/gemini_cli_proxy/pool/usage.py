"""Usage counters, recorded off the request path: requests append to a buffer, a background task
writes the buffer to the state store in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ..store.base import StateStore, UsageEvent

log = logging.getLogger("gemini_cli_proxy.usage")

FLUSH_INTERVAL_SECONDS = 1.0


class UsageRecorder:
    def __init__(
        self, store: StateStore, *, clock: Callable[[], float], interval: float = FLUSH_INTERVAL_SECONDS
    ) -> None:
        self._store = store
        self._clock = clock
        self._interval = interval
        self._buffer: list[UsageEvent] = []
        self._task: asyncio.Task[None] | None = None

    def record(
        self,
        credential_id: str,
        model: str,
        *,
        tokens_in: int = 0,
        tokens_out: int = 0,
        error: str | None = None,
    ) -> None:
        """Cheap and synchronous: a request never waits for the store to count it."""
        self._buffer.append(
            UsageEvent(
                credential_id,
                model,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                errors=1 if error else 0,
                last_error=error,
                at=self._clock(),
            )
        )

    async def flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            await self._store.record_usage(batch)
        except Exception as exc:  # counters are best effort; serving requests is not
            log.warning("could not record %d usage events: %s", len(batch), exc)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="usage-recorder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
