"""relay.core.subindex: the index finds exactly the subscriptions a full scan finds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.core.event import Event, EventId, Pubkey
from relay.core.filters import Filter
from relay.core.subindex import SubscriptionIndex

IDS = [c * 64 for c in "abc"]
AUTHORS = [c * 64 for c in "def"]
TAG_NAMES = ["e", "p", "t"]
VALUES = ["x", "y", "z"]


def event(
    id: str = IDS[0],
    author: str = AUTHORS[0],
    kind: int = 1,
    tags: tuple[tuple[str, ...], ...] = (),
    created_at: int = 100,
) -> Event:
    return Event(EventId(id), Pubkey(author), created_at, kind, tags, "", "0" * 128, b"{}")


def scan(subs: dict[tuple[int, str], tuple[Filter, ...]], e: Event) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for (conn, sub), filters in subs.items():
        if any(f.matches(e) for f in filters):
            found.setdefault(conn, set()).add(sub)
    return found


def as_sets(found: dict[int, list[str]]) -> dict[int, set[str]]:
    return {conn: set(subs) for conn, subs in found.items()}


T = TypeVar("T")


def maybe_set(pool: Sequence[T]) -> st.SearchStrategy[frozenset[T] | None]:
    return st.none() | st.frozensets(st.sampled_from(pool), max_size=3)


filters = st.builds(
    Filter,
    ids=maybe_set(IDS),
    authors=maybe_set(AUTHORS),
    kinds=maybe_set([1, 2, 3]),
    tags=st.lists(
        st.tuples(st.sampled_from(TAG_NAMES), st.frozensets(st.sampled_from(VALUES), max_size=3)),
        max_size=2,
    ).map(tuple),
    since=st.none() | st.integers(90, 110),
    until=st.none() | st.integers(90, 110),
)
events = st.builds(
    event,
    id=st.sampled_from(IDS),
    author=st.sampled_from(AUTHORS),
    kind=st.sampled_from([1, 2, 3]),
    tags=st.lists(
        st.tuples(st.sampled_from([*TAG_NAMES, "long"]), st.sampled_from(VALUES)), max_size=4
    ).map(tuple),
    created_at=st.integers(90, 110),
)
subscriptions = st.dictionaries(
    st.tuples(st.integers(1, 3), st.sampled_from(["a", "b"])),
    st.lists(filters, min_size=1, max_size=3).map(tuple),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(subscriptions, st.lists(events, min_size=1, max_size=5))
def test_index_matches_a_full_scan(
    subs: dict[tuple[int, str], tuple[Filter, ...]], evs: list[Event]
) -> None:
    index = SubscriptionIndex()
    for (conn, sub), fs in subs.items():
        index.add(conn, sub, fs)
    for e in evs:
        assert as_sets(index.match(e)) == scan(subs, e)


@settings(max_examples=200, deadline=None)
@given(subscriptions, st.lists(st.tuples(st.integers(1, 3), st.sampled_from(["a", "b"]))), events)
def test_removed_and_replaced_subscriptions_stop_matching(
    subs: dict[tuple[int, str], tuple[Filter, ...]],
    removed: list[tuple[int, str]],
    e: Event,
) -> None:
    index = SubscriptionIndex()
    for (conn, sub), fs in subs.items():
        index.add(conn, sub, fs)
        index.add(conn, sub, fs)  # replacing with the same filters files them once
    live = dict(subs)
    for slot in removed:
        index.remove(*slot)
        live.pop(slot, None)
    assert as_sets(index.match(e)) == scan(live, e)
    for conn, sub in list(live):
        index.remove(conn, sub)
    assert index.match(e) == {} and len(index) == 0


def test_an_event_with_many_tags_checks_only_candidate_filters() -> None:
    """4,000 tag filters, an event with 2,000 tags of which one matches: one check."""
    index = SubscriptionIndex()
    for conn in range(4):
        for sub in range(50):
            fs = [Filter(tags=(("t", frozenset({f"c{conn}s{sub}f{f}"})),)) for f in range(20)]
            index.add(conn, f"s{sub}", fs)
    tags = tuple(("t", f"other{i}") for i in range(1999)) + (("t", "c2s7f3"),)
    assert index.match(event(tags=tags)) == {2: ["s7"]}
    assert index.checks == 1


def test_filters_without_an_indexed_field_are_checked_for_every_event() -> None:
    index = SubscriptionIndex()
    index.add(1, "all", [Filter(since=100)])
    assert index.match(event(created_at=100)) == {1: ["all"]}
    assert index.match(event(created_at=99)) == {}


def test_empty_filters_are_never_filed() -> None:
    index = SubscriptionIndex()
    index.add(1, "none", [Filter(ids=frozenset()), Filter(tags=(("t", frozenset()),))])
    assert index.match(event()) == {} and index.checks == 0
