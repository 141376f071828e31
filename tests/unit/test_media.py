"""Media parts -> Gemini inlineData (pure), and the SSRF guard's address classifier and resolver."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from typing import Any

import orjson
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from gemini_cli_proxy.errors import ProxyError
from gemini_cli_proxy.media_fetch import GuardedResolver, RefusedAddress, is_blocked_address
from gemini_cli_proxy.translate.media import InlineData, media_part, media_urls, sniff_image
from gemini_cli_proxy.wire.openai import AudioPart, FilePart, ImagePart, error_type, parse_chat_request

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 24
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 "
PDF_BYTES = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"
PARAM = "messages[0].content[1]"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def image(url: str, **extra: Any) -> ImagePart:
    return ImagePart.model_validate({"type": "image_url", "image_url": {"url": url, **extra}})


def audio(data: str, audio_format: str) -> AudioPart:
    return AudioPart.model_validate(
        {"type": "input_audio", "input_audio": {"data": data, "format": audio_format}}
    )


def file(**fields: Any) -> FilePart:
    return FilePart.model_validate({"type": "file", "file": fields})


def inline(mime: str, data: str) -> dict[str, Any]:
    return {"inlineData": {"mimeType": mime, "data": data}}


def refusal(part: ImagePart | AudioPart | FilePart) -> ProxyError:
    with pytest.raises(ProxyError) as caught:
        media_part(part, PARAM, {})
    assert caught.value.status == 400 and error_type(caught.value.status) == "invalid_request_error"
    return caught.value


# Images by data URI


@pytest.mark.parametrize(
    ("url", "mime"),
    [
        (f"data:image/png;base64,{b64(PNG)}", "image/png"),
        (f"data:image/jpeg;base64,{b64(JPEG)}", "image/jpeg"),
        (f"data:image/jpg;base64,{b64(JPEG)}", "image/jpeg"),  # a common misspelling, normalised
        (f"data:IMAGE/PNG;base64,{b64(PNG)}", "image/png"),
        (f"data:image/webp;base64,{b64(WEBP)}", "image/webp"),
        (f"data:image/gif;base64,{b64(b'GIF89a' + bytes(10))}", "image/gif"),
        (f"data:image/heic;base64,{b64(bytes(4) + b'ftypheic')}", "image/heic"),
        (f"data:image/heif;base64,{b64(bytes(4) + b'ftypmif1')}", "image/heif"),
        # No type, or a generic one: the magic bytes decide.
        (f"data:;base64,{b64(PNG)}", "image/png"),
        (f"data:application/octet-stream;base64,{b64(JPEG)}", "image/jpeg"),
    ],
)
def test_data_uri_images_become_inline_data(url: str, mime: str) -> None:
    data = url.split(",", 1)[1]
    assert media_part(image(url, detail="high"), PARAM, {}) == inline(mime, data)


def test_url_safe_unpadded_and_wrapped_base64_is_repaired_to_standard() -> None:
    raw = PNG + b"\xfb\xff\xbf"  # bytes whose base64 uses '+' and '/'
    standard = b64(raw)
    assert "+" in standard or "/" in standard
    url_safe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    wrapped = "\n".join(standard[i : i + 8] for i in range(0, len(standard), 8))
    for sent in (url_safe, wrapped):
        assert media_part(image(f"data:image/png;base64,{sent}"), PARAM, {}) == inline("image/png", standard)


def test_percent_encoded_data_uri_is_base64_encoded() -> None:
    url = "data:image/gif," + "".join(f"%{byte:02X}" for byte in b"GIF89a\x01\x00")
    assert media_part(image(url), PARAM, {}) == inline("image/gif", b64(b"GIF89a\x01\x00"))


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("data:image/png;base64,not*base64!", "invalid_base64"),
        ("data:image/png;base64,QUJD=QUJD", "invalid_base64"),
        ("data:image/png;base64,", "invalid_base64"),
        ("data:image/png;base64", "invalid_image_url"),
        (f"data:image/svg+xml;base64,{b64(b'<svg/>')}", "invalid_image_format"),
        (f"data:text/plain;base64,{b64(PNG)}", "invalid_image_format"),
        (f"data:;base64,{b64(b'just text')}", "invalid_image_format"),  # generic type, no image magic
        ("ftp://example.com/cat.png", "invalid_image_url"),
        ("file:///etc/passwd", "invalid_image_url"),
        ("cat.png", "invalid_image_url"),
    ],
)
def test_bad_images_are_refused_naming_the_url(url: str, code: str) -> None:
    error = refusal(image(url))
    assert error.param == f"{PARAM}.image_url.url"
    assert error.code == code


def test_http_urls_come_from_the_fetched_map_and_are_never_fetched_here() -> None:
    fetched = {"https://x.test/cat.png": InlineData("image/png", b64(PNG))}
    assert media_part(image("https://x.test/cat.png"), PARAM, fetched) == inline("image/png", b64(PNG))
    with pytest.raises(RuntimeError):
        media_part(image("https://x.test/other.png"), PARAM, fetched)


def test_media_urls_lists_each_http_url_once_with_its_first_param() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "s"},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "https://a.test/1.png"}},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(PNG)}"}},
                    {"type": "text", "text": "and"},
                    {"type": "image_url", "image_url": {"url": "HTTP://b.test/2.jpg"}},
                ],
            },
            {"role": "user", "content": "plain"},
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://a.test/1.png"}}],
            },
        ],
    }
    assert media_urls(parse_chat_request(orjson.dumps(body))) == [
        ("https://a.test/1.png", "messages[1].content[0].image_url.url"),
        ("HTTP://b.test/2.jpg", "messages[1].content[3].image_url.url"),
    ]


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (b"GIF87a....", "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBP", "image/webp"),
        (b"\x00\x00\x00\x18ftypheix", "image/heic"),
        (b"\x00\x00\x00\x18ftypmsf1", "image/heif"),
        (b"\x00\x00\x00\x18ftypavif", None),  # AVIF: not a type Gemini takes
        (b"RIFF\x10\x00\x00\x00WAVE", None),
        (b"<!doctype html>", None),
        (b"", None),
    ],
)
def test_sniffing(head: bytes, mime: str | None) -> None:
    assert sniff_image(head) == mime


# Audio


@pytest.mark.parametrize(
    ("audio_format", "mime"), [("wav", "audio/wav"), ("mp3", "audio/mp3"), ("MP3", "audio/mp3")]
)
def test_audio_becomes_inline_data(audio_format: str, mime: str) -> None:
    data = b64(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    assert media_part(audio(data, audio_format), PARAM, {}) == inline(mime, data)


def test_unsupported_audio_format_is_refused_naming_the_format() -> None:
    error = refusal(audio(b64(b"OggS"), "ogg"))
    assert error.param == f"{PARAM}.input_audio.format"
    assert "wav, mp3" in error.message


def test_bad_audio_base64_is_refused_naming_the_data() -> None:
    error = refusal(audio("%%%", "wav"))
    assert error.param == f"{PARAM}.input_audio.data" and error.code == "invalid_base64"


# Files


def test_pdf_as_data_uri() -> None:
    part = file(file_data=f"data:application/pdf;base64,{b64(PDF_BYTES)}", filename="paper.pdf")
    assert media_part(part, PARAM, {}) == inline("application/pdf", b64(PDF_BYTES))


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (b64(b"not really a pdf but named one"), "Report.PDF"),
        (b64(PDF_BYTES), None),  # unnamed, but the bytes say PDF
    ],
)
def test_pdf_as_bare_base64(data: str, filename: str | None) -> None:
    assert media_part(file(file_data=data, filename=filename), PARAM, {}) == inline("application/pdf", data)


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"file_id": "file-abc"}, "file.file_id", "unsupported_parameter"),
        ({"file_id": "file-abc", "filename": "a.pdf"}, "file.file_id", "unsupported_parameter"),
        ({}, "file.file_data", "missing_required_parameter"),
        ({"file_data": f"data:text/plain;base64,{b64(b'hello')}"}, "file.file_data", "invalid_value"),
        ({"file_data": b64(b"hello"), "filename": "notes.txt"}, "file.file_data", "invalid_value"),
        ({"file_data": "***", "filename": "a.pdf"}, "file.file_data", "invalid_base64"),
        ({"file_data": "data:application/pdf;base64,@@@"}, "file.file_data", "invalid_base64"),
    ],
)
def test_file_refusals_name_the_field(fields: dict[str, Any], param: str, code: str) -> None:
    error = refusal(file(**fields))
    assert (error.param, error.code) == (f"{PARAM}.{param}", code)


# The SSRF guard


@pytest.mark.parametrize(
    ("address", "blocked"),
    [
        ("8.8.8.8", False),
        ("1.1.1.1", False),
        ("142.250.74.110", False),
        ("2606:4700:4700::1111", False),
        ("2a00:1450:4001:82a::200e", False),
        ("::ffff:8.8.8.8", False),  # IPv4-mapped: judged by its IPv4 address
        ("2002:0808:0808::1", False),  # 6to4 of 8.8.8.8
        ("64:ff9b::808:808", False),  # NAT64 of 8.8.8.8
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("10.0.0.1", True),
        ("172.16.5.4", True),
        ("172.31.255.255", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),  # cloud metadata service
        ("100.64.0.1", True),  # shared address space (CGNAT)
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("239.255.255.250", True),
        ("240.0.0.1", True),
        ("255.255.255.255", True),
        ("192.0.2.1", True),  # documentation
        ("198.18.0.1", True),  # benchmarking
        ("::1", True),
        ("::", True),
        ("fe80::1", True),
        ("fe80::1%1", True),
        ("fc00::1", True),
        ("fd12:3456::1", True),
        ("ff02::1", True),
        ("ff0e::1", True),  # global-scope multicast is still multicast
        ("2001:db8::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.1.2.3", True),
        ("::ffff:169.254.169.254", True),
        ("::127.0.0.1", True),  # IPv4-compatible (deprecated)
        ("2002:7f00:0001::1", True),  # 6to4 of 127.0.0.1
        ("2002:c0a8:0101::1", True),  # 6to4 of 192.168.1.1
        ("64:ff9b::7f00:1", True),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", True),  # NAT64 of 169.254.169.254
    ],
)
def test_address_classifier(address: str, blocked: bool) -> None:
    assert is_blocked_address(ipaddress.ip_address(address)) is blocked


class _TableResolver(AbstractResolver):
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {"hostname": host, "host": ip, "port": port, "family": family, "proto": 0, "flags": 0}
            for ip in self.table[host]
        ]

    async def close(self) -> None:
        self.closed = True


def test_guarded_resolver_drops_refused_addresses_and_refuses_names_with_none_left() -> None:
    inner = _TableResolver(
        {
            "public.test": ["93.184.216.34"],
            "mixed.test": ["10.0.0.5", "93.184.216.34", "::1"],
            "private.test": ["127.0.0.1", "::1", "::ffff:192.168.0.1"],
            "garbage.test": ["not-an-ip"],
        }
    )
    guard = GuardedResolver(inner, is_blocked_address)

    async def scenario() -> None:
        assert [r["host"] for r in await guard.resolve("public.test", 80)] == ["93.184.216.34"]
        assert [r["host"] for r in await guard.resolve("mixed.test", 80)] == ["93.184.216.34"]
        for name in ("private.test", "garbage.test"):
            with pytest.raises(RefusedAddress, match=name):
                await guard.resolve(name, 80)
        await guard.close()

    asyncio.run(scenario())
    assert inner.closed


# The size cap on inline media (PROXY_MAX_IMAGE_BYTES, as for fetched images)

LIMIT = 300


def _wrapped(text: str) -> str:
    """MIME-style base64: lines of 76 characters."""
    return "\r\n".join(text[i : i + 76] for i in range(0, len(text), 76))


@pytest.mark.parametrize(
    ("part", "param", "code"),
    [
        (
            image(f"data:image/png;base64,{b64(PNG + bytes(LIMIT))}"),
            f"{PARAM}.image_url.url",
            "image_too_large",
        ),
        (image("data:image/gif," + "%00" * (LIMIT + 1)), f"{PARAM}.image_url.url", "image_too_large"),
        (
            image(f"data:image/png;base64,{_wrapped(b64(PNG + bytes(LIMIT)))}"),
            f"{PARAM}.image_url.url",
            "image_too_large",
        ),
        (audio(b64(bytes(LIMIT + 1)), "wav"), f"{PARAM}.input_audio.data", "audio_too_large"),
        (file(file_data=b64(PDF_BYTES + bytes(LIMIT))), f"{PARAM}.file.file_data", "file_too_large"),
        (
            file(file_data=f"data:application/pdf;base64,{b64(PDF_BYTES + bytes(LIMIT))}"),
            f"{PARAM}.file.file_data",
            "file_too_large",
        ),
        # Far over the limit: refused from its length, before it is even decoded (it is not base64).
        (image("data:image/png;base64," + "!" * (LIMIT * 4)), f"{PARAM}.image_url.url", "image_too_large"),
        (audio("!" * (LIMIT * 4), "wav"), f"{PARAM}.input_audio.data", "audio_too_large"),
    ],
)
def test_inline_media_over_the_size_limit_is_refused_naming_the_part(
    part: ImagePart | AudioPart | FilePart, param: str, code: str
) -> None:
    with pytest.raises(ProxyError) as caught:
        media_part(part, PARAM, {}, max_bytes=LIMIT)
    error = caught.value
    assert (error.status, error.param, error.code) == (400, param, code)
    assert f"larger than the limit of {LIMIT} bytes" in error.message and param in error.message


@pytest.mark.parametrize("wrap", [False, True])
def test_inline_media_at_the_size_limit_passes(wrap: bool) -> None:
    png, wav, pdf = PNG + bytes(LIMIT - len(PNG)), bytes(LIMIT), PDF_BYTES + bytes(LIMIT - len(PDF_BYTES))

    def sent(text: str) -> str:
        return _wrapped(text) if wrap else text

    parts: list[ImagePart | AudioPart | FilePart] = [
        image(f"data:image/png;base64,{sent(b64(png))}"),
        image("data:image/png," + "".join(f"%{byte:02X}" for byte in png)),
        audio(sent(b64(wav)), "wav"),
        file(file_data=sent(b64(pdf)), filename="a.pdf"),
    ]
    results = [media_part(part, PARAM, {}, max_bytes=LIMIT) for part in parts]
    decoded = [base64.b64decode(result["inlineData"]["data"]) for result in results]
    assert decoded == [png, png, wav, pdf]
