"""Shared state: the StateStore protocol and its backends, chosen by PROXY_STATE_URL.

`open_store` builds a store without touching the network or the disk; `start()` connects. Wrap the
result in ResilientStore so that an unreachable store degrades to in-process state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .base import Cooldown, PoolState, StateStore, Turn, Usage, UsageEvent
from .memory import MemoryStore
from .redis import DEFAULT_PREFIX, RedisStore
from .resilient import ResilientStore
from .sqlite import SqliteStore

__all__ = [
    "Cooldown",
    "MemoryStore",
    "PoolState",
    "RedisStore",
    "ResilientStore",
    "SqliteStore",
    "StateStore",
    "Turn",
    "Usage",
    "UsageEvent",
    "open_store",
]

_SQLITE = "sqlite:///"
_FORMS = "memory://, sqlite:///relative/path, sqlite:////absolute/path, redis://host:port/db or rediss://..."


def open_store(url: str, *, clock: Callable[[], float] = time.time) -> StateStore:
    """The store `url` names:

    - `memory://`: this process only.
    - `sqlite:///<path>`: everything after the third slash is the path (SQLAlchemy's convention), so
      `sqlite:///state.db` is relative to the working directory and `sqlite:////var/lib/x/state.db`
      absolute. The file and its directory are created by `start()`.
    - `redis://[user:password@]host:port/db`, `rediss://...` (TLS): redis-py's URL options apply
      (e.g. `?socket_timeout=2`), plus `?prefix=` for the key prefix (default `gemini-cli-proxy:`),
      so that several deployments can share one database.

    `clock` (epoch seconds) is memory://'s: the others keep time by their server's or the system's.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        return MemoryStore(clock=clock)
    if scheme == "sqlite":
        path = url[len(_SQLITE) :] if url.lower().startswith(_SQLITE) else ""
        if not path or "?" in path:
            raise ValueError(
                "PROXY_STATE_URL: a sqlite URL is sqlite:///relative/path or sqlite:////absolute/path"
            )
        return SqliteStore(path)
    if scheme in ("redis", "rediss"):
        return _redis_store(url)
    # Only the scheme goes into the message: the URL may carry a password.
    raise ValueError(f"PROXY_STATE_URL: unsupported scheme {scheme or '(none)'!r}; use {_FORMS}")


def _redis_store(url: str) -> RedisStore:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for name, value in query if name == "prefix"]
    rest = [(name, value) for name, value in query if name != "prefix"]
    client_url = urlunsplit(parts._replace(query=urlencode(rest)))
    return RedisStore(client_url, prefix=prefixes[-1] if prefixes else DEFAULT_PREFIX)
