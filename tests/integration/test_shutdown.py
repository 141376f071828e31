"""The end of the shutdown grace: what is still running gets a proper ending, and the process exits
within the grace plus a second (aiohttp alone cut streams and could wait twice the grace)."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from support import start_command

GRACE = 1.0


def _end(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def _fake(*args: str) -> Iterator[str]:
    process, url = start_command(["fake-upstream", "--port", "0", *args], {})
    yield url
    _end(process)


@pytest.fixture
def slow_stream_fake() -> Iterator[str]:
    """A fake Google whose streams take 20 s: the first event at once, then one every 4 s."""
    yield from _fake("--stream-chunks", "5", "--stream-delay", "4")


@pytest.fixture
def slow_answer_fake() -> Iterator[str]:
    """A fake Google that takes 20 s to answer at all."""
    yield from _fake("--first-byte-delay", "20")


def _shut_down_while_asking(fake_url: str, *, stream: bool) -> tuple[httpx.Response, float, str]:
    """SIGTERM a proxy while one request is under way: (its answer, seconds to exit, the log)."""
    process, url = start_command(
        ["serve", "--port", "0"],
        {
            "GEMINI_API_KEYS": "k-123456789",
            "GEMINI_API_BASE_URL": fake_url,
            "PROXY_STATE_URL": "memory://",
            "PROXY_SHUTDOWN_GRACE": str(GRACE),
        },
    )
    answers: list[httpx.Response] = []
    body = {"model": "gemini-2.5-flash", "stream": stream, "messages": [{"role": "user", "content": "a b c"}]}

    def ask() -> None:
        answers.append(httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30))

    client = threading.Thread(target=ask)
    try:
        client.start()
        time.sleep(0.5)  # under way, waiting on Google
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        exited = time.monotonic() - signalled
        client.join(timeout=10)
    finally:
        _end(process)
    assert process.stderr is not None
    return answers[0], exited, process.stderr.read()


def test_a_stream_still_open_at_the_end_of_the_grace_gets_an_error_event_and_done(
    slow_stream_fake: str,
) -> None:
    answer, exited, logs = _shut_down_while_asking(slow_stream_fake, stream=True)
    assert exited < GRACE + 1.0, f"exited {exited:.2f} s after SIGTERM"
    assert answer.status_code == 200
    assert '"delta":{"content":"E' in answer.text  # the part that came before
    assert answer.text.endswith('"code":"shutting_down"}}\n\ndata: [DONE]\n\n'), answer.text
    assert "Traceback" not in logs, logs


def test_a_request_still_waiting_at_the_end_of_the_grace_gets_a_503(slow_answer_fake: str) -> None:
    answer, exited, logs = _shut_down_while_asking(slow_answer_fake, stream=False)
    assert exited < GRACE + 1.0, f"exited {exited:.2f} s after SIGTERM"
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "shutting_down"
    assert answer.headers["Retry-After"] == "1"
    assert "Traceback" not in logs, logs
