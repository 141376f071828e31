"""Backends for the store contract suite. The Redis one is a real redis-server on loopback, started
once per session by these fixtures (never a system service), with persistence off."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from gemini_cli_proxy.store import MemoryStore, RedisStore, SqliteStore, StateStore

Scenario = Callable[[StateStore], Awaitable[None]]


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


@pytest.fixture(scope="session")
def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        message = (
            "redis-server is not on PATH: install it (e.g. apt-get install redis-server) to test RedisStore"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


@pytest.fixture(scope="session")
def redis_server(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer.start(redis_binary, free_port(), tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@dataclass
class Backend:
    name: str
    url: str
    make: Callable[[], StateStore]  # a new, unstarted store object over the same shared state

    async def open(self) -> StateStore:
        store = self.make()
        await store.start()
        return store

    def run(self, scenario: Scenario) -> None:
        """Run `scenario` on a started store, on a fresh event loop, and close the store after."""

        async def main() -> None:
            store = await self.open()
            try:
                await scenario(store)
            finally:
                await store.close()

        asyncio.run(main())


def _backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if name == "memory":
        return Backend(name, "memory://", MemoryStore)
    if name == "sqlite":
        path = tmp_path / "state" / "state.sqlite3"
        return Backend(name, f"sqlite:///{path}", lambda: SqliteStore(path))
    server: RedisServer = request.getfixturevalue("redis_server")
    server.flush()  # each test starts from an empty database
    return Backend(name, server.url, lambda: RedisStore(server.url))


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return _backend(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "redis"])
def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The backends whose state outlives one store object (and one process)."""
    return _backend(request.param, request, tmp_path)
