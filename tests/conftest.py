"""Shared fixtures: one fake Google and real proxies on loopback, driven by the openai SDK."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web

from gemini_cli_proxy.app import create_app
from gemini_cli_proxy.clock import SYSTEM_CLOCK, Clock
from gemini_cli_proxy.settings import Settings
from gemini_cli_proxy.testing import FakeGoogle, create_fake_app

from support import LoopThread, RedisServer, free_port

# Settings the machine's environment might carry; every test starts without them.
_SETTING_PREFIXES = ("PROXY_", "GEMINI_", "VERTEX_", "GCP_", "GOOGLE_", "CODE_ASSIST_", "OPENAI_")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith(_SETTING_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no real ~/.gemini/oauth_creds.json


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@dataclass
class FakeServer:
    fake: FakeGoogle
    url: str


@pytest.fixture(scope="session")
def fake_server(loop_thread: LoopThread) -> Iterator[FakeServer]:
    fake = FakeGoogle()
    runner, url = loop_thread.start_app(create_fake_app(fake))
    yield FakeServer(fake, url)
    loop_thread.stop_app(runner)


@pytest.fixture
def fake(fake_server: FakeServer) -> FakeGoogle:
    fake = fake_server.fake
    fake.reset()
    # Tests may change these; each starts from the defaults.
    fake.api_keys = None
    fake.missing_models.clear()
    fake.default_stream_chunks = 3
    fake.stream_delay = 0.0
    fake.first_byte_delay = 0.0
    return fake


@dataclass
class Proxy:
    url: str
    app: web.Application
    settings: Settings

    def client(self, api_key: str = "no-key-needed", **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, **kwargs)

    def async_client(self, api_key: str = "no-key-needed") -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0)


StartProxy = Callable[..., Proxy]


def proxy_settings(fake_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "gemini_api_keys": ["test-key-0001"],
        "gemini_api_base_url": fake_url,
        "code_assist_endpoint": fake_url,
        "google_oauth_token_url": f"{fake_url}/token",
        "gemini_oauth_creds": [],
        "proxy_state_url": "memory://",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def start_proxy(loop_thread: LoopThread, fake: FakeGoogle, fake_server: FakeServer) -> Iterator[StartProxy]:
    runners: list[web.AppRunner] = []

    def start(*, clock: Clock = SYSTEM_CLOCK, **overrides: Any) -> Proxy:
        """A proxy with these settings (see proxy_settings); `clock`: the app's time (see
        support.ManualClock), so that a test can move it instead of sleeping."""
        settings = proxy_settings(fake_server.url, **overrides)
        app = create_app(settings, clock=clock)
        runner, url = loop_thread.start_app(app)
        runners.append(runner)
        return Proxy(url, app, settings)

    yield start
    for runner in runners:
        loop_thread.stop_app(runner)


@pytest.fixture
def proxy(start_proxy: StartProxy) -> Proxy:
    return start_proxy()


@pytest.fixture
def client(proxy: Proxy) -> Iterator[openai.OpenAI]:
    with proxy.client() as sdk:
        yield sdk


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


@pytest.fixture(params=["memory", "sqlite", "redis"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A PROXY_STATE_URL of each kind, with state of this test's own: a new SQLite file, or a key
    prefix of its own in the session's real redis-server."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'state.sqlite3'}"
    server: RedisServer = request.getfixturevalue("redis_server")
    return f"{server.url}?prefix=test-{uuid.uuid4().hex}:"
