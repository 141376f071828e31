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
    """

    __slots__ = ("_buffer", "_data", "_pending_cr")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[bytes]:
        if not chunk:
            return []
        if self._pending_cr:
            # The previous chunk ended with CR; an LF here belongs to that same line break.
            self._pending_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buffer = self._buffer + chunk
        events: list[bytes] = []
        start = 0
        length = len(buffer)
        while start < length:
            lf = buffer.find(b"\n", start)
            cr = buffer.find(b"\r", start, lf if lf >= 0 else length)
            if cr >= 0:
                end, nxt = cr, cr + 1
                if nxt < length and buffer[nxt : nxt + 1] == b"\n":
                    nxt += 1
                elif nxt == length:
                    self._pending_cr = True
            elif lf >= 0:
                end, nxt = lf, lf + 1
            else:
                break
            self._line(buffer[start:end], events)
            start = nxt
        self._buffer = buffer[start:]
        return events

    def flush(self) -> list[bytes]:
        events: list[bytes] = []
        if self._buffer:
            self._line(self._buffer, events)
            self._buffer = b""
        if self._data:
            events.append(b"\n".join(self._data))
            self._data = []
        self._pending_cr = False
        return events

    def _line(self, line: bytes, events: list[bytes]) -> None:
        if not line:
            if self._data:
                events.append(b"\n".join(self._data))
                self._data = []
            return
        if line.startswith(b"data:"):
            value = line[5:]
            if value[:1] == b" ":
                value = value[1:]
            self._data.append(value)
        # Any other field (event, id, retry) or a ':' comment carries nothing we use.
