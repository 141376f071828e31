"""create_app(settings): the aiohttp application and everything it owns.

The app's lifespan (cleanup context) owns the one upstream HTTP session; the scheduler, token
manager and clients hang off the app object, so two apps in one process share nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from . import drain
from .catalog import Catalog
from .clock import SYSTEM_CLOCK, Clock
from .credentials import Credential
from .media_fetch import MediaFetcher
from .metrics import METRICS, from_environment
from .middleware import error_middleware, make_auth_middleware
from .pool.dispatch import Gateway, RetryPolicy
from .pool.loading import load_credentials
from .pool.scheduler import CooldownPolicy, Scheduler
from .pool.usage import UsageRecorder
from .routes import chat, debug, embeddings, gemini, messages, metrics, models, responses, service, status
from .runtime import RUNNING, SETUP, Running, Runtime, Setup
from .settings import Settings
from .signature_cache import SignatureCache
from .store import MemoryStore, StateStore, open_store
from .store.resilient import ResilientStore
from .stored_responses import ResponseStore
from .upstream.apikey import ApiKeyClient, aistudio_models_url
from .upstream.client import Embedder, UpstreamClient
from .upstream.codeassist import CodeAssistClient
from .upstream.http import timeout
from .upstream.oauth import TokenManager
from .upstream.vertex import VertexClient, vertex_express_models_url

# Enough pooled connections to Google for thousands of concurrent streams, and keep-alive so
# that requests do not pay for a new TLS handshake.
UPSTREAM_CONNECTION_LIMIT = 0  # 0 = unlimited in aiohttp; concurrency is bounded by clients
KEEPALIVE_SECONDS = 60.0


def _upstream_session(settings: Settings) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=UPSTREAM_CONNECTION_LIMIT, keepalive_timeout=KEEPALIVE_SECONDS, ttl_dns_cache=300
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout(settings.proxy_connect_timeout, settings.proxy_upstream_timeout),
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
        headers={"User-Agent": "gemini-cli-proxy"},
    )


@dataclass(frozen=True, slots=True)
class _Upstreams:
    clients: dict[str, UpstreamClient[Any]]  # the upstream of each kind of credential
    embedders: dict[str, Embedder[Any]]  # those with an embedding method (Code Assist has none)

    def serves(self, catalog: Catalog) -> Callable[[Credential, str], bool]:
        """Whether a credential can serve a model: an embedding model needs an embedder."""
        embedding_kinds = frozenset(self.embedders)

        def serves(cred: Credential, model: str) -> bool:
            info = catalog.get(model)
            return info is None or not info.embeds or cred.kind in embedding_kinds

        return serves


def _upstreams(
    settings: Settings, session: aiohttp.ClientSession, store: StateStore, clock: Clock
) -> _Upstreams:
    """The upstream for each kind of credential."""
    tokens = TokenManager(
        session,
        token_url=settings.google_oauth_token_url,
        client_id=settings.gemini_oauth_client_id,
        client_secret=settings.gemini_oauth_client_secret,
        clock=clock.time,
        store=store,
    )
    embedders: dict[str, ApiKeyClient | VertexClient] = {
        "aistudio": ApiKeyClient(session, aistudio_models_url(settings.gemini_api_base_url)),
        "vertex": VertexClient(session, base_url=settings.vertex_api_base_url, clock=clock.time),
        "vertex-key": ApiKeyClient(
            session, vertex_express_models_url(settings.vertex_api_base_url), vertex=True
        ),
    }
    code_assist = CodeAssistClient(
        session,
        tokens,
        endpoint=settings.code_assist_endpoint,
        api_version=settings.code_assist_api_version,
        project_id=settings.gemini_project_id,
        store=store,
    )
    return _Upstreams({**embedders, "codeassist": code_assist}, dict(embedders))


async def _lifespan(app: web.Application) -> AsyncIterator[None]:
    """Everything the handlers share, built here and nowhere else, and torn down in reverse."""
    setup = app[SETUP]
    settings, clock = setup.settings, setup.clock
    backend = open_store(settings.proxy_state_url, clock=clock.time)
    store = ResilientStore(backend)
    session = _upstream_session(settings)
    upstreams = _upstreams(settings, session, store, clock)
    scheduler = Scheduler(
        setup.credentials,
        store,
        clock=clock.time,
        monotonic=clock.monotonic,
        policy=CooldownPolicy(default_seconds=settings.proxy_cooldown_seconds),
        # memory:// holds nothing another instance could change, and reading it costs nothing.
        state_max_age=0.0 if isinstance(backend, MemoryStore) else settings.proxy_state_max_age,
        serves=upstreams.serves(setup.catalog),
        on_cooldown=app[METRICS].cooled,
    )
    usage = UsageRecorder(store, clock=clock.time, listener=scheduler.count_usage)
    signatures = SignatureCache(store)
    # Client-named image URLs are fetched on a session of their own, whose resolver refuses
    # private addresses: never on the one that carries Google credentials.
    media = MediaFetcher(
        allow_private=settings.proxy_allow_private_image_urls, max_bytes=settings.proxy_max_image_bytes
    )
    try:
        await store.start()
        # "Disabled until restart": a restart is the operator's way to say "try these again".
        for cred in setup.credentials:
            await store.clear_disabled(cred.id)
        await media.start()
        usage.start()
        signatures.start()
        retry = RetryPolicy(
            max_attempts=settings.proxy_retry_attempts, deadline_seconds=settings.proxy_retry_deadline
        )
        app[RUNNING].runtime = Runtime(
            settings=settings,
            catalog=setup.catalog,
            credentials=setup.credentials,
            store=store,
            scheduler=scheduler,
            usage=usage,
            signatures=signatures,
            gateway=Gateway(
                scheduler,
                usage,
                upstreams.clients,
                embedders=upstreams.embedders,
                metrics=app[METRICS],
                retry=retry,
                clock=clock,
            ),
            media=media,
            responses=ResponseStore(
                store, ttl=settings.proxy_responses_ttl, max_bytes=settings.proxy_responses_max_bytes
            ),
        )
        yield
    finally:
        app[RUNNING].runtime = None
        await signatures.stop()
        await usage.stop()
        await session.close()
        await media.close()
        await store.close()


def create_app(settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> web.Application:
    """The application for `settings`; raises ValueError for a setting or credential it cannot use.
    Nothing is connected or opened until it starts (see _lifespan). `clock`: tests pass their own."""
    open_store(settings.proxy_state_url)  # a URL it cannot use stops start-up here
    app = web.Application(
        client_max_size=settings.proxy_max_body_bytes,
        middlewares=[
            error_middleware,
            make_auth_middleware(
                settings.client_keys(), also_open=("/metrics",) if settings.proxy_metrics_public else ()
            ),
        ],
    )
    app[SETUP] = Setup(
        settings,
        load_credentials(settings),
        Catalog.with_extras(settings.proxy_models, settings.proxy_model_aliases),
        clock,
    )
    app[RUNNING] = Running()
    app[METRICS] = from_environment()
    drain.install(app, settings.proxy_shutdown_grace)
    app.cleanup_ctx.append(_lifespan)
    service.register(app)
    models.register(app)
    chat.register(app)
    embeddings.register(app)
    responses.register(app)
    messages.register(app)
    gemini.register(app)
    debug.register(app)
    metrics.register(app)
    status.register(app)
    return app
