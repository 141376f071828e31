"""Images, audio and PDFs end to end: openai SDK -> proxy (-> a local image server) -> fake Google.

The image server runs on the test loop next to the proxy; it counts hits per path so that tests can
prove what the proxy fetched (each URL once) and what it never connected to (refused addresses).
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from gemini_cli_proxy.media_fetch import IPAddress, MediaFetcher
from gemini_cli_proxy.runtime import runtime_of_app
from gemini_cli_proxy.testing import FakeGoogle

from conftest import Proxy, StartProxy
from support import LoopThread

MODEL = "gemini-2.5-flash"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00;"
PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00"
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x00"
SMALL_LIMIT = 1000
BARRIER = 3


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def inline(mime: str, data: bytes) -> dict[str, Any]:
    return {"inlineData": {"mimeType": mime, "data": b64(data)}}


@dataclass
class ImageServer:
    url: str
    port: int
    hits: Counter[str] = field(default_factory=Counter)
    waiting: int = 0
    everyone_arrived: asyncio.Event = field(default_factory=asyncio.Event)


def _image_app(server: ImageServer) -> web.Application:
    def fixed(body: bytes, content_type: str | None) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            server.hits[request.path] += 1
            # aiohttp adds application/octet-stream to a body without a type; an empty header is
            # the closest a test server gets to "no type at all".
            return web.Response(body=body, headers={"Content-Type": content_type or ""})

        return handler

    async def redirect(request: web.Request) -> web.StreamResponse:
        server.hits[request.path] += 1
        raise web.HTTPFound(request.query["to"])

    async def loop(request: web.Request) -> web.StreamResponse:
        server.hits[request.path] += 1
        raise web.HTTPFound(f"/loop?n={int(request.query.get('n', '0')) + 1}")

    async def endless(request: web.Request) -> web.StreamResponse:
        """An image that never ends and declares no length: only an incremental cap stops it."""
        server.hits[request.path] += 1
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        await response.write(PNG)
        try:
            while True:
                await response.write(b"\x00" * 4096)
                await asyncio.sleep(0)
        except ConnectionError:  # the proxy hung up, as it should
            return response

    async def slow(request: web.Request) -> web.StreamResponse:
        server.hits[request.path] += 1
        await asyncio.sleep(5)
        return web.Response(body=PNG, content_type="image/png")

    async def barrier(request: web.Request) -> web.StreamResponse:
        """Answers only once BARRIER requests are in flight together: proof of concurrent fetches."""
        server.hits[request.path] += 1
        server.waiting += 1
        if server.waiting >= BARRIER:
            server.everyone_arrived.set()
        try:
            await asyncio.wait_for(server.everyone_arrived.wait(), timeout=3)
        except TimeoutError:
            return web.Response(status=503, text="fetched one at a time")
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/cat.png", fixed(PNG, "image/png"))
    app.router.add_get("/photo.jpg", fixed(JPEG, "image/jpg; charset=binary"))  # misspelt type
    app.router.add_get("/anim", fixed(GIF, "application/octet-stream"))  # generic: sniffed
    app.router.add_get("/untyped", fixed(PNG, None))
    app.router.add_get("/page", fixed(b"<!doctype html><p>not an image</p>", "text/html"))
    app.router.add_get("/fake.png", fixed(b"<!doctype html>", "application/octet-stream"))
    app.router.add_get("/big.png", fixed(PNG + b"\x00" * (SMALL_LIMIT * 5), "image/png"))
    app.router.add_get("/endless.png", endless)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/slow.png", slow)
    app.router.add_get("/barrier/{n}", barrier)
    return app


@pytest.fixture(scope="module")
def image_server_module(loop_thread: LoopThread) -> Iterator[ImageServer]:
    server = ImageServer(url="", port=0)
    runner, url = loop_thread.start_app(_image_app(server))
    server.url, server.port = url, int(url.rsplit(":", 1)[1])
    yield server
    loop_thread.stop_app(runner)


@pytest.fixture
def images(image_server_module: ImageServer, loop_thread: LoopThread) -> ImageServer:
    server = image_server_module
    server.hits.clear()
    server.waiting = 0

    async def fresh_event() -> asyncio.Event:
        return asyncio.Event()  # made on the server's loop

    server.everyone_arrived = loop_thread.run(fresh_event())
    return server


@pytest.fixture
def open_proxy(start_proxy: StartProxy) -> Proxy:
    """A proxy allowed to fetch from loopback, where the test image server lives."""
    return start_proxy(proxy_allow_private_image_urls=True)


def user(*parts: dict[str, Any]) -> list[Any]:
    return [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, *parts]}]


def image_part(url: str, detail: str | None = None) -> dict[str, Any]:
    image_url: dict[str, Any] = {"url": url}
    if detail is not None:
        image_url["detail"] = detail
    return {"type": "image_url", "image_url": image_url}


def ask(proxy: Proxy, messages: list[Any], stream: bool) -> str:
    with proxy.client() as sdk:
        if not stream:
            result = sdk.chat.completions.create(model=MODEL, messages=messages)
            return result.choices[0].message.content or ""
        chunks = sdk.chat.completions.create(model=MODEL, messages=messages, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def sent_parts(fake: FakeGoogle) -> list[Any]:
    (sent,) = fake.generate_requests()
    parts: list[Any] = sent.request["contents"][0]["parts"]
    return parts


def refused(proxy: Proxy, messages: list[Any], stream: bool = False) -> dict[str, Any]:
    with proxy.client() as sdk, pytest.raises(openai.BadRequestError) as caught:
        if stream:
            list(sdk.chat.completions.create(model=MODEL, messages=messages, stream=True))
        else:
            sdk.chat.completions.create(model=MODEL, messages=messages)
    assert caught.value.status_code == 400
    body: dict[str, Any] = caught.value.response.json()["error"]
    assert body["type"] == "invalid_request_error"
    return body


class _TableResolver(AbstractResolver):
    """Names -> addresses from a table, so tests can give loopback servers 'public' names."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.table:
            raise OSError(f"unknown host {host}")
        address = self.table[host]
        return [{"hostname": host, "host": address, "port": port, "family": family, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        return None


@pytest.fixture
def swap_fetcher(loop_thread: LoopThread) -> Iterator[Any]:
    """Replace a running proxy's MediaFetcher (seams: address policy, resolver, timeout)."""
    swapped: list[tuple[Proxy, MediaFetcher, MediaFetcher | None]] = []

    def swap(proxy: Proxy, **kwargs: Any) -> MediaFetcher:
        fetcher = MediaFetcher(**kwargs)
        loop_thread.run(fetcher.start())
        runtime = runtime_of_app(proxy.app)
        swapped.append((proxy, fetcher, runtime.media))
        runtime.media = fetcher
        return fetcher

    yield swap
    for proxy, fetcher, original in swapped:
        runtime_of_app(proxy.app).media = original
        loop_thread.run(fetcher.close())


# Success


@pytest.mark.parametrize("stream", [False, True])
def test_image_by_data_uri_is_sent_inline_and_not_fetched(
    proxy: Proxy, fake: FakeGoogle, images: ImageServer, stream: bool
) -> None:
    url = f"data:image/png;base64,{b64(PNG)}"
    assert ask(proxy, user(image_part(url, detail="auto")), stream) == "Echo: what is this?"
    assert sent_parts(fake) == [{"text": "what is this?"}, inline("image/png", PNG)]
    assert not images.hits


@pytest.mark.parametrize("stream", [False, True])
def test_images_by_url_are_fetched_once_each_and_sent_inline(
    open_proxy: Proxy, fake: FakeGoogle, images: ImageServer, stream: bool
) -> None:
    messages = [
        *user(
            image_part(f"{images.url}/cat.png", detail="high"),
            image_part(f"{images.url}/photo.jpg"),
            image_part(f"{images.url}/anim"),
            image_part(f"{images.url}/untyped"),
        ),
        {"role": "assistant", "content": "A cat, a photo, a GIF and a PNG."},
        {
            "role": "user",
            "content": [image_part(f"{images.url}/cat.png"), {"type": "text", "text": "again?"}],
        },
    ]
    assert ask(open_proxy, messages, stream) == "Echo: again?"
    (sent,) = fake.generate_requests()
    assert sent.request["contents"][0]["parts"] == [
        {"text": "what is this?"},
        inline("image/png", PNG),
        inline("image/jpeg", JPEG),  # `image/jpg` normalised
        inline("image/gif", GIF),  # octet-stream: the magic bytes decided
        inline("image/png", PNG),  # no type at all: likewise
    ]
    assert sent.request["contents"][2]["parts"] == [inline("image/png", PNG), {"text": "again?"}]
    assert images.hits == {"/cat.png": 1, "/photo.jpg": 1, "/anim": 1, "/untyped": 1}


def test_urls_are_fetched_concurrently(open_proxy: Proxy, fake: FakeGoogle, images: ImageServer) -> None:
    parts = [image_part(f"{images.url}/barrier/{n}") for n in range(BARRIER)]
    ask(open_proxy, user(*parts), stream=False)
    assert sent_parts(fake)[1:] == [inline("image/png", PNG)] * BARRIER


def test_redirects_are_followed(open_proxy: Proxy, fake: FakeGoogle, images: ImageServer) -> None:
    ask(open_proxy, user(image_part(f"{images.url}/redirect?to=/cat.png")), stream=False)
    assert sent_parts(fake)[1] == inline("image/png", PNG)
    assert images.hits == {"/redirect": 1, "/cat.png": 1}


@pytest.mark.parametrize("stream", [False, True])
def test_audio_and_pdf_parts_are_sent_inline(proxy: Proxy, fake: FakeGoogle, stream: bool) -> None:
    messages = user(
        {"type": "input_audio", "input_audio": {"data": b64(WAV), "format": "wav"}},
        {"type": "input_audio", "input_audio": {"data": b64(MP3), "format": "mp3"}},
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{b64(PDF_BYTES)}"}},
        {"type": "file", "file": {"file_data": b64(PDF_BYTES), "filename": "paper.pdf"}},
    )
    ask(proxy, messages, stream)
    assert sent_parts(fake) == [
        {"text": "what is this?"},
        inline("audio/wav", WAV),
        inline("audio/mp3", MP3),
        inline("application/pdf", PDF_BYTES),
        inline("application/pdf", PDF_BYTES),
    ]


# Refusals: always a 400 naming the part, and never a call to Google


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]"])
def test_loopback_urls_are_refused_by_default(
    proxy: Proxy, fake: FakeGoogle, images: ImageServer, host: str, stream: bool
) -> None:
    messages = user(
        image_part(f"data:image/gif;base64,{b64(GIF)}"), image_part(f"http://{host}:{images.port}/cat.png")
    )
    error = refused(proxy, messages, stream)
    assert error["param"] == "messages[0].content[2].image_url.url"
    assert error["code"] == "invalid_image_url"
    assert "was refused" in error["message"] and "public" in error["message"]
    assert fake.generate_requests() == []
    assert not images.hits  # never even connected


@pytest.mark.parametrize(
    ("path", "code", "words"),
    [
        ("/missing.png", "invalid_image_url", "HTTP 404"),
        ("/page", "invalid_image_format", "text/html"),
        ("/fake.png", "invalid_image_format", "application/octet-stream"),
        ("/big.png", "invalid_image_url", f"limit of {SMALL_LIMIT} bytes"),
        ("/endless.png", "invalid_image_url", f"limit of {SMALL_LIMIT} bytes"),
        ("/loop", "invalid_image_url", "more than 3 redirects"),
        ("/redirect?to=ftp://example.test/cat.png", "invalid_image_url", "not http(s)"),
    ],
)
def test_fetch_failures_are_400s_naming_the_part(
    start_proxy: StartProxy, fake: FakeGoogle, images: ImageServer, path: str, code: str, words: str
) -> None:
    proxy = start_proxy(proxy_allow_private_image_urls=True, proxy_max_image_bytes=SMALL_LIMIT)
    messages = [
        {"role": "system", "content": "be brief"},
        *user(image_part(f"{images.url}/cat.png"), image_part(f"{images.url}{path}")),
    ]
    error = refused(proxy, messages)
    assert error["param"] == "messages[1].content[2].image_url.url"
    assert error["code"] == code
    assert words in error["message"]
    assert fake.generate_requests() == []
    if path == "/loop":
        assert images.hits["/loop"] == 4  # the first request and three redirects, no more


def test_unreachable_host_is_a_400(open_proxy: Proxy, fake: FakeGoogle) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connection refused
        error = refused(open_proxy, user(image_part(f"http://127.0.0.1:{port}/x.png")))
    assert error["param"] == "messages[0].content[1].image_url.url"
    assert "cannot connect" in error["message"]
    assert fake.generate_requests() == []


def test_slow_image_times_out(
    open_proxy: Proxy, fake: FakeGoogle, images: ImageServer, swap_fetcher: Any
) -> None:
    swap_fetcher(open_proxy, allow_private=True, timeout=0.3)
    error = refused(open_proxy, user(image_part(f"{images.url}/slow.png")))
    assert error["param"] == "messages[0].content[1].image_url.url"
    assert "within 0.3 s" in error["message"]
    assert fake.generate_requests() == []


def _only_first_loopback(ip: IPAddress) -> bool:
    """A policy for tests: 127.0.0.1 plays a public address, everything else stays refused."""
    return str(ip) != "127.0.0.1"


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("http://public.test:{port}/cat.png", True),  # positive control: the redirect itself is fine
        ("http://private.test:{port}/cat.png", False),  # a name that resolves to a refused address
        ("http://127.0.0.2:{port}/cat.png", False),  # a literal refused address
        ("http://[::1]:{port}/cat.png", False),
    ],
)
def test_redirect_to_a_private_address_is_refused(
    proxy: Proxy, fake: FakeGoogle, images: ImageServer, swap_fetcher: Any, target: str, allowed: bool
) -> None:
    swap_fetcher(
        proxy,
        allow_private=False,
        blocked=_only_first_loopback,
        resolver=_TableResolver({"public.test": "127.0.0.1", "private.test": "127.0.0.2"}),
    )
    start = f"http://public.test:{images.port}/redirect?to={target.format(port=images.port)}"
    if allowed:
        ask(proxy, user(image_part(start)), stream=False)
        assert sent_parts(fake)[1] == inline("image/png", PNG)
        return
    error = refused(proxy, user(image_part(start)))
    assert error["param"] == "messages[0].content[1].image_url.url"
    assert error["code"] == "invalid_image_url"
    assert "was refused" in error["message"]
    assert fake.generate_requests() == []
    assert images.hits == {"/redirect": 1}  # the refused hop was never connected to


@pytest.mark.parametrize(
    ("part", "param", "code"),
    [
        (image_part("data:image/png;base64,@@@"), "messages[0].content[1].image_url.url", "invalid_base64"),
        (
            image_part(f"data:image/svg+xml;base64,{b64(b'<svg/>')}"),
            "messages[0].content[1].image_url.url",
            "invalid_image_format",
        ),
        (
            {"type": "input_audio", "input_audio": {"data": b64(WAV), "format": "flac"}},
            "messages[0].content[1].input_audio.format",
            "invalid_value",
        ),
        (
            {"type": "file", "file": {"file_id": "file-123"}},
            "messages[0].content[1].file.file_id",
            "unsupported_parameter",
        ),
        (
            {"type": "file", "file": {"file_data": b64(b"hello"), "filename": "notes.txt"}},
            "messages[0].content[1].file.file_data",
            "invalid_value",
        ),
    ],
)
def test_bad_inline_media_is_a_400_naming_the_part(
    proxy: Proxy, fake: FakeGoogle, part: dict[str, Any], param: str, code: str
) -> None:
    error = refused(proxy, user(part))
    assert (error["param"], error["code"]) == (param, code)
    assert fake.generate_requests() == []


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("part", "param", "code"),
    [
        (
            image_part(f"data:image/png;base64,{b64(PNG + bytes(SMALL_LIMIT))}"),
            "messages[0].content[1].image_url.url",
            "image_too_large",
        ),
        (
            {"type": "input_audio", "input_audio": {"data": b64(WAV + bytes(SMALL_LIMIT)), "format": "wav"}},
            "messages[0].content[1].input_audio.data",
            "audio_too_large",
        ),
        (
            {"type": "file", "file": {"file_data": b64(PDF_BYTES + bytes(SMALL_LIMIT)), "filename": "a.pdf"}},
            "messages[0].content[1].file.file_data",
            "file_too_large",
        ),
    ],
)
def test_inline_media_over_the_image_limit_is_a_400_naming_the_part(
    start_proxy: StartProxy, fake: FakeGoogle, part: dict[str, Any], param: str, code: str, stream: bool
) -> None:
    """The same PROXY_MAX_IMAGE_BYTES that caps a fetched image caps what a client sends inline."""
    proxy = start_proxy(proxy_max_image_bytes=SMALL_LIMIT)
    error = refused(proxy, user(part), stream)
    assert (error["param"], error["code"]) == (param, code)
    assert f"larger than the limit of {SMALL_LIMIT} bytes" in error["message"]
    assert fake.generate_requests() == []
    # Just under the limit, the same part goes through.
    small = user(image_part(f"data:image/png;base64,{b64(PNG + bytes(SMALL_LIMIT - len(PNG)))}"))
    assert ask(proxy, small, stream) == "Echo: what is this?"


def test_a_data_uri_over_the_default_20_mib_is_refused(proxy: Proxy, fake: FakeGoogle) -> None:
    limit = proxy.settings.proxy_max_image_bytes
    assert limit == 20 * 1024 * 1024
    error = refused(proxy, user(image_part(f"data:image/png;base64,{b64(PNG + bytes(limit))}")))
    assert error["param"] == "messages[0].content[1].image_url.url" and error["code"] == "image_too_large"
    assert fake.generate_requests() == []
