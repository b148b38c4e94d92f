"""relay.core.filters: parsing untrusted filters and matching events in memory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.core.filters import MAX_VALUES_PER_FIELD, Filter, matches_any, parse_filter
from relay.core.reasons import Rejection
from tests.support.nostr import Keys

ALICE, BOB = Keys(bytes.fromhex("11" * 32)), Keys(bytes.fromhex("22" * 32))
NOW = 1_700_000_000
EVENT = ALICE.sign(1, "x", [["t", "nostr"], ["p", BOB.pubkey], ["-"]], created_at=NOW)


def parsed(obj: object) -> Filter:
    result = parse_filter(obj)
    assert isinstance(result, Filter), result
    return result


def rejected(obj: object) -> str:
    result = parse_filter(obj)
    assert isinstance(result, Rejection), result
    return result.message()


def test_empty_filter_matches_everything() -> None:
    """``{}`` has no constraints."""
    assert parsed({}) == Filter()
    assert parsed({}).matches(EVENT)


def test_every_field_is_parsed() -> None:
    """ids, authors, kinds, #x tags, since, until and limit map onto the Filter."""
    f = parsed(
        {
            "ids": [EVENT.id],
            "authors": [ALICE.pubkey],
            "kinds": [1, 2],
            "#t": ["nostr"],
            "#P": ["up"],
            "since": 1,
            "until": 2,
            "limit": 3,
        }
    )
    assert f.ids == frozenset({EVENT.id}) and f.authors == frozenset({ALICE.pubkey})
    assert f.kinds == frozenset({1, 2})
    assert f.tag_values("t") == frozenset({"nostr"}) and f.tag_values("P") == frozenset({"up"})
    assert f.tag_values("e") is None
    assert (f.since, f.until, f.limit) == (1, 2, 3)


@pytest.mark.parametrize(
    "obj",
    [
        {"ids": [EVENT.id]},
        {"authors": [ALICE.pubkey, BOB.pubkey]},
        {"kinds": [1]},
        {"#t": ["other", "nostr"]},
        {"#p": [BOB.pubkey]},
        {"since": NOW, "until": NOW},
        {"kinds": [1], "authors": [ALICE.pubkey], "#t": ["nostr"], "#p": [BOB.pubkey]},
    ],
)
def test_matching_filters(obj: dict[str, object]) -> None:
    """Each constraint the event satisfies matches (fields are ANDed, values ORed)."""
    assert parsed(obj).matches(EVENT)


@pytest.mark.parametrize(
    "obj",
    [
        {"ids": ["ab" * 32]},
        {"authors": [BOB.pubkey]},
        {"kinds": [2]},
        {"#t": ["other"]},
        {"#e": [EVENT.id]},
        {"since": NOW + 1},
        {"until": NOW - 1},
        {"kinds": [1], "authors": [BOB.pubkey]},
        {"#t": ["nostr"], "#p": [ALICE.pubkey]},
    ],
)
def test_non_matching_filters(obj: dict[str, object]) -> None:
    """Any unsatisfied constraint stops the match."""
    assert not parsed(obj).matches(EVENT)


def test_single_element_tags_never_match_a_tag_filter() -> None:
    """``["-"]`` has no value, so ``#-``-style or value filters cannot match it."""
    assert not Filter(tags=(("-", frozenset({""})),)).matches(EVENT)


def test_limit_does_not_affect_matching() -> None:
    """``limit`` only bounds stored results."""
    assert parsed({"limit": 0}).matches(EVENT)


def test_matches_any() -> None:
    """matches_any is true when one filter of several matches."""
    assert matches_any([parsed({"kinds": [2]}), parsed({"kinds": [1]})], EVENT)
    assert not matches_any([parsed({"kinds": [2]})], EVENT)
    assert not matches_any([], EVENT)


@pytest.mark.parametrize(
    ("obj", "empty"),
    [
        ({}, False),
        ({"ids": []}, True),
        ({"authors": []}, True),
        ({"kinds": []}, True),
        ({"#t": []}, True),
        ({"since": 5, "until": 4}, True),
        ({"since": 5, "until": 5}, False),
    ],
)
def test_empty_by_construction(obj: dict[str, object], empty: bool) -> None:
    """Empty lists and since > until can match nothing."""
    assert parsed(obj).is_empty_by_construction is empty


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([], "invalid: filter must be a JSON object"),
        ("x", "invalid: filter must be a JSON object"),
        ({"ids": "ab"}, "invalid: filter field ids must be an array"),
        ({"ids": ["AB" * 32]}, "invalid: filter field ids must hold 64-character lowercase hex"),
        ({"ids": ["abc"]}, "invalid: filter field ids must hold 64-character lowercase hex"),
        ({"authors": [1]}, "invalid: filter field authors must hold 64-character lowercase hex"),
        ({"kinds": 1}, "invalid: filter field kinds must be an array of integers"),
        ({"kinds": ["1"]}, "invalid: filter field kinds must hold integers between 0 and 65535"),
        ({"kinds": [70000]}, "invalid: filter field kinds must hold integers between 0 and 65535"),
        ({"kinds": [True]}, "invalid: filter field kinds must hold integers between 0 and 65535"),
        ({"since": "1"}, "invalid: filter field since must be a non-negative 64-bit integer"),
        ({"until": -1}, "invalid: filter field until must be a non-negative 64-bit integer"),
        ({"limit": 1.5}, "invalid: filter field limit must be a non-negative 64-bit integer"),
        ({"limit": None}, "invalid: filter field limit must be a non-negative 64-bit integer"),
        ({"since": 2**63}, "invalid: filter field since must be a non-negative 64-bit integer"),
        ({"until": 2**64 - 1}, "invalid: filter field until must be a non-negative 64-bit"),
        ({"limit": 2**64 - 1}, "invalid: filter field limit must be a non-negative 64-bit"),
        ({"#t": "x"}, "invalid: filter field #t must be an array of strings"),
        ({"#t": [1]}, "invalid: filter field #t must be an array of strings"),
        ({"#tt": ["x"]}, "invalid: unsupported filter field '#tt'"),
        ({"#1": ["x"]}, "invalid: unsupported filter field '#1'"),
        ({"search": "x"}, "invalid: unsupported filter field 'search'"),
        ({"k" * 100_000: 1}, f"invalid: unsupported filter field '{'k' * 32}'"),
    ],
)
def test_bad_filters_are_rejected_with_invalid(obj: object, reason: str) -> None:
    """Wrong types, bad hex and unknown fields are ``invalid:`` with the field named."""
    assert rejected(obj).startswith(reason)


def test_int64_bounds_are_accepted() -> None:
    """The largest value SQLite can bind is still a valid since/until/limit."""
    f = parsed({"since": 2**63 - 1, "until": 2**63 - 1, "limit": 2**63 - 1})
    assert f.since == f.until == f.limit == 2**63 - 1


def test_too_many_values_in_one_field_are_rejected() -> None:
    """A field with more than MAX_VALUES_PER_FIELD values is refused (bounded SQL)."""
    too_many = MAX_VALUES_PER_FIELD + 1
    assert "more than" in rejected({"ids": ["ab" * 32] * too_many})
    assert rejected({"kinds": [1] * too_many}).startswith("invalid:")
    assert rejected({"#t": ["x"] * too_many}).startswith("invalid:")
    assert isinstance(parse_filter({"kinds": [1] * MAX_VALUES_PER_FIELD}), Filter)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=70),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=15,
)
filter_keys = st.sampled_from(
    ["ids", "authors", "kinds", "#e", "#p", "#t", "since", "until", "limit", "search", "#"]
)


@given(st.dictionaries(filter_keys | st.text(max_size=4), json_values, max_size=6))
def test_hostile_filters_never_raise(obj: dict[str, object]) -> None:
    """Any JSON object is either a Filter or an invalid: Rejection."""
    result = parse_filter(obj)
    if isinstance(result, Filter):
        result.matches(EVENT)
    else:
        assert result.message().startswith("invalid: ")
