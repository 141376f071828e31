"""The error middleware once a stream has begun: whatever a handler raises then ends that stream with
an error event and `[DONE]`; it never writes a second HTTP response into the body."""

from __future__ import annotations

import logging

import httpx
import pytest
from aiohttp import web

from gemini_cli_proxy import drain, errors
from gemini_cli_proxy.frontdoor import begin_stream
from gemini_cli_proxy.middleware import error_middleware

from support import LoopThread


def _app(failure: BaseException) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = await begin_stream(request, {"Content-Type": "text/event-stream"})
        await response.write(b'data: {"partial": true}\n\n')
        raise failure

    app = web.Application(middlewares=[error_middleware])
    drain.install(app, grace=1.0)
    app.router.add_post("/stream", handler)
    return app


@pytest.mark.parametrize(
    ("failure", "code", "logged"),
    [
        (RuntimeError("a bug of ours"), "internal_error", True),
        (KeyError("candidates"), "internal_error", True),
        (errors.upstream_error("Google broke"), "upstream_error", False),
        (web.HTTPBadRequest(), None, False),
    ],
)
def test_an_exception_after_the_first_byte_ends_the_stream_with_an_error_event(
    failure: BaseException,
    code: str | None,
    logged: bool,
    loop_thread: LoopThread,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    runner, url = loop_thread.start_app(_app(failure))
    try:
        response = httpx.post(f"{url}/stream", timeout=10)
    finally:
        loop_thread.stop_app(runner)
    assert response.status_code == 200
    assert "HTTP/1.1" not in response.text
    assert response.text.startswith('data: {"partial": true}\n\n')
    assert response.text.endswith("\n\ndata: [DONE]\n\n"), response.text
    assert response.text.count("data: ") == 3 and '{"error":' in response.text
    if code is not None:
        assert f'"code":"{code}"' in response.text
    # Our own bug is logged with its traceback; a known error is one access line.
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert bool(tracebacks) is logged
