"""The one config table (lepton_graph/config.py): every option declared once, typed, read from its variable."""

from __future__ import annotations

import typing

import pytest

from lepton_graph.config import OPTIONS, Config, config


def test_every_option_has_its_typed_attribute() -> None:
    hints = typing.get_type_hints(Config)
    assert {o.name: o.type for o in OPTIONS} == hints


def test_environment_variables_are_parsed_by_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEPTON_CACHE_LIMIT", "3")
    monkeypatch.setenv("LEPTON_VERIFY", "off")
    monkeypatch.setenv("LEPTON_NATIVE", "1")
    c = Config()
    assert (c.cache_limit, c.verify, c.native) == (3, False, True)


def test_unknown_options_are_refused() -> None:
    with pytest.raises(AttributeError, match="unknown lepton_graph option 'no_such_option'"):
        config.no_such_option = 1  # type: ignore[attr-defined]
