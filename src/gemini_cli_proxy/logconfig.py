"""Logging: one key=value line per event on stderr, secrets scrubbed on the way out."""

from __future__ import annotations

import logging
import sys

from .redact import scrub


class _ScrubbingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _ScrubbingFormatter("ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's own access log would duplicate ours; its server errors still come through.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
