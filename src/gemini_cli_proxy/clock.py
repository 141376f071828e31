"""Time as the proxy reads it, in one object a test can replace: the tests of cooldowns, deadlines
and backoffs move a clock of their own instead of sleeping."""

from __future__ import annotations

import asyncio
import time as system_time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Clock:
    # Wall-clock epoch seconds: cooldowns and quota windows are compared across instances and machines.
    time: Callable[[], float] = system_time.time
    # For deadlines and ages within one process: the wall clock may jump.
    monotonic: Callable[[], float] = system_time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


SYSTEM_CLOCK = Clock()
