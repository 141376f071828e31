"""Test support: servers on a background event loop, OpenAI schema checks, recordings."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import orjson
import redis
from aiohttp import web

from gemini_cli_proxy.clock import Clock as AppClock
from gemini_cli_proxy.server import make_runner

FIXTURES = Path(__file__).parent / "fixtures"
T = TypeVar("T")


class LoopThread:
    """An asyncio loop in a daemon thread; real servers run here while tests use sync clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-servers", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start_app(self, app: web.Application) -> tuple[web.AppRunner, str]:
        async def start() -> tuple[web.AppRunner, str]:
            # The server's own configuration (its connection protocol and limits), not a plain runner.
            runner = make_runner(app, grace=1.0, read_timeout=30.0)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"

        return self.run(start())

    def stop_app(self, runner: web.AppRunner) -> None:
        self.run(runner.cleanup())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


@cache
def _validator(root: str) -> jsonschema.Draft202012Validator:
    document = orjson.loads((FIXTURES / "openai_schemas.json").read_bytes())
    # The document's refs are `#/$defs/...`, so the root is the document itself plus a `$ref`.
    return jsonschema.Draft202012Validator({**document, "$ref": f"#/$defs/{root}"})


def assert_schema(instance: Any, root: str) -> None:
    """Validate `instance` against OpenAI's published schema `root` (e.g. CreateChatCompletionResponse)."""
    errors = sorted(_validator(root).iter_errors(instance), key=lambda e: list(e.absolute_path))
    assert not errors, f"{root} schema violations: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
    )


# The full extraction the fixture copy was taken from: it also has the Responses API's roots
# (Response, ResponseStreamEvent), which the fixture copy (chat, models) leaves out.
def recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((FIXTURES / f"{name}.json").read_bytes())
    return data


COMMAND = [sys.executable, "-m", "gemini_cli_proxy"]


def start_command(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """`gemini-cli-proxy ARGS` as a subprocess, once it prints its `listening on URL` line: (it, URL)."""
    process = subprocess.Popen(
        [*COMMAND, *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("listening on http://"):
        process.kill()
        raise AssertionError(f"no listening line: {line!r} {process.stderr.read() if process.stderr else ''}")
    return process, line.removeprefix("listening on ")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, binary: str, port: int, workdir: Path) -> RedisServer:
        args = [binary, "--save", "", "--appendonly", "no", "--port", str(port), "--bind", "127.0.0.1"]
        process = subprocess.Popen(
            [*args, "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        server = cls(port, process)
        deadline = time.monotonic() + 10
        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
        try:
            while True:
                if process.poll() is not None:
                    stderr = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(f"redis-server exited with {process.returncode}: {stderr}")
                try:
                    if client.ping():
                        return server
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        server.stop()
                        raise RuntimeError("redis-server did not answer PING within 10 s") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()

    def flush(self) -> None:
        with redis.Redis(host="127.0.0.1", port=self.port) as client:
            client.flushdb()


class Clock:
    """A settable wall clock for the scheduler's and the stores' `clock=`."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class ManualClock:
    """Time a test moves, for the app's `clock=` (see `clock()`): wall time (epoch seconds) and
    monotonic time move together, by `advance(seconds)` and by every `sleep(seconds)` the app awaits,
    which records the wait in `sleeps` and returns at once instead of waiting.

    `follow_real_time=False`: the clocks stand still between moves, so every time the app reads is
    exact. `True`: they also run with the machine's clock, so that what really takes time (a fake
    Google's scripted delay, a round trip) counts as it does in production. Wall time starts at the
    machine's: a Redis store expires cooldown keys by its server's clock, an hour past their end."""

    def __init__(self, *, follow_real_time: bool = False) -> None:
        self._real = follow_real_time
        self._wall_start = time.time()
        self._monotonic_start = time.monotonic()
        self.moved = 0.0  # seconds added by advance() and sleep()
        self.sleeps: list[float] = []

    def _elapsed(self) -> float:
        return time.monotonic() - self._monotonic_start if self._real else 0.0

    def time(self) -> float:
        return self._wall_start + self._elapsed() + self.moved

    def monotonic(self) -> float:
        return self._monotonic_start + self._elapsed() + self.moved

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.moved += seconds
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is

    def advance(self, seconds: float) -> None:
        self.moved += seconds

    def clock(self) -> AppClock:
        return AppClock(time=self.time, monotonic=self.monotonic, sleep=self.sleep)
