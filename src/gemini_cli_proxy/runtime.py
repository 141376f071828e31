"""What request handlers share, attached to the app object (never a module global)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .catalog import Catalog
from .pool.credentials import Credential
from .pool.dispatch import Gateway
from .pool.scheduler import Scheduler
from .pool.usage import UsageRecorder
from .settings import Settings
from .signature_cache import SignatureCache
from .store.base import StateStore
from .upstream.media_fetch import MediaFetcher


@dataclass
class Runtime:
    """Built by create_app; the gateway and the media fetcher exist while the app is running."""

    settings: Settings
    catalog: Catalog
    credentials: list[Credential]
    store: StateStore
    scheduler: Scheduler
    usage: UsageRecorder
    signatures: SignatureCache
    safety: list[dict[str, str]] | None = None  # the safetySettings every request carries
    gateway: Gateway | None = None
    media: MediaFetcher | None = None

    def require_gateway(self) -> Gateway:
        if self.gateway is None:
            raise RuntimeError("the app has not started")
        return self.gateway

    def require_media(self) -> MediaFetcher:
        if self.media is None:
            raise RuntimeError("the app has not started")
        return self.media


RUNTIME = web.AppKey("runtime", Runtime)


def runtime_of(request: web.Request) -> Runtime:
    return request.app[RUNTIME]
