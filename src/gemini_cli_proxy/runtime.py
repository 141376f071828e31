"""What request handlers share, attached to the app object (never a module global)."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp import web

from .catalog import Catalog
from .pool.credentials import Credential
from .pool.dispatch import Gateway
from .pool.scheduler import Scheduler
from .settings import Settings


@dataclass
class Runtime:
    """Built by create_app; the gateway and session exist while the app is running."""

    settings: Settings
    catalog: Catalog
    credentials: list[Credential]
    scheduler: Scheduler
    gateway: Gateway | None = None
    session: aiohttp.ClientSession | None = None

    def require_gateway(self) -> Gateway:
        if self.gateway is None:
            raise RuntimeError("the app has not started")
        return self.gateway


RUNTIME = web.AppKey("runtime", Runtime)


def runtime_of(request: web.Request) -> Runtime:
    return request.app[RUNTIME]
