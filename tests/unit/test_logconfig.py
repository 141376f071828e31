"""Batched log lines: order kept, warnings written at once, secrets scrubbed, the access fast path
formatted like every other line."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from gemini_cli_proxy.logconfig import BatchedStreamHandler, batched_handler, configure, flush_handlers
from gemini_cli_proxy.redact import scrub

LINE = re.compile(r"ts=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} level=(\w+) logger=(\S+) (.*)")
API_KEY = "AIzaSyD-0123456789abcdefghijklmnopqrstu"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    out = io.StringIO()
    handler = BatchedStreamHandler(out, capacity=4)
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def lines(out: io.StringIO) -> list[tuple[str, str, str]]:
    found = []
    for line in out.getvalue().splitlines():
        match = LINE.fullmatch(line)
        assert match, line
        found.append((match.group(1), match.group(2), match.group(3)))
    return found


def test_info_lines_wait_for_a_flush_and_keep_their_order_with_access_lines(stream: io.StringIO) -> None:
    sink = batched_handler()
    assert sink is not None
    logging.getLogger("gemini_cli_proxy.pool").info("first %s", "record")
    sink.write_line("gemini_cli_proxy.access", "request_id=abc status=200")
    logging.getLogger("gemini_cli_proxy.pool").info("third")
    assert stream.getvalue() == ""
    flush_handlers()
    assert lines(stream) == [
        ("INFO", "gemini_cli_proxy.pool", "first record"),
        ("INFO", "gemini_cli_proxy.access", "request_id=abc status=200"),
        ("INFO", "gemini_cli_proxy.pool", "third"),
    ]


def test_a_warning_writes_what_came_before_it_at_once(stream: io.StringIO) -> None:
    sink = batched_handler()
    assert sink is not None
    sink.write_line("gemini_cli_proxy.access", "request_id=abc status=200")
    logging.getLogger("gemini_cli_proxy.pool").warning("key cooling down")
    assert [level for level, _, _ in lines(stream)] == ["INFO", "WARNING"]


def test_a_full_buffer_is_written_without_waiting_for_the_flush(stream: io.StringIO) -> None:
    sink = batched_handler()
    assert sink is not None
    for number in range(4):  # the fixture's capacity
        sink.write_line("gemini_cli_proxy.access", f"request_id={number}")
    assert len(lines(stream)) == 4


def test_secrets_are_scrubbed_on_both_paths(stream: io.StringIO) -> None:
    sink = batched_handler()
    assert sink is not None
    logging.getLogger("gemini_cli_proxy.pool").info("key %s failed", API_KEY)
    sink.write_line("gemini_cli_proxy.access", f"path=/v1/{API_KEY} error='BeArEr ya29.token-value'")
    flush_handlers()
    text = stream.getvalue()
    assert API_KEY not in text and "ya29.token-value" not in text
    assert text.count("[redacted]") == 3


def test_an_exception_is_written_with_its_traceback(stream: io.StringIO) -> None:
    try:
        raise RuntimeError(f"boom with {API_KEY}")
    except RuntimeError:
        logging.getLogger("gemini_cli_proxy.access").exception("unhandled error")
    text = stream.getvalue()
    assert "Traceback" in text and "RuntimeError: boom" in text and API_KEY not in text


def test_configure_installs_one_batched_handler() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure("warning")
        assert [type(handler) for handler in root.handlers] == [BatchedStreamHandler]
        assert root.level == logging.WARNING
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


@pytest.mark.parametrize(
    "text",
    [
        f"key={API_KEY}",
        "Authorization: Bearer sk-abcdef123456",
        "authorization: BEARER sk-abcdef123456",
        "token ya29.a0AfH6SMB-xyz",
        "refresh 1//0gABCDEFGHIJKLMNOPQRSTUVWXYZ",
    ],
)
def test_scrub_still_finds_every_kind_of_secret(text: str) -> None:
    assert "[redacted]" in scrub(text)


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = "request_id=abc method=POST path=/v1/chat/completions status=200 ms=1.2"
    assert scrub(text) is text


def test_a_secret_pattern_never_runs_into_the_next_line(stream: io.StringIO) -> None:
    sink = batched_handler()
    assert sink is not None
    sink.write_line("gemini_cli_proxy.access", "error=no token after Bearer")
    sink.write_line("gemini_cli_proxy.access", "request_id=next")
    flush_handlers()
    assert [message for _, _, message in lines(stream)] == ["error=no token after Bearer", "request_id=next"]
