"""redis:// and rediss://: state shared by instances on several machines.

The per-request calls cost one round trip: `take_turn` is an INCRBY and a GET of the state's version
(a counter every change of a cooldown or a disabled flag increments in the same transaction),
`pool_state` the GET and one MGET over the cooldown keys of (credential, model) and the disabled-flag
keys. Calls made in the same loop iteration share it (see Coalescer): one pipeline carries them all,
and n cursor calls on one pool become one INCRBY n. Cooldowns are keys that expire on their own (TTL);
their strikes live apart, in a hash without TTL, since they must outlive the cooldown. Usage batches
are folded per (credential, model) and applied by one Lua script, atomically. Windowed counters are
plain keys that expire on their own, at the end of their window: a batch is one MULTI of INCRBY and
PEXPIREAT per counter. Small shared values are plain keys too, read by one MGET and written by one
pipeline. Key parts are joined with U+001F, which no credential or model id holds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.typing import EncodableT, FieldT

from ._batch import Coalescer, Fetched, RawState, Read, Totals, aggregate
from .base import Cooldown, PoolState, Turn, Usage, UsageEvent

DEFAULT_PREFIX = "gemini-cli-proxy:"
_SEP = "\x1f"

# Cooldown keys outlive `until` by this much: pool_state compares `until` with the caller's `now`, so a
# server clock a little ahead of the instances' cannot end a cooldown early, and an ended cooldown still
# tells every instance that its credential has strikes to clear on a success (PoolState.struck). The
# TTL only collects garbage; an hour is the longest cooldown strikes can grow to.
_EXPIRY_GRACE = 3600.0

# Rows per script call: a batch of a few hundred rows keeps Redis busy for well under a millisecond.
_ROWS_PER_CALL = 500
_USAGE_FIELDS = ("requests", "tokens_in", "tokens_out", "errors")

# KEYS[i]: the usage hash of row i. ARGV, 9 per row: model, requests, tokens_in, tokens_out, errors,
# has_error ("1"/"0"), last_error, last_error_at, last_used. Counters add up; the later error (by its
# time) and the latest use win, whichever instance's batch lands first.
_RECORD_USAGE_LUA = """
local sep = ARGV[1]
for i, key in ipairs(KEYS) do
  local b = 1 + (i - 1) * 9
  local m = ARGV[b + 1] .. sep
  redis.call('HINCRBY', key, m .. 'requests', ARGV[b + 2])
  redis.call('HINCRBY', key, m .. 'tokens_in', ARGV[b + 3])
  redis.call('HINCRBY', key, m .. 'tokens_out', ARGV[b + 4])
  redis.call('HINCRBY', key, m .. 'errors', ARGV[b + 5])
  if ARGV[b + 6] == '1' then
    local seen = tonumber(redis.call('HGET', key, m .. 'last_error_at') or '-1')
    if tonumber(ARGV[b + 8]) >= seen then
      redis.call('HSET', key, m .. 'last_error', ARGV[b + 7], m .. 'last_error_at', ARGV[b + 8])
    end
  end
  local used = tonumber(redis.call('HGET', key, m .. 'last_used') or '0')
  if tonumber(ARGV[b + 9]) > used then
    redis.call('HSET', key, m .. 'last_used', ARGV[b + 9])
  end
end
return #KEYS
"""


def _client(url: str) -> Redis:
    # A blocking pool: when every connection is busy a call waits for one, where redis-py's default pool
    # raises MaxConnectionsError (a ConnectionError, which would look like an outage). Short timeouts
    # and a single quick retry (for a pooled connection the server closed): an unreachable store must
    # fail fast so that ResilientStore falls back, not hold requests for redis-py's default ten retries
    # with backoff. Options in the URL's query string (e.g. ?max_connections=) still win.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=64,
        timeout=5.0,
        decode_responses=True,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), 1),
    )
    return Redis.from_pool(pool)


class RedisStore:
    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._url = url
        self._prefix = prefix
        self._redis: Redis | None = None
        self._record_script: AsyncScript | None = None
        self._disabled = f"{prefix}disabled{_SEP}"
        self._strikes = f"{prefix}strikes"
        self._version = f"{prefix}version"
        self._coalescer = Coalescer(self._fetch)

    def __repr__(self) -> str:
        # Never the URL itself: it may carry a password.
        return f"RedisStore(prefix={self._prefix!r})"

    async def start(self) -> None:
        if self._redis is not None:
            return
        client = _client(self._url)
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        self._redis = client
        self._record_script = client.register_script(_RECORD_USAGE_LUA)

    async def close(self) -> None:
        if self._redis is None:
            return
        await self._coalescer.drain()
        client, self._redis, self._record_script = self._redis, None, None
        await client.aclose()

    @property
    def _r(self) -> Redis:
        if self._redis is None:
            raise RuntimeError("the state store is not started")
        return self._redis

    def _cooldown_key(self, credential_id: str, model: str) -> str:
        return f"{self._prefix}cooldown{_SEP}{credential_id}{_SEP}{model}"

    # -- the per-request calls

    def _cursor_key(self, pool: str) -> str:
        return f"{self._prefix}cursor{_SEP}{pool}"

    def _state_keys(self, read: Read) -> list[str]:
        ids, model = read
        return [self._cooldown_key(cred, model) for cred in ids] + [self._disabled + cred for cred in ids]

    async def take_turn(self, pool: str) -> Turn:
        return await self._coalescer.take_turn(pool)

    async def pool_state(self, credential_ids: Sequence[str], model: str, now: float) -> PoolState:
        return await self._coalescer.pool_state(credential_ids, model, now)

    async def _fetch(self, cursors: dict[str, int], reads: list[Read]) -> Fetched:
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.get(self._version)  # first: a change made while the state is read shows as a new version
            for pool, n in cursors.items():
                pipe.incrby(self._cursor_key(pool), n)
            for read in reads:
                pipe.mget(self._state_keys(read))
            version, *replies = await pipe.execute()
        bases = {pool: int(reply) - n for (pool, n), reply in zip(cursors.items(), replies, strict=False)}
        states = [
            _parse_state(read, reply) for read, reply in zip(reads, replies[len(cursors) :], strict=True)
        ]
        return bases, states, int(version or 0)

    # -- state changes, rare

    async def set_cooldown(self, credential_id: str, model: str, cooldown: Cooldown) -> None:
        await self.set_cooldowns([credential_id], model, cooldown)

    async def set_cooldowns(self, credential_ids: Sequence[str], model: str, cooldown: Cooldown) -> None:
        if not credential_ids:
            return
        expires = cooldown.until + _EXPIRY_GRACE
        value = orjson.dumps([cooldown.until, cooldown.reason, cooldown.strikes])
        live = expires > time.time()
        async with self._r.pipeline(transaction=True) as pipe:
            for cred in credential_ids:
                key = self._cooldown_key(cred, model)
                if live:
                    pipe.set(key, value, pxat=int(expires * 1000))
                else:
                    pipe.delete(key)
            strikes: dict[FieldT, EncodableT] = {
                f"{cred}{_SEP}{model}": cooldown.strikes for cred in credential_ids
            }
            pipe.hset(self._strikes, mapping=strikes)
            pipe.incr(self._version)
            await pipe.execute()

    async def clear_cooldown(self, credential_id: str, model: str) -> None:
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.delete(self._cooldown_key(credential_id, model))
            pipe.hdel(self._strikes, f"{credential_id}{_SEP}{model}")
            pipe.incr(self._version)
            await pipe.execute()

    async def strikes(self, credential_id: str, model: str) -> int:
        value = await self._r.hget(self._strikes, f"{credential_id}{_SEP}{model}")
        return 0 if value is None else int(value)

    async def set_disabled(self, credential_id: str, reason: str) -> None:
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.set(self._disabled + credential_id, reason)
            pipe.incr(self._version)
            await pipe.execute()

    async def clear_disabled(self, credential_id: str) -> None:
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.delete(self._disabled + credential_id)
            pipe.incr(self._version)
            await pipe.execute()

    # -- usage, written in batches from a background task

    def _usage_key(self, credential_id: str) -> str:
        return f"{self._prefix}usage{_SEP}{credential_id}"

    async def record_usage(self, events: Iterable[UsageEvent]) -> None:
        rows = list(aggregate(events).items())
        if not rows:
            return
        script = self._record_script
        if script is None:
            raise RuntimeError("the state store is not started")
        for start in range(0, len(rows), _ROWS_PER_CALL):
            chunk = rows[start : start + _ROWS_PER_CALL]
            keys = [self._usage_key(cred) for (cred, _model), _totals in chunk]
            args: list[str | int | float] = [_SEP]
            for (_cred, model), t in chunk:
                args += _row_args(model, t)
            await script(keys=keys, args=args)

    async def usage(self, credential_ids: Sequence[str]) -> dict[str, dict[str, Usage]]:
        if not credential_ids:
            return {}
        async with self._r.pipeline(transaction=False) as pipe:
            for cred in credential_ids:
                pipe.hgetall(self._usage_key(cred))
            hashes: list[dict[str, str]] = await pipe.execute()
        result: dict[str, dict[str, Usage]] = {}
        for cred, fields in zip(credential_ids, hashes, strict=True):
            if fields:
                result[cred] = _parse_usage(fields)
        return result

    # -- windowed counters

    async def add_counts(self, counts: Sequence[tuple[str, int, float]]) -> list[int]:
        if not counts:
            return []
        async with self._r.pipeline(transaction=True) as pipe:
            for name, amount, expires_at in counts:
                key = f"{self._prefix}count{_SEP}{name}"
                # Rounded up, so Redis never ends a window before expires_at. GT alone would never
                # set the first expiry (GT takes a key without one as never expiring), hence NX first;
                # a time already past deletes the key, which is what an ended window is.
                at_ms = math.ceil(expires_at * 1000)
                pipe.incrby(key, amount)
                pipe.pexpireat(key, at_ms, nx=True)
                pipe.pexpireat(key, at_ms, gt=True)
            replies = await pipe.execute()
        return [int(total) for total in replies[::3]]

    # -- small shared values

    async def get_value(self, key: str) -> str | None:
        value: Any = await self._r.get(self._value_key(key))
        return None if value is None else str(value)

    async def set_value(self, key: str, value: str, ttl: float | None = None) -> None:
        await self.set_values([(key, value, ttl)])

    async def get_values(self, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        values: list[Any] = await self._r.mget([self._value_key(key) for key in keys])
        return [None if value is None else str(value) for value in values]

    async def set_values(self, items: Sequence[tuple[str, str, float | None]]) -> None:
        if not items:
            return
        # One connection runs a pipeline's commands in order, so a key given twice keeps the later value.
        # No MULTI: the values are independent, and a flush of thousands of signatures (KB each) as one
        # transaction would hold every other client back until it is done.
        async with self._r.pipeline(transaction=False) as pipe:
            for key, value, ttl in items:
                name = self._value_key(key)
                if ttl is None:
                    pipe.set(name, value)
                elif ttl <= 0:  # already expired; SET PX refuses a zero or negative time
                    pipe.delete(name)
                else:
                    pipe.set(name, value, px=max(1, round(ttl * 1000)))
            await pipe.execute()

    def _value_key(self, key: str) -> str:
        return f"{self._prefix}kv{_SEP}{key}"


def _parse_state(read: Read, values: list[Any]) -> RawState:
    """An MGET of _state_keys(read): the model's cooldowns, then the disabled flags, one per
    credential each."""
    ids, _model = read
    n = len(ids)
    raw = RawState({}, {})
    for cred, value in zip(ids, values[:n], strict=True):
        if value is not None:
            until, reason, strikes = orjson.loads(value)
            raw.cooldowns[cred] = Cooldown(until, reason, strikes)
            if strikes:
                raw.struck.add(cred)
    for cred, reason in zip(ids, values[n:], strict=True):
        if reason is not None:
            raw.disabled[cred] = str(reason)
    return raw


def _row_args(model: str, t: Totals) -> list[str | int | float]:
    has_error = t.last_error is not None
    return [
        model,
        t.requests,
        t.tokens_in,
        t.tokens_out,
        t.errors,
        "1" if has_error else "0",
        t.last_error or "",
        repr(t.last_error_at),  # repr: the shortest string that reads back as the same float
        repr(t.last_used),
    ]


def _parse_usage(fields: dict[str, str]) -> dict[str, Usage]:
    by_model: dict[str, Usage] = {}
    for name, value in fields.items():
        model, _, field_name = name.rpartition(_SEP)
        usage = by_model.setdefault(model, Usage())
        if field_name in _USAGE_FIELDS:
            setattr(usage, field_name, int(value))
        elif field_name == "last_error":
            usage.last_error = value
        elif field_name == "last_used":
            usage.last_used = float(value)
    return by_model
