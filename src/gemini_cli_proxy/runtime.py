"""What request handlers share, attached to the app object (never a module global)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .catalog import Catalog
from .clock import Clock
from .credentials import Credential
from .media_fetch import MediaFetcher
from .pool.dispatch import Gateway
from .pool.scheduler import Scheduler
from .pool.usage import UsageRecorder
from .settings import Settings
from .signature_cache import SignatureCache
from .store.resilient import ResilientStore
from .stored_responses import ResponseStore


@dataclass(frozen=True, slots=True)
class Setup:
    """What create_app checked before serving (a bad setting or credential file stops start-up
    there, with one clear message); the app's lifespan builds the Runtime from it."""

    settings: Settings
    credentials: list[Credential]
    catalog: Catalog
    clock: Clock


@dataclass
class Runtime:
    """Everything the handlers share while the app runs: built by the app's lifespan (app.py)."""

    settings: Settings
    catalog: Catalog
    credentials: list[Credential]
    store: ResilientStore  # degraded to in-process state while the configured store is unreachable
    scheduler: Scheduler
    usage: UsageRecorder
    signatures: SignatureCache
    gateway: Gateway
    media: MediaFetcher
    responses: ResponseStore  # stored Responses API responses


@dataclass
class Running:
    """The Runtime while the app runs (an app's items cannot change once it has started)."""

    runtime: Runtime | None = None


SETUP = web.AppKey("setup", Setup)
RUNNING = web.AppKey("running", Running)


def runtime_of_app(app: web.Application) -> Runtime:
    runtime = app[RUNNING].runtime
    if runtime is None:
        raise RuntimeError("the app is not running")
    return runtime


def runtime_of(request: web.Request) -> Runtime:
    return runtime_of_app(request.app)
