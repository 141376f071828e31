"""A background task that runs an action every few seconds and once more when stopped: how work
is kept off the request path (usage counters, shared thought signatures)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


class Periodic:
    def __init__(self, action: Callable[[], Awaitable[None]], *, interval: float, name: str) -> None:
        self._action = action
        self._interval = interval
        self._name = name
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._action()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._action()
