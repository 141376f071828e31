"""The walk that finds JSON values orjson cannot send on to Google, and how it names them."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemini_cli_proxy.wire.json_values import INT_MAX, INT_MIN, MAX_DEPTH, find_unsendable, render


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"a": [1, {"b": INT_MAX + 1}]}, ["a", 1, "b"]),
        ([INT_MIN - 1], [0]),
        ({"x": math.inf}, ["x"]),
        ({"x": [-math.inf]}, ["x", 0]),
        ({"x": {"y": math.nan}}, ["x", "y"]),
    ],
)
def test_the_first_unsendable_value_is_found_with_its_path(value: Any, path: list[str | int]) -> None:
    found = find_unsendable(value)
    assert found is not None and found[0] == path


def test_nesting_is_bounded_only_when_asked() -> None:
    deep: Any = 1
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    assert find_unsendable(deep) is None
    found = find_unsendable(deep, max_depth=MAX_DEPTH)
    assert found is not None and len(found[0]) == MAX_DEPTH and "deeper than" in found[1]
    assert find_unsendable(deep[0], max_depth=MAX_DEPTH) is None


def test_paths_read_like_openai_params() -> None:
    assert render("tools", [0, "function", "parameters", "$defs", "x-y"]) == (
        "tools[0].function.parameters.$defs.x-y"
    )
    assert render("metadata", ["a.b", 'q"', ""]) == 'metadata["a.b"]["q\\""][""]'
    assert render("", ["a", 2]) == "a[2]"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.text(max_size=5)
    | st.sampled_from([":null,", "[null]", "null", "nullable"])
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_found_exactly_what_orjson_refuses_or_writes_as_null(value: Any) -> None:
    try:
        orjson.dumps(value)
        refused = False
    except orjson.JSONEncodeError:
        refused = True
    expected = refused or _non_finite(value)
    assert (find_unsendable(value) is not None) == expected
    # The same answer from the walk alone, without the quick pass in C.
    assert (find_unsendable(value, max_depth=10_000) is not None) == expected


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (math.inf, []),
        ([math.nan], [0]),
        ({"a": -math.inf}, ["a"]),
        ([None, math.inf], [1]),
        ({"s": ":null,", "x": math.nan}, ["x"]),
    ],
)
def test_non_finite_floats_are_found_beside_nulls_and_alone(value: Any, path: list[str | int]) -> None:
    found = find_unsendable(value)
    assert found is not None
    assert found[0] == path and "finite" in found[1]  # where, and why


def _non_finite(value: Any) -> bool:
    """orjson writes NaN and Infinity as null: written, but not the client's value."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(_non_finite(item) for item in value)
    return False
