"""A request body's validation errors as one OpenAI-style 400 that names the parameter. Pure.

Shared by the front doors whose requests are pydantic models (Chat Completions, Responses): each
passes the union tags its models put into pydantic's error locations, which a client never wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from ..errors import ProxyError, invalid_request, shown
from .json_values import find_unsendable, render

# Pydantic names the member of a plain union it tried (`str`, `none`, `list[TextPart]`, ...).
_UNION_MEMBER = frozenset({"str", "none", "int", "float", "bool"})
_NONE: Mapping[str, frozenset[str]] = MappingProxyType({})


def param_of(loc: tuple[int | str, ...]) -> str:
    """Pydantic's error location as OpenAI spells a param: `messages[0].content`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"function-after[...]", "function-before[...]"}:
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def clean_loc(
    loc: tuple[int | str, ...],
    tags: frozenset[str],
    tagged_fields: Mapping[str, frozenset[str]] = _NONE,
) -> tuple[int | str, ...]:
    """`loc` without what pydantic added: union members, and the tag a discriminated union chose:
    one of `tags` after a list index, or one of `tagged_fields[name]` after the field `name`."""
    out: list[int | str] = []
    previous: int | str | None = None
    for part in loc:
        is_member = isinstance(part, str) and (part in _UNION_MEMBER or "[" in part)
        if isinstance(previous, int):
            is_tag = part in tags
        else:
            is_tag = isinstance(previous, str) and part in tagged_fields.get(previous, ())
        previous = part
        if not (is_member or is_tag):  # e.g. `list[TextPart]`, or the role that chose the member
            out.append(part)
    return tuple(out)


def describe(
    error: Any,
    tags: frozenset[str],
    *,
    role_lists: frozenset[str] = frozenset(),
    tagged_fields: Mapping[str, frozenset[str]] = _NONE,
) -> tuple[str, str]:
    """(param, message) for one pydantic error. `role_lists`: the top-level lists whose items are
    told apart by `role` rather than `type` (Chat's `messages`)."""
    loc = clean_loc(error["loc"], tags, tagged_fields)
    # An item whose tag is unknown fails the discriminator at `list[i]`.
    if error["type"] in {"union_tag_invalid", "union_tag_not_found"}:
        tag_field = "role" if len(loc) == 2 and loc[0] in role_lists else "type"
        param = param_of((*loc, tag_field))
        if error["type"] == "union_tag_not_found":
            return param, f"Missing required parameter: '{param}'."
        tag = shown(str(error.get("ctx", {}).get("tag", "")), 40)  # not a 100 kB role, whole
        expected = error.get("ctx", {}).get("expected_tags", "")
        return param, f"Invalid value {tag!r} for '{param}'. Supported values are: {expected}."
    param = param_of(loc)
    if error["type"] == "missing":
        return param, f"Missing required parameter: '{param}'."
    return param, f"Invalid value for '{param}': {error['msg']}."


def validation_error(
    exc: ValidationError,
    tags: frozenset[str],
    *,
    role_lists: frozenset[str] = frozenset(),
    tagged_fields: Mapping[str, frozenset[str]] = _NONE,
    too_short: Mapping[str, str] | None = None,
) -> ProxyError:
    """The one 400 for a body that failed validation. `too_short`: the message for a list param
    that must not be empty, by param."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] in {"json_invalid", "json_type"}:
        return invalid_request(
            "We could not parse the JSON body of your request: the body must be a JSON object. "
            f"({first['msg']})",
            code="invalid_json",
        )
    if first["type"] == "model_type" and not first["loc"]:
        return invalid_request("The request body must be a JSON object.", code="invalid_json")
    # Each member of a union reports its own failure; the one that got deepest into the input is
    # the member the client meant.
    chosen = max(errors, key=lambda error: len(clean_loc(error["loc"], tags, tagged_fields)))
    param, message = describe(chosen, tags, role_lists=role_lists, tagged_fields=tagged_fields)
    code = "missing_required_parameter" if chosen["type"] == "missing" else "invalid_value"
    if too_short and param in too_short and chosen["type"] == "too_short":
        return invalid_request(too_short[param], param=param, code=code)
    return invalid_request(message, param=param, code=code)


def empty_body() -> ProxyError:
    return invalid_request("The request body is empty; expected a JSON object.", code="invalid_json")


def check_sendable(value: Any, param: str) -> None:
    """Refuse free JSON that would fail (or change) on its way to Google, naming where it is."""
    found = find_unsendable(value)
    if found is not None:
        path, problem = found
        where = render(param, path)
        raise invalid_request(f"Invalid value for '{where}': {problem}.", param=where, code="invalid_value")
