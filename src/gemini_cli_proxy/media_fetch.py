"""Fetching the images clients name by http(s) URL, safely.

A proxy that fetches URLs for anyone is an SSRF hole: a client could make it read the cloud
metadata service or an intranet page. So media is fetched on its OWN session (never the one that
carries Google credentials), with no cookies, no environment proxies, a time limit, a size limit
read incrementally, a content-type check, and an address guard:

- the guard sits in the DNS resolver, so it judges the address actually connected to, for every
  hop, and a name that resolves to a public address for the check and a private one for the
  connection (DNS rebinding) cannot slip through;
- aiohttp does not ask the resolver about literal IP hosts, so those are checked per hop here, which
  is why redirects are followed by hand (at most MAX_REDIRECTS) instead of by aiohttp.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import Callable
from typing import Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from .connection import describe
from .errors import ProxyError, invalid_request
from .translate.media import (
    GENERIC_TYPES,
    IMAGE_TYPES,
    InlineData,
    image_type,
    is_fetched_url,
    normalise_type,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_REDIRECTS: Final = 3
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_CHUNK: Final = 64 * 1024
# Declared types worth reading the body for: image types, and generic ones the bytes then decide.
_ACCEPTABLE_TYPES: Final = IMAGE_TYPES | GENERIC_TYPES
# Connections to image hosts across all requests; generous, but bounded so that a flood of image
# URLs cannot open unbounded sockets.
_CONNECTION_LIMIT: Final = 64
# NAT64's well-known prefix embeds an IPv4 address in the low 32 bits (RFC 6052).
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def is_blocked_address(ip: IPAddress) -> bool:
    """True for every address an outside client must not reach through the proxy: loopback,
    private, link-local, multicast, reserved, unspecified, shared (CGNAT), documentation ranges.
    IPv6 forms that embed an IPv4 address (mapped, 6to4, NAT64) are judged by that address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_blocked_address(embedded)
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def _blocked_text(host: str, blocked: Callable[[IPAddress], bool]) -> bool:
    try:
        return blocked(ipaddress.ip_address(host))
    except ValueError:
        return True  # not an address we can judge: refuse rather than guess


class RefusedAddress(OSError):
    """A host that resolved only to addresses the guard refuses."""


class GuardedResolver(AbstractResolver):
    """Wraps a real resolver and drops the addresses `blocked` refuses; aiohttp connects only to
    what a resolver returns, so nothing refused is ever connected to."""

    def __init__(self, inner: AbstractResolver, blocked: Callable[[IPAddress], bool]) -> None:
        self._inner = inner
        self._blocked = blocked

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [result for result in results if not _blocked_text(result["host"], self._blocked)]
        if not allowed:
            raise RefusedAddress(f"{host} resolves only to addresses that are not public")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class _Failure(Exception):
    """Why one fetch failed, in words for the client; becomes a 400 naming the part."""

    def __init__(self, reason: str, code: str = "invalid_image_url") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class MediaFetcher:
    """Owns the media session; started and closed with the app."""

    def __init__(
        self,
        *,
        allow_private: bool,
        max_bytes: int = 20 * 1024 * 1024,
        timeout: float = 10.0,
        blocked: Callable[[IPAddress], bool] = is_blocked_address,
        resolver: AbstractResolver | None = None,
    ) -> None:
        """`blocked` and `resolver` (the resolver to guard; default aiohttp's) are seams for tests,
        which can only serve from loopback."""
        self.allow_private = allow_private
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._blocked = blocked
        self._inner = resolver
        self._resolver: AbstractResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        inner = self._inner if self._inner is not None else DefaultResolver()
        self._resolver = inner if self.allow_private else GuardedResolver(inner, self._blocked)
        connector = aiohttp.TCPConnector(resolver=self._resolver, limit=_CONNECTION_LIMIT)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            # One client's cookies must never reach another's fetch, nor an operator's proxy
            # settings redirect these requests.
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            skip_auto_headers=("User-Agent",),
            headers={"User-Agent": "gemini-cli-proxy", "Accept": "image/*"},
        )

    async def close(self) -> None:
        session, resolver = self._session, self._resolver
        self._session = self._resolver = None
        if session is not None:
            await session.close()
        if resolver is not None:
            await resolver.close()  # a connector does not close a resolver it was given

    async def fetch_all(self, urls: list[tuple[str, str]]) -> dict[str, InlineData]:
        """Every (url, param) fetched concurrently, each URL once. The first failure, in request
        order, is raised as a 400 naming its part; the other fetches are then cancelled."""
        params: dict[str, str] = {}
        for url, param in urls:
            params.setdefault(url, param)
        tasks = [asyncio.ensure_future(self._fetch(url, param)) for url, param in params.items()]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()  # no-op for finished ones; stops the rest on failure or disconnect
        # Every finished task's exception is retrieved, so asyncio logs none as "never retrieved".
        failures = [task.exception() for task in tasks if task.done() and not task.cancelled()]
        for failure in failures:
            if failure is not None:
                raise failure
        return {url: task.result() for url, task in zip(params, tasks, strict=True)}

    async def _fetch(self, url: str, param: str) -> InlineData:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._follow(url)
        except _Failure as failure:
            raise _error(param, f"could not be used: {failure.reason}", failure.code) from None
        except TimeoutError:
            raise _error(
                param, f"could not be fetched: no complete answer within {self.timeout:g} s"
            ) from None
        except RefusedAddress as refused:
            raise _refused(param, refused) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, RefusedAddress):
                raise _refused(param, exc.os_error) from None
            if isinstance(exc, aiohttp.ClientConnectorDNSError):
                raise _error(param, f"could not be fetched: cannot resolve {exc.host}") from None
            raise _error(param, f"could not be fetched: cannot connect to {exc.host}") from None
        except (aiohttp.InvalidURL, ValueError):  # yarl refuses unparsable URLs with ValueError
            raise _error(param, "is not a valid URL") from None
        except aiohttp.ClientError as exc:
            raise _error(param, f"could not be fetched: {describe(exc, 'the image host')}") from None

    async def _follow(self, url: str) -> InlineData:
        session = self._session
        if session is None:
            raise RuntimeError("MediaFetcher.start() was not called")
        target = URL(url)
        for _ in range(MAX_REDIRECTS + 1):
            self._check_literal_host(target)
            async with session.get(target, allow_redirects=False) as resp:
                if resp.status in _REDIRECTS and "Location" in resp.headers:
                    target = resp.url.join(URL(resp.headers["Location"]))
                    if not is_fetched_url(str(target)):
                        raise _Failure("it redirects to a URL that is not http(s)")
                    continue
                if not 200 <= resp.status < 300:
                    raise _Failure(f"the server answered HTTP {resp.status}")
                return await self._read_image(resp)
        raise _Failure(f"more than {MAX_REDIRECTS} redirects")

    def _check_literal_host(self, target: URL) -> None:
        host = target.host
        if self.allow_private or host is None:
            return
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return  # a name: the guarded resolver judges what it resolves to
        if self._blocked(address):
            raise RefusedAddress(f"{host} is not a public address")

    async def _read_image(self, resp: aiohttp.ClientResponse) -> InlineData:
        declared = resp.headers.get("Content-Type")
        if normalise_type(declared) not in _ACCEPTABLE_TYPES:
            raise _type_failure(declared)  # text/html and the like: refused before reading the body
        if resp.content_length is not None and resp.content_length > self.max_bytes:
            raise _Failure(f"it is larger than the limit of {self.max_bytes} bytes")
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > self.max_bytes:
                resp.close()  # stop downloading now; the connection is not reusable anyway
                raise _Failure(f"it is larger than the limit of {self.max_bytes} bytes")
        if not body:
            raise _Failure("the answer was empty")
        found = image_type(declared, bytes(body[:16]))
        if found is None:
            raise _type_failure(declared)
        return InlineData(found, base64.b64encode(body).decode("ascii"))


def _type_failure(declared: str | None) -> _Failure:
    supported = ", ".join(sorted(IMAGE_TYPES))
    mime = normalise_type(declared)
    if mime in GENERIC_TYPES:
        what = f"its content type is '{mime or '(none)'}' and its bytes are no supported image"
    else:
        what = f"its content type '{mime}' is not a supported image type"
    return _Failure(f"{what} ({supported})", code="invalid_image_format")


def _refused(param: str, refused: RefusedAddress) -> ProxyError:
    return _error(param, f"was refused: {refused}, and this proxy fetches images only from public addresses")


def _error(param: str, what: str, code: str = "invalid_image_url") -> ProxyError:
    return invalid_request(f"The image at '{param}' {what}.", param=param, code=code)
