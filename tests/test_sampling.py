"""Sampling settings: declared once, validated everywhere."""

from __future__ import annotations

import pytest

from chatterm.errors import SettingError
from chatterm.sampling import FIELDS, SamplingSettings


def test_every_field_has_help_and_a_range():
    for spec in FIELDS:
        assert spec.help and spec.minimum < spec.maximum
        default = getattr(SamplingSettings(), spec.name)
        assert spec.minimum <= default <= spec.maximum


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("temperature", -1),
        ("top_p", 1.5),
        ("top_k", -3),
        ("min_p", 2),
        ("max_tokens", 0),
        ("seed", -5),
        ("temperature", float("nan")),
        ("top_k", "many"),
    ],
)
def test_out_of_range_values_are_refused(name, value):
    with pytest.raises(SettingError, match=name):
        SamplingSettings().replace(**{name: value})


def test_unknown_setting_is_refused():
    with pytest.raises(SettingError, match="unknown setting 'temprature'"):
        SamplingSettings().merge({"temprature": 0.2})


def test_round_trip_through_dict_and_concrete_seed():
    s = SamplingSettings(temperature=0.3, stop=("END",))
    assert SamplingSettings.from_dict(s.to_dict()) == s
    assert s.resolved_seed().seed >= 0
    assert SamplingSettings(seed=5).resolved_seed().seed == 5


def test_each_setting_becomes_an_option_where_its_group_is_taken():
    """Declared once in sampling.py: ask takes every setting, lab sample the sampler chain."""
    from chatterm.sampling import CHAIN, FIELDS_BY_NAME
    from tests.conftest import run_cli

    ask = run_cli("ask", "--help", env={"COLUMNS": "200"}).stdout
    assert all(spec.option in ask for spec in FIELDS), ask
    sample = run_cli("lab", "sample", "--help", env={"COLUMNS": "200"}).stdout
    chain = [FIELDS_BY_NAME[name].option for name in CHAIN]
    assert all(option in sample for option in chain)
    assert sorted(chain, key=sample.index) == chain, "in the chain's order"
    assert "--seed" not in sample
