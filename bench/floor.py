"""The floor: the smallest honest aiohttp pass-through between an OpenAI client and Gemini.

It accepts the same ``POST /v1/chat/completions`` as the proxy, reads only the ``stream`` flag, forwards a
fixed Gemini body to the upstream over one shared, pooled ``ClientSession`` and hands back the upstream's
JSON unchanged (non-stream) or relays its SSE bytes as they arrive, then ``data: [DONE]`` (stream). No
validation, no translation, no logging: whatever the proxy costs above this is the price of its features.

    python bench/floor.py --port 8100 --upstream http://127.0.0.1:8090
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web

try:
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # the proxy depends on orjson, but the floor should not need it
    _loads = json.loads

MODEL = "gemini-2.5-flash"
GEMINI_BODY = b'{"contents":[{"role":"user","parts":[{"text":"hello"}]}]}'
UPSTREAM_HEADERS = {"Content-Type": "application/json", "x-goog-api-key": "bench-floor"}
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}

SESSION = web.AppKey("session", aiohttp.ClientSession)


def make_app(upstream: str) -> web.Application:
    base = upstream.rstrip("/")
    plain_url = f"{base}/v1beta/models/{MODEL}:generateContent"
    stream_url = f"{base}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60.0)
        async with aiohttp.ClientSession(connector=connector, headers=UPSTREAM_HEADERS) as session:
            app[SESSION] = session
            yield

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        body = _loads(await request.read())
        session = request.app[SESSION]
        if not body.get("stream"):
            async with session.post(plain_url, data=GEMINI_BODY) as upstream_resp:
                payload = await upstream_resp.read()
                return web.Response(
                    body=payload, status=upstream_resp.status, content_type="application/json"
                )
        async with session.post(stream_url, data=GEMINI_BODY) as upstream_resp:
            if upstream_resp.status != 200:
                payload = await upstream_resp.read()
                return web.Response(
                    body=payload, status=upstream_resp.status, content_type="application/json"
                )
            resp = web.StreamResponse(headers=SSE_HEADERS)
            await resp.prepare(request)
            async for chunk in upstream_resp.content.iter_any():
                await resp.write(chunk)
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", chat_completions)
    return app


async def serve(host: str, port: int, upstream: str) -> None:
    runner = web.AppRunner(make_app(upstream), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=2048)
        await site.start()
        bound_port = runner.addresses[0][1] if runner.addresses else port
        print(f"listening on http://{host}:{bound_port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100, help="0 picks a free port (printed)")
    parser.add_argument("--upstream", required=True, help="base URL of the (fake) Gemini API")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port, args.upstream))
    else:
        uvloop.run(serve(args.host, args.port, args.upstream))


if __name__ == "__main__":
    main()
