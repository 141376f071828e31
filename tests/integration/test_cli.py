"""The real command: `gemini-cli-proxy serve` and `fake-upstream` as subprocesses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import COMMAND, start_command


def _stop(process: subprocess.Popen[str]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()


@pytest.fixture
def fake_process() -> Iterator[str]:
    process, url = start_command(["fake-upstream", "--port", "0", "--stream-chunks", "4"], {})
    yield url
    _stop(process)


def test_serve_answers_and_stops_cleanly_on_sigterm(fake_process: str, tmp_path: Path) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text(f'GEMINI_API_BASE_URL = "{fake_process}"\nPROXY_API_KEYS = ["sk-from-file"]\n')
    process, url = start_command(
        ["serve", "--port", "0", "--config", str(config)],
        {"GEMINI_API_KEYS": "cli-test-key-1", "PROXY_STATE_URL": "memory://", "PROXY_SHUTDOWN_GRACE": "5"},
    )
    try:
        assert url.startswith("http://127.0.0.1:")
        headers = {"Authorization": "Bearer sk-from-file"}
        body = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "from the cli"}]}
        reply = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers).json()
        assert reply["choices"][0]["message"]["content"] == "Echo: from the cli"
        streamed = httpx.post(f"{url}/v1/chat/completions", json={**body, "stream": True}, headers=headers)
        assert streamed.text.endswith("data: [DONE]\n\n")
    finally:
        assert _stop(process) == 0
    assert process.stderr is not None
    logs = process.stderr.read()
    assert "path=/v1/chat/completions status=200" in logs and "request_id=" in logs
    assert "cli-test-key-1" not in logs and "sk-from-file" not in logs
    first = logs.splitlines()[0]
    assert first.startswith("gemini-cli-proxy: 1 credential (primary: 1 AI Studio key); state: memory"), first


def test_in_flight_stream_finishes_during_shutdown(tmp_path: Path) -> None:
    fake, fake_url = start_command(
        ["fake-upstream", "--port", "0", "--stream-chunks", "5", "--stream-delay", "0.2"], {}
    )
    process, url = start_command(
        ["serve", "--port", "0"],
        {"GEMINI_API_KEYS": "k-123456789", "GEMINI_API_BASE_URL": fake_url, "PROXY_STATE_URL": "memory://"},
    )
    result: dict[str, str] = {}

    def client() -> None:
        body = {
            "model": "gemini-2.5-flash",
            "stream": True,
            "messages": [{"role": "user", "content": "a b c d e"}],
        }
        result["text"] = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30).text

    worker = threading.Thread(target=client)
    worker.start()
    time.sleep(0.4)  # the stream is under way
    try:
        assert _stop(process) == 0
        worker.join(timeout=30)
    finally:
        _stop(fake)
    assert result["text"].endswith("data: [DONE]\n\n") and '"finish_reason":"stop"' in result["text"]


def test_refuses_public_bind_without_keys() -> None:
    done = subprocess.run(
        [*COMMAND, "serve", "--host", "0.0.0.0", "--port", "0"],
        env={k: v for k, v in os.environ.items() if k not in {"PROXY_API_KEYS", "OPENAI_API_KEY"}},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "PROXY_API_KEYS" in done.stderr and "refusing" in done.stderr


def test_bad_setting_is_a_clear_message() -> None:
    done = subprocess.run(
        [*COMMAND, "serve"],
        env={**os.environ, "PROXY_PORT": "eighty"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "PROXY_PORT" in done.stderr


def test_a_port_in_use_is_one_clear_line(fake_process: str) -> None:
    port = fake_process.rsplit(":", 1)[1]
    done = subprocess.run(
        [*COMMAND, "serve", "--port", port],
        env={**os.environ, "GEMINI_API_KEYS": "cli-test-key-1", "PROXY_STATE_URL": "memory://"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    expected = f"gemini-cli-proxy: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert done.stderr.strip() == expected


def _closed_within(port: int, limit: float) -> float:
    """Seconds until the server closes a connection that sent half a request line; fails after `limit`."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/comp")
        started = time.monotonic()
        sock.settimeout(limit)
        try:
            while sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        except TimeoutError:
            raise AssertionError(f"the connection was still open after {limit} s") from None
        return time.monotonic() - started


def test_serve_applies_the_request_read_timeout() -> None:
    process, url = start_command(
        ["serve", "--port", "0"],
        {
            "GEMINI_API_KEYS": "k-123456789",
            "PROXY_STATE_URL": "memory://",
            "PROXY_REQUEST_READ_TIMEOUT": "0.5",
        },
    )
    try:
        assert _closed_within(int(url.rsplit(":", 1)[1]), 5) < 3
        assert httpx.get(f"{url}/health").status_code == 200
    finally:
        assert _stop(process) == 0
