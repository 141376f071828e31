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


class EventTooLarge(ValueError):
    """One event (or one line still without its end) grew past the decoder's limit."""


# The largest event the decoder holds: Gemini's image models put a whole base64 image in one event
# (a 4K image is ~10 MB), while a line with no end in sight must not grow the process without bound.
MAX_EVENT_BYTES: Final = 16 * 1024 * 1024
# The memory one held `data:` line costs beyond its bytes (a bytes object and its list slot).
LINE_COST: Final = 48


class SSEDecoder:
    """Turns a byte stream into the `data` payloads of its events.

    `feed()` returns the payloads of the events completed by this chunk; `flush()` returns the
    payload of an event left unterminated when the stream ended. Comments, `event:`, `id:` and
    `retry:` fields are accepted and ignored, as Google sends only `data:`. An event, or a line,
    longer than `max_event_bytes` raises EventTooLarge: the stream is broken beyond use.
    """

    __slots__ = ("_data", "_data_size", "_limit", "_partial", "_partial_size", "_pending_cr")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        # The start of a line whose end has not arrived, as pieces: joining them once, when the
        # line ends, costs one copy; re-joining on every read would be quadratic in its length.
        self._partial: list[bytes] = []
        self._partial_size = 0
        self._data: list[bytes] = []
        self._data_size = 0
        self._pending_cr = False
        self._limit = max_event_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        if not chunk:
            return []
        if self._pending_cr:
            # The previous chunk ended with CR; an LF here belongs to that same line break.
            self._pending_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return []
        if self._partial:
            if b"\n" not in chunk and b"\r" not in chunk:
                self._hold(chunk)
                return []
            buffer = b"".join(self._partial) + chunk
            self._partial = []
            self._partial_size = 0
        else:
            buffer = chunk
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
        if start < length:
            self._hold(buffer[start:])
        return events

    def flush(self) -> list[bytes]:
        events: list[bytes] = []
        if self._partial:
            line = b"".join(self._partial)
            self._partial = []
            self._partial_size = 0
            self._line(line, events)
        if self._data:
            events.append(b"\n".join(self._data))
            self._data = []
            self._data_size = 0
        self._pending_cr = False
        return events

    def _hold(self, piece: bytes) -> None:
        self._partial.append(piece)
        self._partial_size += len(piece)
        if self._partial_size + self._data_size > self._limit:
            raise EventTooLarge(f"an event grew past {self._limit} bytes without ending")

    def _line(self, line: bytes, events: list[bytes]) -> None:
        if not line:
            if self._data:
                events.append(b"\n".join(self._data))
                self._data = []
                self._data_size = 0
            return
        if line.startswith(b"data:"):
            value = line[5:]
            if value[:1] == b" ":
                value = value[1:]
            self._data.append(value)
            # What holding it costs, not just its length: a flood of empty `data:` lines is not free.
            self._data_size += len(value) + LINE_COST
            if self._data_size > self._limit:
                raise EventTooLarge(f"an event grew past {self._limit} bytes without ending")
        # Any other field (event, id, retry) or a ':' comment carries nothing we use.
