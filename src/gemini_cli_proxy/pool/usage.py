"""Usage counters, recorded off the request path: requests append to a buffer, a background task
writes the buffer to the state store in batches."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ..periodic import Periodic
from ..store.base import StateStore, UsageEvent
from .daily import day_counts

log = logging.getLogger("gemini_cli_proxy.usage")

FLUSH_INTERVAL_SECONDS = 1.0


class UsageRecorder:
    def __init__(
        self,
        store: StateStore,
        *,
        clock: Callable[[], float],
        interval: float = FLUSH_INTERVAL_SECONDS,
        listener: Callable[[list[UsageEvent]], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._listener = listener  # sees each batch too: the pool's per-window quota counts
        self._clock = clock
        self._buffer: list[UsageEvent] = []
        self._writer = Periodic(self.flush, interval=interval, name="usage-recorder")

    def record(
        self,
        credential_id: str,
        model: str,
        *,
        tokens_in: int = 0,
        tokens_out: int = 0,
        error: str | None = None,
        requests: int = 1,
    ) -> None:
        """Cheap and synchronous: a request never waits for the store to count it. `requests=0`
        adds to a request already counted (an error in its stream)."""
        self._buffer.append(
            UsageEvent(
                credential_id,
                model,
                requests=requests,
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
            await self._store.add_counts(day_counts(batch))  # today's, for the status page
        except Exception as exc:  # counters are best effort; serving requests is not
            log.warning("could not record %d usage events: %s", len(batch), exc)
        if self._listener is not None:
            try:
                await self._listener(batch)
            except Exception as exc:
                log.warning("could not count %d usage events against quota windows: %s", len(batch), exc)

    def start(self) -> None:
        self._writer.start()

    async def stop(self) -> None:
        await self._writer.stop()
