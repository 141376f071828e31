"""GET /metrics: Prometheus's text format (prometheus-client), behind the proxy key unless
PROXY_METRICS_PUBLIC opens it."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from ..metrics import METRICS
from ..runtime import runtime_of
from .pool_view import credential_rows


async def scrape(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    await runtime.usage.flush()  # the pool as it is now, not as last batched
    body = request.app[METRICS].exposition(
        await credential_rows(runtime), store_degraded=runtime.store.degraded
    )
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def register(app: web.Application) -> None:
    app.router.add_get("/metrics", scrape)
