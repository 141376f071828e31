"""The end of a graceful shutdown: requests still running when the grace period ends are told to
finish now, so that each client gets a proper ending (a stream its error event and `[DONE]`, a
plain request a 503) instead of a cut connection, and the process exits soon after the grace.

aiohttp alone waits the grace, then cancels a handler and closes its connection at once (with no
chance to write), and may wait a second grace for it: a client saw a cut stream and the process
lingered for twice the grace. Handlers here catch the cancellation while `closing` is set, write
their ending, and return normally.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

# How long a request that was told to finish may take to write its ending to a slow client.
ENDING_SECONDS: Final = 0.5


class Drain:
    """The requests in flight, for the one moment they must all end."""

    __slots__ = ("_grace", "_tasks", "_timer", "closing")

    def __init__(self, grace: float) -> None:
        self._grace = grace
        self._tasks: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.closing = False

    def track(self, task: asyncio.Task[object]) -> None:
        self._tasks.add(task)

    def untrack(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)

    def begin(self) -> None:
        """Shutdown has begun: the grace period starts now."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._grace, self.end_grace)

    def end_grace(self) -> None:
        self.closing = True
        for task in list(self._tasks):
            task.cancel("the server is shutting down")

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def ended(self) -> bool:
        """True when the current task's cancellation is the shutdown's (not a client leaving):
        it is then taken back, and the caller writes its ending."""
        task = asyncio.current_task()
        if not self.closing or task is None:
            return False
        task.uncancel()
        return True


DRAIN = web.AppKey("drain", Drain)


async def _begin(app: web.Application) -> None:
    app[DRAIN].begin()


async def _stop_timer(app: web.Application) -> None:
    app[DRAIN].cancel_timer()


def install(app: web.Application, grace: float) -> None:
    """Give `app` a Drain whose grace starts when the app's shutdown does."""
    app[DRAIN] = Drain(grace)
    app.on_shutdown.append(_begin)
    app.on_cleanup.append(_stop_timer)
