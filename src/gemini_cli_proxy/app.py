"""create_app(settings): the aiohttp application and everything it owns.

The app's lifespan (cleanup context) owns the one upstream HTTP session; the scheduler, token
manager and clients hang off the app object, so two apps in one process share nothing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from . import drain
from .catalog import Catalog
from .middleware import error_middleware, make_auth_middleware
from .pool.credentials import load_credentials
from .pool.dispatch import Gateway, RetryPolicy
from .pool.scheduler import CooldownPolicy, Scheduler
from .pool.usage import UsageRecorder
from .routes import chat, debug, models, service
from .runtime import RUNTIME, Runtime
from .settings import Settings
from .signature_cache import SignatureCache
from .store import MemoryStore, open_store
from .store.resilient import ResilientStore
from .translate.output import safety_settings
from .upstream.apikey import ApiKeyClient, aistudio_models_url
from .upstream.codeassist import CodeAssistClient
from .upstream.http import timeout
from .upstream.media_fetch import MediaFetcher
from .upstream.oauth import TokenManager
from .upstream.vertex import VertexClient, vertex_express_models_url

# Enough pooled connections to Google for thousands of concurrent streams, and keep-alive so
# that requests do not pay for a new TLS handshake.
UPSTREAM_CONNECTION_LIMIT = 0  # 0 = unlimited in aiohttp; concurrency is bounded by clients
KEEPALIVE_SECONDS = 60.0


async def _state(app: web.Application) -> AsyncIterator[None]:
    """The state store and the usage recorder that writes to it, for the app's lifetime."""
    runtime = app[RUNTIME]
    await runtime.store.start()
    # "Disabled until restart": a restart is the operator's way to say "try these again".
    for cred in runtime.credentials:
        await runtime.store.clear_disabled(cred.id)
    runtime.usage.start()
    runtime.signatures.start()
    try:
        yield
    finally:
        await runtime.signatures.stop()
        await runtime.usage.stop()
        await runtime.store.close()


async def _upstream_session(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    settings = runtime.settings
    connector = aiohttp.TCPConnector(
        limit=UPSTREAM_CONNECTION_LIMIT, keepalive_timeout=KEEPALIVE_SECONDS, ttl_dns_cache=300
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=timeout(settings.proxy_connect_timeout, settings.proxy_upstream_timeout),
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
        headers={"User-Agent": "gemini-cli-proxy"},
    )
    tokens = TokenManager(
        session,
        token_url=settings.google_oauth_token_url,
        client_id=settings.gemini_oauth_client_id,
        client_secret=settings.gemini_oauth_client_secret,
        clock=time.time,
        store=runtime.store,
    )
    codeassist = CodeAssistClient(
        session,
        tokens,
        endpoint=settings.code_assist_endpoint,
        api_version=settings.code_assist_api_version,
        project_id=settings.gemini_project_id,
        store=runtime.store,
    )
    # Client-named image URLs are fetched on a session of their own, whose resolver refuses
    # private addresses: never on the one that carries Google credentials.
    media = MediaFetcher(
        allow_private=settings.proxy_allow_private_image_urls, max_bytes=settings.proxy_max_image_bytes
    )
    await media.start()
    runtime.media = media
    runtime.gateway = Gateway(
        runtime.scheduler,
        runtime.usage,
        {
            "aistudio": ApiKeyClient(session, aistudio_models_url(settings.gemini_api_base_url)),
            "codeassist": codeassist,
            "vertex": VertexClient(session, base_url=settings.vertex_api_base_url),
            "vertex-key": ApiKeyClient(session, vertex_express_models_url(settings.vertex_api_base_url)),
        },
        retry=RetryPolicy(
            max_attempts=settings.proxy_retry_attempts, deadline_seconds=settings.proxy_retry_deadline
        ),
    )
    try:
        yield
    finally:
        runtime.gateway = None
        runtime.media = None
        await session.close()
        await media.close()


def create_app(settings: Settings) -> web.Application:
    credentials = load_credentials(settings)
    backend = open_store(settings.proxy_state_url)
    store = ResilientStore(backend)
    scheduler = Scheduler(
        credentials,
        store,
        clock=time.time,
        policy=CooldownPolicy(default_seconds=settings.proxy_cooldown_seconds),
        # memory:// holds nothing another instance could change, and reading it costs nothing.
        state_max_age=0.0 if isinstance(backend, MemoryStore) else settings.proxy_state_max_age,
    )
    runtime = Runtime(
        settings=settings,
        catalog=Catalog.with_extras(settings.proxy_models),
        credentials=credentials,
        store=store,
        scheduler=scheduler,
        usage=UsageRecorder(store, clock=time.time, listener=scheduler.count_usage),
        signatures=SignatureCache(store),
        safety=safety_settings(settings.proxy_safety_settings),
    )
    app = web.Application(
        client_max_size=settings.proxy_max_body_bytes,
        middlewares=[error_middleware, make_auth_middleware(settings.client_keys())],
    )
    app[RUNTIME] = runtime
    drain.install(app, settings.proxy_shutdown_grace)
    app.cleanup_ctx.append(_state)
    app.cleanup_ctx.append(_upstream_session)
    service.register(app)
    models.register(app)
    chat.register(app)
    debug.register(app)
    return app
