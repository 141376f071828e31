"""The SSE codec: any byte split, LF or CRLF, always the same events."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemini_cli_proxy.sse import DONE, LINE_COST, EventTooLarge, SSEDecoder, encode_event

from support import recording


def _decode(pieces: list[bytes]) -> list[bytes]:
    decoder = SSEDecoder()
    events: list[bytes] = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    events.extend(decoder.flush())
    return events


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


RAW = recording("aistudio-stream-sse-text-1")["response_raw"].encode()
EXPECTED = [orjson.loads(orjson.dumps(e)) for e in recording("aistudio-stream-sse-text-1")["response_events"]]


def test_recorded_crlf_stream_decodes_to_its_events() -> None:
    assert [orjson.loads(e) for e in _decode([RAW])] == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_any_split_of_the_recorded_stream_gives_the_same_events(cuts: list[int]) -> None:
    assert [orjson.loads(e) for e in _decode(_split(RAW, cuts))] == EXPECTED


@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30), min_size=1, max_size=8
    ),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.lists(st.integers(min_value=0, max_value=5_000), max_size=30),
)
def test_any_payloads_any_line_ending_any_split(payloads: list[str], newline: bytes, cuts: list[int]) -> None:
    stream = b"".join(b"data: " + orjson.dumps(p) + newline + newline for p in payloads)
    assert [orjson.loads(e) for e in _decode(_split(stream, cuts))] == payloads


def _reference(stream: bytes) -> list[bytes]:
    """The WHATWG event-stream algorithm, line by line over the whole stream at once."""
    lines: list[bytes] = []
    current = b""
    i = 0
    while i < len(stream):
        byte = stream[i : i + 1]
        if byte in (b"\r", b"\n"):
            lines.append(current)
            current = b""
            if byte == b"\r" and stream[i + 1 : i + 2] == b"\n":
                i += 1
        else:
            current += byte
        i += 1
    if current:  # an unterminated last line, as flush() takes it
        lines.append(current)
    events: list[bytes] = []
    data: list[bytes] = []
    for line in [*lines, b""]:
        if not line:
            if data:
                events.append(b"\n".join(data))
            data = []
        elif line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value[:1] == b" " else value)
    return events


LINE_BREAKS = st.sampled_from([b"\n", b"\r\n", b"\r"])
SSE_LINES = st.one_of(
    st.binary(max_size=12).filter(lambda b: b"\r" not in b and b"\n" not in b).map(lambda b: b"data: " + b),
    st.just(b"data:"),
    st.just(b": comment"),
    st.just(b"event: message"),
    st.just(b""),  # blank lines: event boundaries, also several in a row
)


@given(
    st.lists(st.tuples(SSE_LINES, LINE_BREAKS), max_size=25),
    st.lists(st.integers(min_value=0, max_value=1_000), max_size=20),
)
def test_mixed_line_breaks_extra_blank_lines_and_any_split_match_the_spec(
    lines: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(line + brk for line, brk in lines)
    assert _decode(_split(stream, cuts)) == _reference(stream)


def test_multiline_data_comments_and_other_fields() -> None:
    stream = b': keep-alive\nevent: message\nid: 7\ndata: {"a":\ndata: 1}\n\nretry: 5\ndata:{"b":2}\n\n'
    assert [orjson.loads(e) for e in _decode([stream])] == [{"a": 1}, {"b": 2}]


def test_unterminated_last_event_is_flushed() -> None:
    assert _decode([b'data: {"x":1}']) == [b'{"x":1}']


def test_utf8_split_inside_a_character() -> None:
    stream = 'data: {"t":"héllo ✓"}\r\n\r\n'.encode()
    cut = stream.index("✓".encode()) + 1
    assert [orjson.loads(e) for e in _decode([stream[:cut], stream[cut:]])] == [{"t": "héllo ✓"}]


def test_encode_event_round_trips_and_done_marker() -> None:
    payload = {"text": "line one\nline two", "n": 1}
    encoded = encode_event(payload)
    assert encoded.startswith(b"data: ") and encoded.endswith(b"\n\n") and encoded.count(b"\n") == 2
    assert [orjson.loads(e) for e in _decode([encoded])] == [payload]
    assert DONE == b"data: [DONE]\n\n"


def test_an_event_over_the_limit_is_refused_and_holds_no_more_than_the_limit() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    assert decoder.feed(b"data: " + b"x" * 500) == []
    with pytest.raises(EventTooLarge):
        for _ in range(10):
            decoder.feed(b"y" * 100)
    # Many short data lines of one event that never ends count together.
    decoder = SSEDecoder(max_event_bytes=1000)
    with pytest.raises(EventTooLarge):
        for _ in range(100):
            decoder.feed(b"data: " + b"z" * 50 + b"\n")


def test_an_event_at_the_limit_passes_and_the_limit_is_per_event() -> None:
    decoder = SSEDecoder(max_event_bytes=1000 + LINE_COST)  # one line of 1000 bytes
    for _ in range(5):  # five events of 1000 bytes: fine, each on its own
        payload = b"x" * 1000
        pieces = [b"data: " + payload[:300], payload[300:700], payload[700:] + b"\r\n\r\n"]
        assert [e for piece in pieces for e in decoder.feed(piece)] == [payload]


def test_a_flood_of_empty_data_lines_counts_against_the_limit() -> None:
    decoder = SSEDecoder(max_event_bytes=100_000)
    with pytest.raises(EventTooLarge):
        decoder.feed(b"data:\n" * 10_000)
