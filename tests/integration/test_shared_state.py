"""Several instances, one state: two proxies over one Redis, two workers over one SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gemini_cli_proxy.testing import FakeGoogle, Reply

from conftest import FakeServer, Proxy, StartProxy
from support import RedisServer

CHAT = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hello"}]}
KEYS = ["key-a-11111111", "key-b-22222222", "key-c-33333333"]


def post(url: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=30)


def keys_used(fake: FakeGoogle) -> list[str | None]:
    return [r.api_key for r in fake.generate_requests()]


def check_shared_pool(urls: list[str], fake: FakeGoogle) -> None:
    """Round robin, cooldowns and disabled flags hold across everything behind `urls` (started with
    PROXY_STATE_MAX_AGE=0, so that each instance sees the others' changes on its next request)."""
    for round_ in range(6):
        assert post(urls[round_ % len(urls)]).status_code == 200
    used = keys_used(fake)
    assert sorted(used) == sorted(KEYS * 2)  # one rotation shared by all, not one each
    assert all(used[i] != used[i + 1] for i in range(len(used) - 1))

    fake.reset()
    fake.push(Reply.rate_limited(retry_delay="60s"))
    assert post(urls[0]).status_code == 200
    cooled = keys_used(fake)[0]
    for round_ in range(6):
        assert post(urls[round_ % len(urls)]).status_code == 200
    assert cooled not in keys_used(fake)[2:]

    fake.reset()
    invalid = next(key for key in KEYS if key != cooled)
    fake.api_keys = frozenset(KEYS) - {invalid}
    for round_ in range(8):
        assert post(urls[round_ % len(urls)]).status_code == 200
    assert keys_used(fake).count(invalid) == 1  # disabled after its first rejection, for every instance


def test_two_instances_share_one_redis(
    start_proxy: StartProxy, fake: FakeGoogle, redis_server: RedisServer
) -> None:
    url = redis_server.url
    redis_server.flush()
    first: Proxy = start_proxy(gemini_api_keys=KEYS, proxy_state_url=url, proxy_state_max_age=0)
    second: Proxy = start_proxy(gemini_api_keys=KEYS, proxy_state_url=url, proxy_state_max_age=0)
    check_shared_pool([first.url, second.url], fake)


def test_another_instances_news_arrives_within_the_state_max_age(
    start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path
) -> None:
    """With the default kind of setting (a snapshot of the pool kept for PROXY_STATE_MAX_AGE), the
    instance that met a 429 avoids the key at once, and the other one once its snapshot is older."""
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    first: Proxy = start_proxy(gemini_api_keys=KEYS, proxy_state_url=url, proxy_state_max_age=0.5)
    second: Proxy = start_proxy(gemini_api_keys=KEYS, proxy_state_url=url, proxy_state_max_age=0.5)
    assert post(second.url).status_code == 200
    fake.reset()
    fake.push(Reply.rate_limited(retry_delay="60s"))
    assert post(first.url).status_code == 200
    cooled = keys_used(fake)[0]
    for _ in range(4):
        assert post(first.url).status_code == 200
    assert cooled not in keys_used(fake)[2:]

    time.sleep(0.6)
    fake.reset()
    for _ in range(6):
        assert post(second.url).status_code == 200
    assert cooled not in keys_used(fake)


@pytest.fixture
def two_workers(fake_server: FakeServer, fake: FakeGoogle, tmp_path: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "GEMINI_API_KEYS": ",".join(KEYS),
        "GEMINI_API_BASE_URL": fake_server.url,
        "PROXY_STATE_URL": f"sqlite:///{tmp_path / 'state.sqlite3'}",
        "PROXY_LOG_LEVEL": "warning",
        "PROXY_STATE_MAX_AGE": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gemini_cli_proxy", "serve", "--port", "0", "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    try:
        assert line.startswith("listening on http://") and line.endswith("(2 workers)"), line
        yield line.removeprefix("listening on ").split(" ")[0]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_two_workers_share_one_sqlite_file(two_workers: str, fake: FakeGoogle) -> None:
    check_shared_pool([two_workers], fake)


def test_signatures_are_shared_through_the_store(
    start_proxy: StartProxy, fake: FakeGoogle, redis_server: RedisServer
) -> None:
    """A client that strips signatures may land on another instance for its next turn."""
    redis_server.flush()
    first = start_proxy(gemini_api_keys=KEYS[:1], proxy_state_url=redis_server.url)
    second = start_proxy(gemini_api_keys=KEYS[:1], proxy_state_url=redis_server.url)
    reply = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "Shared.", "thoughtSignature": "c2hhcmVk"}]},
                "finishReason": "STOP",
            }
        ]
    }
    fake.push(Reply.response(reply))
    ask = {"model": "gemini-3-pro-preview", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(f"{first.url}/v1/chat/completions", json=ask).status_code == 200
    time.sleep(0.8)  # the first instance writes signatures to the store in the background
    follow_up = {
        **ask,
        "messages": [
            *ask["messages"],
            {"role": "assistant", "content": "Shared."},
            {"role": "user", "content": "and?"},
        ],
    }
    assert httpx.post(f"{second.url}/v1/chat/completions", json=follow_up).status_code == 200
    turn = fake.generate_requests()[1].request["contents"][1]
    assert turn == {"role": "model", "parts": [{"text": "Shared.", "thoughtSignature": "c2hhcmVk"}]}


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_success_through_any_instance_clears_the_strikes(
    store: str, start_proxy: StartProxy, fake: FakeGoogle, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Strikes live with the cooldown in the shared store; a success through the other instance,
    after the cooldown ended, must reset them there, or the next 429 doubles a cooldown for a key
    that had served in between."""
    if store == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        redis_server.flush()
        url = redis_server.url
    else:
        url = f"sqlite:///{tmp_path / 'state.db'}"
    first, second = (
        start_proxy(gemini_api_keys=KEYS[:1], proxy_state_url=url, proxy_state_max_age=0.0) for _ in range(2)
    )
    fake.push(Reply.rate_limited(retry_delay="1.2s"))
    assert post(first.url).status_code == 429  # strike 1, struck by the first instance
    time.sleep(1.4)
    assert post(second.url).status_code == 200  # served through the other one, the cooldown over
    fake.push(Reply.rate_limited(retry_delay="1.2s"))
    assert post(first.url).status_code == 429
    # Strike 1 again (1.2 s), not strike 2 (2.4 s).
    assert post(first.url).headers["Retry-After"] == "2"


def test_stored_responses_are_found_by_every_worker(two_workers: str, fake: FakeGoogle) -> None:
    """A Responses client's next turn (previous_response_id) may reach the other worker: the stored
    response lives in the shared SQLite file, not in the worker that answered."""
    fake.push(Reply.text("First answer."))
    first = httpx.post(f"{two_workers}/v1/responses", json={"model": "gemini-2.5-flash", "input": "one"})
    assert first.status_code == 200, first.text
    response_id = first.json()["id"]
    # Fresh connections: each is handed to either worker (one listening socket each, SO_REUSEPORT).
    for _ in range(10):
        with httpx.Client() as client:
            assert client.get(f"{two_workers}/v1/responses/{response_id}").status_code == 200
    fake.push(Reply.text("Second answer."))
    with httpx.Client() as client:
        second = client.post(
            f"{two_workers}/v1/responses",
            json={"model": "gemini-2.5-flash", "input": "two", "previous_response_id": response_id},
        )
    assert second.status_code == 200, second.text
    contents = fake.generate_requests()[-1].request["contents"]
    assert [part["text"] for c in contents for part in c["parts"]] == ["one", "First answer.", "two"]
