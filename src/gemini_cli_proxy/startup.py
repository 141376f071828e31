"""The one line `serve` prints at start-up: what this proxy will serve with, and nothing secret."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from urllib.parse import urlsplit

from .catalog import Catalog
from .credentials import Credential

_KINDS = {
    "aistudio": ("AI Studio key", "AI Studio keys"),
    "codeassist": ("gemini-cli account", "gemini-cli accounts"),
    "vertex": ("Vertex service account", "Vertex service accounts"),
    "vertex-key": ("Vertex express key", "Vertex express keys"),
}


def _count(n: int, kind: str) -> str:
    one, many = _KINDS.get(kind, (kind, kind))
    return f"{n} {one if n == 1 else many}"


def describe_credentials(credentials: Sequence[Credential]) -> str:
    """'12 credentials (primary: 10 AI Studio keys, 1 gemini-cli account; backup: 1 AI Studio key)'."""
    if not credentials:
        return "no credentials"
    pools = []
    for pool in ("primary", "backup"):
        kinds = Counter(cred.kind for cred in credentials if cred.pool == pool)
        if kinds:
            pools.append(f"{pool}: " + ", ".join(_count(n, kind) for kind, n in kinds.items()))
    total = len(credentials)
    return f"{total} credential{'' if total == 1 else 's'} ({'; '.join(pools)})"


def describe_state_url(url: str) -> str:
    """Where shared state lives, without the password a Redis URL may carry."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        return "memory (this process only)"
    if scheme == "sqlite":
        return f"sqlite {url[len('sqlite:///') :]}"
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{scheme} {host}{port}{parts.path or ''}"


def summary(credentials: Sequence[Credential], state_url: str, catalog: Catalog) -> str:
    return (
        f"gemini-cli-proxy: {describe_credentials(credentials)}; state: {describe_state_url(state_url)}; "
        f"{len(catalog)} models"
    )
