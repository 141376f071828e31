"""Server-sent events: encoding our events and decoding Google's, incrementally.

Pure code: no I/O. The decoder accepts bytes split anywhere (inside a line, inside a CRLF pair,
inside a multi-byte UTF-8 character) and both LF and CRLF framing, as Google sends CRLF.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

DONE: Final = b"data: [DONE]\n\n"


def encode_event(payload: Any) -> bytes:
    """One `data:` event; orjson never emits raw newlines, so one line is always enough."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class SSEDecoder:
    """Turns a byte stream into the `data` payloads of its events.

    `feed()` returns the payloads of the events completed by this chunk; `flush()` returns the
    payload of an event left unterminated when the stream ended. Comments, `event:`, `id:` and
    `retry:` fields are accepted and ignored, as Google sends only `data:`.

    Line breaks (CRLF, CR or LF) are first all made LF, with C-speed `bytes.replace`, so that events
    are found by splitting on the blank line: a Python loop over lines cost a tenth of a fast stream.
    """

    __slots__ = ("_buffer", "_pending_cr")

    def __init__(self) -> None:
        self._buffer = b""  # the unfinished event, its line breaks already made LF
        self._pending_cr = False  # the last chunk ended in CR: an LF starting the next one is its pair

    def feed(self, chunk: bytes) -> list[bytes]:
        if not chunk:
            return []
        if self._pending_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._pending_cr = chunk[-1:] == b"\r"
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer + chunk
        if b"\n\n" not in buffer:
            # Cheap when an event arrives in many small reads: nothing complete yet.
            self._buffer = buffer
            return []
        *complete, self._buffer = buffer.split(b"\n\n")
        events: list[bytes] = []
        for block in complete:
            data = _data(block)
            if data is not None:
                events.append(data)
        return events

    def flush(self) -> list[bytes]:
        data = _data(self._buffer)
        self._buffer = b""
        self._pending_cr = False
        return [] if data is None else [data]


def _data(block: bytes) -> bytes | None:
    """The payload of one event's lines (LF-separated): its `data` values joined by LF, or None when
    it has no `data` field (a comment, an empty block between extra blank lines)."""
    if not block:
        return None
    if block.startswith(b"data: ") and b"\n" not in block:
        return block[6:]  # Google's events: one data line each
    values: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            values.append(value[1:] if value[:1] == b" " else value)
        # Any other field (event, id, retry) or a ':' comment carries nothing we use.
    return b"\n".join(values) if values else None
