"""A faithful, scriptable fake of the Google services the proxy talks to, all on one port.

Routes (shapes follow the real captures in shared/gemini-recordings):

- AI Studio: ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent`` (``?alt=sse``
  gives ``data: {json}\\r\\n\\r\\n`` events; without it Google's JSON array ``[{..}\\n,\\r\\n{..}\\n]``).
  Key in ``x-goog-api-key`` (``?key=`` is accepted, as Google does, and visible as
  ``Received.key_in_query``). No key: 403; a key outside ``api_keys``: 400 API_KEY_INVALID.
- Code Assist: ``POST /v1internal:loadCodeAssist``, ``:onboardUser`` (a long-running operation polled with
  ``GET /v1internal/operations/{id}``), ``:generateContent``, ``:streamGenerateContent?alt=sse``, with
  ``Authorization: Bearer`` tokens from the fake token endpoint; bodies use the
  ``{model, project, request}`` / ``{response, traceId}`` envelopes.
- Vertex AI: ``POST /v1/projects/{p}/locations/{loc}/publishers/google/models/{model}:generateContent``
  and ``:streamGenerateContent`` with a service account's ``Authorization: Bearer`` token (accepted only for
  that account's own project: 403 PERMISSION_DENIED otherwise), and express mode
  ``POST /v1/publishers/google/models/{model}:...`` with ``x-goog-api-key``. Recorded with
  ``api == "vertex"``; validation and scripted replies as for AI Studio, default replies in Vertex's shape
  (no zero candidate index, ``createTime``, ``usageMetadata.trafficType``).
- Embeddings (see fake_embeddings): AI Studio's ``:embedContent`` and ``:batchEmbedContents`` (at most 100
  requests) for gemini-embedding-* / text-embedding-* models; Vertex's same two methods for
  gemini-embedding-* (with ``usageMetadata``) and ``:predict`` (at most 250 instances) for
  text-embedding-* / text-multilingual-embedding-*. Deterministic vectors; scripted failures and
  ``Reply.response`` bodies are served as they are, any other reply gets the default vectors.
- OAuth: ``POST /token``, like oauth2.googleapis.com/token: ``grant_type=refresh_token`` for Code Assist
  accounts, and ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` for service accounts registered
  with ``add_service_account(client_email, public_key_pem, project_id=...)``: the RS256 assertion's
  signature, ``iss``, ``aud`` (this endpoint's URL) and one-hour ``iat``..``exp`` are verified, anything
  wrong is 400 ``invalid_grant`` (see fake_vertex). Both count in ``token_requests``.

Anything else answers Google's HTML 404 and is recorded with ``api == "other"``.

Usage in a test::

    fake = FakeGoogle(api_keys={"k1"})
    fake.push(Reply.rate_limited(retry_delay="3s"))        # the next generate call gets a 429
    fake.push(Reply.text("Hi there", chunks=2), model="gemini-2.5-pro")
    runner, port = await serve_fake(fake, "127.0.0.1", 0)   # or: with FakeGoogleServer(fake) as url: ...
    ...                                                      # point the proxy at http://127.0.0.1:{port}
    assert fake.generate_requests()[0].request["contents"][0]["role"] == "user"
    await runner.cleanup()

With nothing queued, a generate call answers a deterministic echo of the last user turn ("Echo: ...",
one candidate per ``candidateCount``), split into ``default_stream_chunks`` events when streamed, with
cumulative usage on every event. Every request is validated like Google does (bad roles, unknown fields,
parts with two data fields, out-of-range sampling values, ...) and rejected with Google's 400 body.

Run standalone (for benchmarks): ``python -m gemini_cli_proxy.testing --port 8090``; the
``gemini-cli-proxy fake-upstream`` command does the same through ``serve_fake``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
from collections.abc import Sequence
from types import TracebackType

from aiohttp import web

from gemini_cli_proxy.testing.fake_replies import Reply
from gemini_cli_proxy.testing.fake_routes import FAKE_KEY, create_fake_app
from gemini_cli_proxy.testing.fake_state import FakeGoogle, Received

__all__ = ["FAKE_KEY", "FakeGoogle", "FakeGoogleServer", "Received", "Reply", "create_fake_app", "serve_fake"]


async def serve_fake(fake: FakeGoogle, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start the fake on host:port (0 picks a free port); returns the runner (call cleanup()) and the port."""
    # No access log: benchmarks push thousands of requests a second through this. A short shutdown grace
    # keeps test teardown quick when a scripted slow stream is still open.
    runner = web.AppRunner(create_fake_app(fake), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    address = runner.addresses[0]
    return runner, int(address[1])


class FakeGoogleServer:
    """Runs a fake on its own event loop in a daemon thread, for synchronous tests (openai SDK, httpx)."""

    def __init__(self, fake: FakeGoogle, host: str = "127.0.0.1", port: int = 0) -> None:
        self.fake = fake
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-google", daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(serve_fake(self.fake, self.host, self.port), self._loop)
        self._runner, self.port = future.result(timeout=10)
        return self.base_url

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
            self._runner = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


async def _serve_forever(fake: FakeGoogle, host: str, port: int) -> None:
    runner, actual = await serve_fake(fake, host, port)
    print(f"fake google listening on http://{host}:{actual}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Run the fake Google upstream (AI Studio, Code Assist, Vertex AI, OAuth)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--chunks", type=int, default=3, help="events in a default streamed reply")
    parser.add_argument("--stream-delay", type=float, default=0.0, help="seconds between streamed events")
    parser.add_argument("--first-byte-delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    fake = FakeGoogle(
        default_stream_chunks=args.chunks,
        stream_delay=args.stream_delay,
        first_byte_delay=args.first_byte_delay,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(fake, args.host, args.port))
