"""The pool as operators see it: one row per credential with its state, cooldowns and usage, read
from the shared store (so every instance shows the same pool). Used by the debug view, the metrics'
scrape and the status page."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from ..credentials import Credential
from ..runtime import Runtime

# The model whose state is read for the disabled flags when the pool has served nothing yet (the flags
# come with any model's state).
ANY_MODEL = "gemini-2.5-flash"


def iso(epoch: float | None) -> str | None:
    if not epoch:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def describe(cred: Credential) -> dict[str, Any]:
    return {"id": cred.id, "label": cred.label, "kind": cred.kind, "pool": cred.pool}


async def credential_rows(runtime: Runtime) -> list[dict[str, Any]]:
    """One row per credential: who it is (nothing secret), its state, its cooldowns by model, and
    what it has served, by model."""
    now = time.time()
    ids = [cred.id for cred in runtime.credentials]
    usage = await runtime.store.usage(ids)
    models = sorted({model for per_model in usage.values() for model in per_model})
    # Every credential at once, each model's cooldowns in one read (made together, the reads of a
    # batching store travel in one round trip). The disabled flags come with any model's state; a
    # pool that has served nothing yet reads them by the test model's name.
    states = await asyncio.gather(
        *(runtime.store.pool_state(ids, model, now) for model in models or [ANY_MODEL])
    )
    flags = states[0]
    cooling = dict(zip(models, states, strict=False))
    rows = []
    for cred in runtime.credentials:
        cooldowns = {}
        for model in usage.get(cred.id, {}):
            cooldown = cooling[model].cooldowns.get(cred.id)
            if cooldown is not None:
                cooldowns[model] = {
                    "remaining_seconds": round(cooldown.until - now, 1),
                    "reason": cooldown.reason,
                }
        disabled = flags.disabled.get(cred.id)
        rows.append(
            {
                **describe(cred),
                "state": "disabled" if disabled else ("cooling" if cooldowns else "ok"),
                "disabled_reason": disabled,
                "cooldowns": cooldowns,
                "usage": {
                    model: {
                        "requests": counts.requests,
                        "tokens_in": counts.tokens_in,
                        "tokens_out": counts.tokens_out,
                        "errors": counts.errors,
                        "last_error": counts.last_error,
                        "last_used": iso(counts.last_used),
                    }
                    for model, counts in usage.get(cred.id, {}).items()
                },
            }
        )
    return rows
