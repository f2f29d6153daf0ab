"""Layer specs: the named words, lists and ranges, and clear errors (with property tests)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probes.core.layers import complement, format_layers, parse_layers
from probes.errors import SpecError


@pytest.mark.parametrize(
    "spec, n, expect",
    [
        ("odd", 12, [1, 3, 5, 7, 9, 11]),
        ("even", 12, [0, 2, 4, 6, 8, 10]),
        ("first-half", 12, [0, 1, 2, 3, 4, 5]),
        ("last-half", 12, [6, 7, 8, 9, 10, 11]),
        ("first-half", 7, [0, 1, 2]),
        ("last-half", 7, [4, 5, 6]),
        ("none", 6, []),
        ("all", 3, [0, 1, 2]),
        ("1,3,5-7", 12, [1, 3, 5, 6, 7]),
        (" 2 , 0 ", 4, [0, 2]),
        ("3-3", 4, [3]),
        ("ODD", 4, [1, 3]),
        ([2, 0, 2], 4, [0, 2]),
        (1, 4, [1]),
    ],
)
def test_specs(spec, n, expect):
    assert parse_layers(spec, n) == expect


@pytest.mark.parametrize(
    "spec, match",
    [
        ("99", "out of range: the model has 6 blocks"),
        ("banana", "unknown layer spec 'banana'"),
        ("", "empty layer spec"),
        ("3-1", "reversed"),
        ("1,,2", "empty item"),
        ("6", "0-5"),
        ("-1", "unknown layer spec"),
        ("1-x", "unknown layer spec"),
        ([7], "out of range"),
        (["a"], "not an integer"),
    ],
)
def test_bad_specs(spec, match):
    with pytest.raises(SpecError, match=match):
        parse_layers(spec, 6)


@given(st.integers(1, 48), st.data())
def test_lists_round_trip_through_format(n, data):
    layers = sorted(set(data.draw(st.lists(st.integers(0, n - 1), max_size=n))))
    assert parse_layers(format_layers(layers), n) == layers if layers else parse_layers("none", n) == []


@given(st.integers(1, 48))
def test_named_specs_partition(n):
    odd, even = parse_layers("odd", n), parse_layers("even", n)
    assert sorted(odd + even) == list(range(n))
    first, last = parse_layers("first-half", n), parse_layers("last-half", n)
    assert len(first) == len(last) == n // 2 and not set(first) & set(last)
    assert complement(complement(odd, n), n) == odd


@given(st.text(max_size=12))
def test_any_text_parses_or_raises_spec_error(text):
    try:
        out = parse_layers(text, 8)
    except SpecError as e:
        assert "8 blocks" in str(e) or "empty" in str(e)
    else:
        assert all(0 <= i < 8 for i in out) and out == sorted(set(out))
