"""GET /status: the pool at a glance, a page with no build step and no outside assets that refreshes
itself from GET /status.json.

Behind the proxy key, or a cookie set from it: a browser cannot send a bearer header, so the key comes
once (the sign-in form's POST, or `?key=`), and the answer sets an HttpOnly, SameSite=Strict cookie and
sends the browser to the page without the key in its address. The cookie holds an HMAC of the key,
not the key: it opens the status page and nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import time
from importlib.resources import files
from typing import Any

from aiohttp import web

from ..frontdoor import json_response
from ..middleware import matches_any, presented_key
from ..pool.daily import today
from ..runtime import Runtime, runtime_of
from .pool_view import credential_rows, iso

COOKIE = "gemini_cli_proxy_status"
COOKIE_SECONDS = 7 * 86_400
REFRESH_SECONDS = 5
_PAGE = (
    files(__package__)
    .joinpath("status_page.html")
    .read_text("utf-8")
    .replace("__REFRESH_MS__", str(REFRESH_SECONDS * 1000))
    .encode()
)
_HTML_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    # Nothing from elsewhere: the page's own style and script only, and fetches to this origin.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}
_SIGN_IN = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>gemini-cli-proxy status</title>
<style>body{{font:16px system-ui,sans-serif;margin:0;display:grid;place-items:center;min-height:100vh;
background:#f6f8fa}}form{{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:20px;
width:min(92vw,360px)}}input,button{{font:inherit;width:100%;padding:8px;margin-top:8px}}
p{{color:#cf222e}}</style></head><body><form method="post" action="status">
<label for="key">Proxy key</label><input id="key" name="key" type="password" autocomplete="current-password"
autofocus required>{problem}<button type="submit">Show the pool</button></form></body></html>"""


def _keys(runtime: Runtime) -> list[bytes]:
    return [key.encode() for key in runtime.settings.client_keys()]


def _cookie_value(key: bytes) -> str:
    return hmac.new(key, b"gemini-cli-proxy status page", hashlib.sha256).hexdigest()


def _signed_in(request: web.Request, keys: list[bytes]) -> bool:
    if not keys:
        return True  # no proxy key: the proxy listens on loopback only
    if matches_any(presented_key(request), keys):
        return True
    cookie = request.cookies.get(COOKIE, "").encode()
    return matches_any(cookie, [_cookie_value(key).encode() for key in keys])


def _sign_in_page(problem: str = "") -> web.Response:
    shown = f"<p>{html.escape(problem)}</p>" if problem else ""
    return web.Response(status=401, body=_SIGN_IN.format(problem=shown).encode(), headers=_HTML_HEADERS)


def _to_page(request: web.Request, key: bytes) -> web.Response:
    """303 to the page, with the cookie that opens it from now on."""
    response = web.Response(status=303, headers={"Location": "status", "Cache-Control": "no-store"})
    response.set_cookie(
        COOKIE,
        _cookie_value(key),
        max_age=COOKIE_SECONDS,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def page(request: web.Request) -> web.Response:
    keys = _keys(runtime_of(request))
    offered = request.query.get("key", "").strip().encode()
    if keys and offered and matches_any(offered, keys):
        return _to_page(request, offered)
    if not _signed_in(request, keys):
        return _sign_in_page("That key is not one of this proxy's." if offered else "")
    return web.Response(body=_PAGE, headers=_HTML_HEADERS)


async def sign_in(request: web.Request) -> web.Response:
    keys = _keys(runtime_of(request))
    form = await request.post()
    offered = str(form.get("key", "")).strip().encode()
    if not keys or matches_any(offered, keys):
        return (
            _to_page(request, offered) if keys else web.Response(status=303, headers={"Location": "status"})
        )
    return _sign_in_page("That key is not one of this proxy's.")


async def data(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    if not _signed_in(request, _keys(runtime)):
        return json_response({"error": {"message": "Sign in at /status with the proxy key."}}, status=401)
    return json_response(await status_data(runtime), headers={"Cache-Control": "no-store"})


async def status_data(runtime: Runtime) -> dict[str, Any]:
    """The pool for the page: each credential's state, cooldown left, today's counts, last error."""
    await runtime.usage.flush()  # what has happened, not what was last batched
    now = time.time()
    rows = await credential_rows(runtime)
    counts = await today(runtime.store, [row["id"] for row in rows], now)
    credentials = []
    for row in rows:
        # The latest model's usage holds the latest error (ISO times sort as text).
        last = max(row["usage"].values(), key=lambda u: u["last_used"] or "", default=None)
        credentials.append(
            {
                "id": row["id"],
                "label": row["label"],
                "kind": row["kind"],
                "pool": row["pool"],
                "state": row["state"],
                "disabled_reason": row["disabled_reason"],
                "cooldown_seconds": max(
                    (c["remaining_seconds"] for c in row["cooldowns"].values()), default=0
                ),
                "cooling_models": sorted(row["cooldowns"]),
                "requests_today": counts[row["id"]].requests,
                "tokens_today": counts[row["id"]].tokens,
                "last_error": row["disabled_reason"] or (last["last_error"] if last else None),
                "last_used": last["last_used"] if last else None,
            }
        )
    states = [c["state"] for c in credentials]
    return {
        "generated_at": iso(now),
        "state_store": "degraded" if runtime.store.degraded else "ok",
        "pool": {name: states.count(name) for name in ("ok", "cooling", "disabled")},
        "today": {
            "requests": sum(c["requests_today"] for c in credentials),
            "tokens": sum(c["tokens_today"] for c in credentials),
        },
        "credentials": credentials,
    }


def register(app: web.Application) -> None:
    app.router.add_get("/status", page)
    app.router.add_post("/status", sign_in)
    app.router.add_get("/status.json", data)
