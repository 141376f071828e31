"""What every door does with a batch to embed once it is in the core's form: check the sizes asked
against the model, embed it through the pool, and note the credentials in the access line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..catalog import ModelInfo
from ..pool.dispatch import Embedded
from ..runtime import Runtime
from ..wire.gemini_embed import EmbedContentRequest, check_dimensions


async def embedded(
    runtime: Runtime,
    fields: dict[str, Any],
    info: ModelInfo,
    requests: Sequence[EmbedContentRequest],
    *,
    dimensions_param: str,
) -> Embedded:
    """Google's vectors for `requests`, in order. `dimensions_param`: the door's name for the size
    of a vector, for the 400 when it is out of the model's range."""
    check_dimensions(requests, info.embedding_dimensions, dimensions_param)
    answer = await runtime.gateway.embed(info.id, requests)
    fields["model"] = info.id
    fields["credential"] = ",".join(sorted({repr(cred.label) for cred in answer.credentials}))
    fields["inputs"] = len(requests)
    return answer
