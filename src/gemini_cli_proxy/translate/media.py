"""OpenAI media content parts (images, audio, PDF files) -> Gemini `inlineData` parts. Pure: no I/O.

Images given by http(s) URL are fetched by the caller (`media_fetch`) before translation;
`media_urls` lists what to fetch and `media_part` looks the results up, so this module never touches
the network. Everything a client can get wrong here is a 400 that names the exact part.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_to_bytes

from ..errors import ProxyError, invalid_request
from ..wire.gemini_request import RequestPart
from ..wire.openai import AudioPart, ChatCompletionRequest, FilePart, ImagePart, UserMessage

# The image types Gemini accepts inline (Google's "image understanding" docs).
IMAGE_TYPES: Final = frozenset(
    {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif", "image/gif"}
)
# Types that say nothing about the bytes: servers and clients use them when they do not know, so
# the bytes themselves decide.
GENERIC_TYPES: Final = frozenset(
    {"", "application/octet-stream", "binary/octet-stream", "application/binary", "application/unknown"}
)
_ALIASES: Final = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}
AUDIO_TYPES: Final = {"wav": "audio/wav", "mp3": "audio/mp3"}
PDF: Final = "application/pdf"
# ISO base media file brands (bytes 8..12 of an `ftyp` box) of HEIC and of other HEIF images.
_HEIC_BRANDS: Final = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})
_HEIF_BRANDS: Final = frozenset({b"mif1", b"msf1", b"heif"})
# MIME wraps base64 in lines of 76 characters and a CRLF, the most whitespace real clients send.
_LINE: Final = 76
_WRAPPED_LINE: Final = 78


@dataclass(frozen=True)
class InlineData:
    """Media bytes as Gemini wants them: a MIME type and standard base64."""

    mime_type: str
    data: str

    def part(self) -> RequestPart:
        return {"inlineData": {"mimeType": self.mime_type, "data": self.data}}


def normalise_type(content_type: str | None) -> str:
    """`Image/JPG; charset=x` -> `image/jpeg`: the bare, lower-case, canonical MIME type."""
    bare = (content_type or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(bare, bare)


def sniff_image(head: bytes) -> str | None:
    """The image type its magic bytes announce, among those Gemini accepts; None otherwise."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        if head[8:12] in _HEIC_BRANDS:
            return "image/heic"
        if head[8:12] in _HEIF_BRANDS:
            return "image/heif"
    return None


def image_type(declared: str | None, head: bytes) -> str | None:
    """The type to send for an image: the declared one when Gemini accepts it, the sniffed one when
    the declared type is missing or generic, None (refuse) when the declared type is something else."""
    mime = normalise_type(declared)
    if mime in IMAGE_TYPES:
        return mime
    if mime in GENERIC_TYPES:
        return sniff_image(head)
    return None


def is_fetched_url(url: str) -> bool:
    return url[:7].lower() == "http://" or url[:8].lower() == "https://"


def _is_data_uri(url: str) -> bool:
    return url[:5].lower() == "data:"


def media_urls(req: ChatCompletionRequest) -> list[tuple[str, str]]:
    """(url, param) of every http(s) image URL in the request, each URL once (at its first use)."""
    found: dict[str, str] = {}
    for index, message in enumerate(req.messages):
        if not isinstance(message, UserMessage) or isinstance(message.content, str):
            continue
        for position, part in enumerate(message.content):
            if isinstance(part, ImagePart) and is_fetched_url(part.image_url.url):
                found.setdefault(part.image_url.url, f"messages[{index}].content[{position}].image_url.url")
    return list(found.items())


def _bad(param: str, message: str, code: str) -> ProxyError:
    return invalid_request(message, param=param, code=code)


@dataclass(frozen=True)
class SizeCap:
    """The most bytes one inline part may decode to (None: no cap), the same limit that a fetched
    image has (PROXY_MAX_IMAGE_BYTES), and what the part is called when it is refused."""

    max_bytes: int | None
    noun: str

    def refuse(self, param: str) -> ProxyError:
        # Worded as media_fetch words a fetched image over the limit.
        return _bad(
            param,
            f"The {self.noun} at '{param}' could not be used: it is larger than the limit of "
            f"{self.max_bytes} bytes.",
            f"{self.noun}_too_large",
        )

    def check_base64(self, text: str, param: str) -> None:
        """Refuse, before decoding, base64 too long to fit even if it is line-wrapped."""
        if self.max_bytes is None:
            return
        letters = len(text) * _LINE // _WRAPPED_LINE
        # One quantum of slack, for padding and a final line break; the decoded size is checked too.
        if (letters - 4) * 3 // 4 > self.max_bytes:
            raise self.refuse(param)

    def check_percent(self, payload: str, param: str) -> None:
        """Refuse, before decoding, a percent-encoded payload too long to fit: `%XX` is one byte."""
        if self.max_bytes is not None and len(payload) // 3 > self.max_bytes:
            raise self.refuse(param)

    def check(self, raw: bytes, param: str) -> None:
        if self.max_bytes is not None and len(raw) > self.max_bytes:
            raise self.refuse(param)


def decode_base64(text: str, param: str, cap: SizeCap | None = None) -> tuple[str, bytes]:
    """(the base64 to send Google, the bytes it encodes). Standard base64 passes through untouched;
    the URL-safe alphabet, missing padding and line breaks are repaired, since clients send them.
    `cap` bounds the decoded size, checked from the text's length first, so that a payload far over
    it is refused without being decoded."""
    if cap is not None:
        cap.check_base64(text, param)
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        cleaned = "".join(text.split()).replace("-", "+").replace("_", "/").rstrip("=")
        cleaned += "=" * (-len(cleaned) % 4)
        try:
            raw = binascii.a2b_base64(cleaned, strict_mode=True)
        except (binascii.Error, ValueError):
            raise _bad(param, f"'{param}' is not valid base64.", "invalid_base64") from None
        text = cleaned
    if not raw:
        raise _bad(param, f"'{param}' is empty.", "invalid_base64")
    if cap is not None:
        cap.check(raw, param)
    return text, raw


def _data_uri(url: str, param: str, cap: SizeCap) -> tuple[str, str, bytes]:
    """`data:[type][;param...][;base64],payload` -> (normalised type, base64, bytes)."""
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise _bad(param, f"'{param}' is not a valid data URI: it has no ','.", "invalid_image_url")
    mime, *attributes = header.split(";")
    if any(attribute.strip().lower() == "base64" for attribute in attributes):
        data, raw = decode_base64(payload, param, cap)
    else:
        cap.check_percent(payload, param)
        raw = unquote_to_bytes(payload)  # RFC 2397's percent-encoded form
        if not raw:
            raise _bad(param, f"'{param}' is empty.", "invalid_base64")
        cap.check(raw, param)
        data = base64.b64encode(raw).decode("ascii")
    return normalise_type(mime), data, raw


def _image_part(
    part: ImagePart, param: str, fetched: Mapping[str, InlineData], max_bytes: int | None
) -> RequestPart:
    url = part.image_url.url  # `detail` has no Gemini counterpart; it is accepted and ignored
    if is_fetched_url(url):
        found = fetched.get(url)
        if found is None:
            # media_urls lists every such URL and the caller fetches them all first.
            raise RuntimeError(f"{param} was not fetched before translation")
        return found.part()
    if not _is_data_uri(url):
        raise _bad(
            param,
            f"'{param}' must be an http(s) URL or a base64 data: URI.",
            "invalid_image_url",
        )
    declared, data, raw = _data_uri(url, param, SizeCap(max_bytes, "image"))
    mime = image_type(declared, raw[:16])
    if mime is None:
        supported = ", ".join(sorted(IMAGE_TYPES))
        raise _bad(
            param,
            f"'{param}' has the unsupported image type '{declared or '(none)'}'. Supported: {supported}.",
            "invalid_image_format",
        )
    return InlineData(mime, data).part()


def _audio_part(part: AudioPart, param: str, max_bytes: int | None) -> RequestPart:
    audio_format = part.input_audio.format.strip().lower()
    mime = AUDIO_TYPES.get(audio_format)
    if mime is None:
        raise _bad(
            f"{param}.input_audio.format",
            f"Unsupported audio format '{part.input_audio.format}' in '{param}.input_audio.format'; "
            "supported: wav, mp3.",
            "invalid_value",
        )
    data, _ = decode_base64(part.input_audio.data, f"{param}.input_audio.data", SizeCap(max_bytes, "audio"))
    return InlineData(mime, data).part()


def _file_part(part: FilePart, param: str, max_bytes: int | None) -> RequestPart:
    file = part.file
    if file.file_data is None:
        if file.file_id is not None:
            raise _bad(
                f"{param}.file.file_id",
                f"'{param}.file.file_id' is not supported: this proxy has no file store; "
                "send the file inline as 'file_data'.",
                "unsupported_parameter",
            )
        raise _bad(
            f"{param}.file.file_data",
            f"Missing required parameter: '{param}.file.file_data'.",
            "missing_required_parameter",
        )
    where = f"{param}.file.file_data"
    cap = SizeCap(max_bytes, "file")
    if _is_data_uri(file.file_data):
        mime, data, raw = _data_uri(file.file_data, where, cap)
    else:
        data, raw = decode_base64(file.file_data, where, cap)
        named_pdf = (file.filename or "").strip().lower().endswith(".pdf")
        # Bare base64 carries no type: the file name or the bytes say whether it is a PDF.
        mime = PDF if named_pdf or raw.startswith(b"%PDF-") else ""
    if mime in GENERIC_TYPES and raw.startswith(b"%PDF-"):
        mime = PDF
    if mime != PDF:
        raise _bad(
            where,
            f"'{where}' must be a PDF (a 'data:application/pdf;base64,...' URI, or base64 with a "
            "'.pdf' filename); other file types are not supported.",
            "invalid_value",
        )
    return InlineData(PDF, data).part()


def media_part(
    part: ImagePart | AudioPart | FilePart,
    param: str,
    fetched: Mapping[str, InlineData],
    *,
    max_bytes: int | None = None,
) -> RequestPart:
    """The Gemini part for one media content part; `param` is its position, e.g.
    `messages[0].content[1]`, and `fetched` holds the fetched http(s) images by URL. `max_bytes`
    caps the decoded size of inline media (the fetched images were capped as they were read)."""
    if isinstance(part, ImagePart):
        return _image_part(part, f"{param}.image_url.url", fetched, max_bytes)
    if isinstance(part, AudioPart):
        return _audio_part(part, param, max_bytes)
    return _file_part(part, param, max_bytes)
