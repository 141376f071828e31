"""The server's side of a connection, run with server.py's real runner and fed raw bytes: how long a client
may take to send a request (PROXY_REQUEST_READ_TIMEOUT; never how long a response takes), and what a
malformed request gets (a 400 and one info line, never a traceback)."""

from __future__ import annotations

import contextlib
import gzip
import logging
import select
import socket
import time
from collections.abc import Callable, Iterator

import orjson
import pytest
from aiohttp import web

from gemini_cli_proxy.app import create_app
from gemini_cli_proxy.server import make_runner
from gemini_cli_proxy.testing import FakeGoogle

from conftest import FakeServer, proxy_settings
from support import LoopThread

READ_TIMEOUT = 0.5
SLACK = 1.5  # how much later than the limit a close may come on a loaded machine
BODY = b'{"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hello"}]}'
CHAT_HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n"
)

Serve = Callable[..., int]


@pytest.fixture
def serve(loop_thread: LoopThread, fake: FakeGoogle, fake_server: FakeServer) -> Iterator[Serve]:
    """Start an app (the real proxy by default) the way `serve` does; returns its port."""
    runners: list[web.AppRunner] = []

    def start(app: web.Application | None = None, read_timeout: float = READ_TIMEOUT) -> int:
        served = app if app is not None else create_app(proxy_settings(fake_server.url))

        async def go() -> web.AppRunner:
            runner = make_runner(served, 1.0, read_timeout)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            return runner

        runner = loop_thread.run(go())
        runners.append(runner)
        return int(runner.addresses[0][1])

    yield start
    for runner in runners:
        loop_thread.stop_app(runner)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def wait_closed(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closed the connection, and what it sent before; fails after `limit`."""
    started = time.monotonic()
    sock.settimeout(limit)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"the connection was still open after {limit} s") from None
    return time.monotonic() - started, received


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole response head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])
    }
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk, "closed inside a response body"
            rest += chunk
        return int(lines[0].split()[1]), headers, rest[:length]
    body = b""
    while True:  # chunked
        while b"\r\n" not in rest:
            rest += sock.recv(65536)
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        while len(rest) < size + 2:
            chunk = sock.recv(65536)
            assert chunk, "closed inside a chunked response"
            rest += chunk
        body, rest = body + rest[:size], rest[size + 2 :]
        if size == 0:
            return int(lines[0].split()[1]), headers, body


def error_of(body: bytes) -> dict[str, object]:
    error = orjson.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] is None
    return dict(error)


# Item 5a: the request head.


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"POST /v1/chat/compl", id="part-of-the-request-line"),
        pytest.param(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Ty", id="part-of-the-headers"
        ),
    ],
)
def test_a_connection_without_a_whole_request_head_is_closed_after_the_limit(
    serve: Serve, sent: bytes
) -> None:
    port = serve()
    with connect(port) as sock:
        sock.sendall(sent)
        elapsed, received = wait_closed(sock, READ_TIMEOUT + SLACK)
    assert READ_TIMEOUT * 0.8 <= elapsed <= READ_TIMEOUT + SLACK
    assert received == b""


def test_trickled_header_bytes_do_not_extend_the_limit(serve: Serve) -> None:
    port = serve()
    with connect(port) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n")
        started = time.monotonic()
        closed = False
        while not closed and time.monotonic() - started < READ_TIMEOUT + SLACK:
            try:
                sock.sendall(b"X-Slow: a\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                try:
                    closed = sock.recv(65536) == b""
                except ConnectionResetError:
                    closed = True
        elapsed = time.monotonic() - started
    assert elapsed <= READ_TIMEOUT + SLACK, "trickling header bytes kept the connection open"


def test_a_keep_alive_connection_serves_requests_then_closes_when_idle_past_the_limit(serve: Serve) -> None:
    port = serve()
    with connect(port) as sock:
        for _ in range(3):
            sock.sendall(CHAT_HEAD % len(BODY) + BODY)
            status, headers, _ = read_response(sock)
            assert status == 200 and headers.get("connection", "").lower() != "close"
            time.sleep(READ_TIMEOUT / 3)  # idle, within the limit: the next request is served
        elapsed, received = wait_closed(sock, READ_TIMEOUT + SLACK)
    # Idle past the limit: closed without a word (a 408 here could be read as the answer to a request the
    # client was sending at that moment).
    assert received == b"" and elapsed <= READ_TIMEOUT + SLACK


# Item 5a: the request body.


def test_a_stalled_body_is_a_408_then_the_connection_closes(serve: Serve) -> None:
    port = serve()
    with connect(port) as sock:
        sock.sendall(CHAT_HEAD % 1_000_000 + BODY[:10])
        started = time.monotonic()
        status, headers, body = read_response(sock)
        elapsed = time.monotonic() - started
        assert status == 408 and headers["connection"].lower() == "close"
        error = error_of(body)
        assert error["code"] == "request_timeout"
        wait_closed(sock, SLACK)
    assert READ_TIMEOUT * 0.8 <= elapsed <= READ_TIMEOUT + SLACK


def test_a_body_trickled_a_byte_at_a_time_is_cut(serve: Serve) -> None:
    port = serve()
    with connect(port) as sock:
        sock.sendall(CHAT_HEAD % 1_000_000 + b"{")
        started = time.monotonic()
        answered = b""
        while time.monotonic() - started < READ_TIMEOUT + SLACK:
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                with contextlib.suppress(ConnectionResetError):
                    answered = sock.recv(65536)
                break
            try:
                sock.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                break
        elapsed = time.monotonic() - started
    assert elapsed <= READ_TIMEOUT + SLACK, "a body trickled a byte at a time held the handler"
    assert answered == b"" or answered.startswith(b"HTTP/1.1 408 ")


def test_a_body_sent_in_parts_within_the_limit_is_served(serve: Serve) -> None:
    port = serve()
    with connect(port) as sock:
        sock.sendall(CHAT_HEAD % len(BODY))
        time.sleep(0.1)
        sock.sendall(BODY[:20])
        time.sleep(0.1)
        sock.sendall(BODY[20:])
        status, _, body = read_response(sock)
    assert status == 200 and orjson.loads(body)["choices"][0]["message"]["content"] == "Echo: hello"


def test_a_stream_longer_than_the_limit_is_not_cut(serve: Serve, fake: FakeGoogle) -> None:
    fake.default_stream_chunks = 6
    fake.stream_delay = READ_TIMEOUT / 2  # about three times the limit in all
    port = serve()
    streamed = BODY.replace(b'"messages"', b'"stream": true, "messages"')
    with connect(port) as sock:
        # The body comes after the head, so the body's deadline is armed, and passes during the stream.
        sock.sendall(CHAT_HEAD % len(streamed))
        time.sleep(0.05)
        sock.sendall(streamed)
        started = time.monotonic()
        status, _, body = read_response(sock)
        elapsed = time.monotonic() - started
    assert status == 200 and body.endswith(b"data: [DONE]\n\n"), body[-200:]
    assert elapsed > 2 * READ_TIMEOUT


# Item 9a: malformed requests.

SECRET = b"sk-0123456789-not-for-logs"
MALFORMED = {
    "garbage-request-line": b"GARBAGE\r\n\r\n",
    "bad-method": b"G@T / HTTP/1.1\r\nHost: proxy\r\n\r\n",
    "bad-version": b"GET / HTTP/9.9\r\nHost: proxy\r\n\r\n",
    "tls-handshake": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    "invalid-header-name": b"GET / HTTP/1.1\r\nHost: proxy\r\nBad Header: v\r\n\r\n",
    "control-char-in-a-secret-header": b"GET / HTTP/1.1\r\nAuthorization: Bearer "
    + SECRET
    + b"\x01x\r\n\r\n",
    "bad-chunk-size": b"POST / HTTP/1.1\r\nHost: proxy\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"ZZ\r\nabc\r\n0\r\n\r\n",
    "bad-transfer-encoding": b"POST / HTTP/1.1\r\nHost: proxy\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    "bad-content-length": b"POST / HTTP/1.1\r\nHost: proxy\r\nContent-Length: abc\r\n\r\n",
    "two-content-lengths": b"POST / HTTP/1.1\r\nHost: proxy\r\nContent-Length: 1\r\n"
    b"Content-Length: 2\r\n\r\nab",
    "over-long-request-line": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: proxy\r\n\r\n",
    "over-long-header-line": b"GET / HTTP/1.1\r\nHost: proxy\r\nX-Long: "
    + SECRET
    + b"a" * 9000
    + b"\r\n\r\n",
    "too-many-headers": b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % n for n in range(200)) + b"\r\n",
}


def noisy(records: list[logging.LogRecord]) -> list[str]:
    return [
        f"{record.levelname} {record.name}: {record.getMessage()}"
        for record in records
        if record.levelno >= logging.ERROR or record.exc_info
    ]


@pytest.mark.parametrize("raw", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_request_is_a_400_and_one_info_line(
    serve: Serve, caplog: pytest.LogCaptureFixture, raw: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    port = serve()
    with connect(port) as sock:
        sock.sendall(raw)
        status, headers, body = read_response(sock)
        wait_closed(sock, SLACK)
    assert status == 400 and headers["content-type"].startswith("application/json")
    error = error_of(body)
    assert error["code"] == "invalid_http_request"
    assert SECRET not in body
    assert noisy(caplog.records) == []
    lines = [record for record in caplog.records if record.name.startswith("gemini_cli_proxy")]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO, [r.getMessage() for r in lines]
    assert "status=400" in lines[0].getMessage() and SECRET.decode() not in lines[0].getMessage()


def test_bad_chunk_framing_inside_a_body_a_handler_is_reading_is_a_400_at_once(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = serve(read_timeout=30.0)
    with connect(port) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n"
            b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"mod\r\n'
        )
        time.sleep(0.1)  # the handler is reading the body
        sock.sendall(b"ZZ\r\nnot a chunk\r\n0\r\n\r\n")
        sock.settimeout(5)  # without the fix the handler waits for the rest of the body: 30 s
        status, _, body = read_response(sock)
        wait_closed(sock, SLACK)
    assert status == 400 and error_of(body)["code"] == "invalid_http_request"
    assert noisy(caplog.records) == []


def test_a_body_aiohttp_cannot_decode_leaves_no_aiohttp_traceback(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = serve()
    with connect(port) as sock:
        sock.sendall(
            CHAT_HEAD.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n") % 10 + b"not gzip!!"
        )
        read_response(sock)
        wait_closed(sock, SLACK)
    # The aiohttp side: its lingering close re-read the failed body and logged "Unhandled exception".
    assert [line for line in noisy(caplog.records) if line.split()[1].startswith("aiohttp")] == []


def test_a_body_that_cannot_be_decoded_is_a_400(serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = serve()
    with connect(port) as sock:
        sock.sendall(
            CHAT_HEAD.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n") % 10 + b"not gzip!!"
        )
        status, _, _ = read_response(sock)
    assert status == 400 and noisy(caplog.records) == []


def test_a_gzip_body_is_still_decoded(serve: Serve) -> None:
    port = serve()
    packed = gzip.compress(BODY)
    with connect(port) as sock:
        sock.sendall(
            CHAT_HEAD.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n") % len(packed) + packed
        )
        status, _, _ = read_response(sock)
    assert status == 200


def test_a_bug_in_a_handler_is_still_logged_with_its_traceback(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a real bug")

    app = web.Application()  # no error middleware: the exception reaches aiohttp's own error path
    app.router.add_get("/broken", broken)
    caplog.set_level(logging.DEBUG)
    port = serve(app)
    with connect(port) as sock:
        sock.sendall(b"GET /broken HTTP/1.1\r\nHost: proxy\r\n\r\n")
        status, _, _ = read_response(sock)
    assert status == 500
    logged = [record for record in caplog.records if record.levelno >= logging.ERROR and record.exc_info]
    assert logged and "a real bug" in str(logged[0].exc_info[1] if logged[0].exc_info else "")


def test_a_large_body_over_a_slow_line_is_served(serve: Serve) -> None:
    """Slower than the read timeout in all, but steady: each KiB buys a second more."""
    padded = BODY.replace(b'"messages"', b'"user": "' + b"x" * 20_000 + b'", "messages"')
    port = serve()
    with connect(port) as sock:
        sock.sendall(CHAT_HEAD % len(padded))
        started = time.monotonic()
        for start in range(0, len(padded), 2048):
            sock.sendall(padded[start : start + 2048])
            time.sleep(0.1)
        assert time.monotonic() - started > READ_TIMEOUT * 1.5
        status, _, body = read_response(sock)
    assert status == 200, body
