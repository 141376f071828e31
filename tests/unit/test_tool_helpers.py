"""Tool helpers: legal Gemini names, tool_choice, signatures in ids."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemini_cli_proxy.errors import ProxyError
from gemini_cli_proxy.translate.tools import NameMap, new_call_id, signature_of, tool_config

LEGAL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,63}$")


@given(st.lists(st.text(min_size=1, max_size=100), min_size=1, max_size=5, unique=True))
def test_every_name_maps_to_a_legal_one_and_back(client_names: list[str]) -> None:
    names = NameMap(client_names)
    for name in client_names:
        legal = names.to_gemini(name)
        assert LEGAL.match(legal)
        assert names.to_client(legal) == name


def test_legal_names_are_kept() -> None:
    names = NameMap(["get_weather", "ns:tool.v2-beta"])
    assert names.to_gemini("get_weather") == "get_weather"
    assert names.to_gemini("ns:tool.v2-beta") == "ns:tool.v2-beta"


def test_tool_choice_modes() -> None:
    names = NameMap(["f"])
    assert tool_config(None, names) is None
    assert tool_config("required", names) == {"functionCallingConfig": {"mode": "ANY"}}
    assert tool_config({"name": "f"}, names, "function_call") == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}
    }
    with pytest.raises(ProxyError) as caught:
        tool_config("sometimes", names)
    assert caught.value.param == "tool_choice"


def test_signature_round_trip_through_the_id() -> None:
    call_id = new_call_id("abc/+==")
    assert call_id.startswith("call_") and signature_of(call_id, None) == "abc/+=="
    assert signature_of(new_call_id(None), None) is None
    assert signature_of("anything", {"google": {"thought_signature": "from-extra"}}) == "from-extra"
