"""relay.mls.narrowing: a reader's filter split into sub-filters that match exactly the
events of the filter the delivery rule lets that reader see (R-A3 in the query)."""

from __future__ import annotations

from typing import Any

import pytest

from relay.core.event import Event
from relay.core.filters import Filter, parse_filter
from relay.core.policy import Viewer
from relay.mls.groups import GroupState
from relay.mls.narrowing import MAX_NARROWED_GROUPS, narrow_for_reader
from relay.mls.rules import GroupDirectory, restricted_delivery
from tests.support.nostr import Keys

READER, OTHER, OWNER, THROWAWAY, ROOT = (
    Keys(bytes.fromhex(h * 32)) for h in ("11", "22", "33", "44", "55")
)
NOW = 1_700_000_000
MINE, THEIRS = "group-mine", "group-theirs"


def directory() -> GroupDirectory:
    d = GroupDirectory(global_admins=frozenset({ROOT.pubkey}))
    d.update(GroupState(MINE, owner=OWNER.pubkey, members=frozenset({READER.pubkey})))
    d.update(GroupState(THEIRS, owner=OWNER.pubkey, members=frozenset({OTHER.pubkey})))
    return d


def events() -> list[Event]:
    """Every way an MLS event can relate to READER, plus ordinary notes."""
    out = []
    for i, (keys, kind, tags) in enumerate(
        [
            (THROWAWAY, 1059, [["p", READER.pubkey]]),
            (THROWAWAY, 1059, [["p", OTHER.pubkey]]),
            (THROWAWAY, 1059, [["p", OTHER.pubkey], ["p", READER.pubkey]]),
            (READER, 1059, [["p", OTHER.pubkey]]),
            (OTHER, 446, [["p", READER.pubkey]]),
            (OTHER, 446, [["p", OWNER.pubkey]]),
            (READER, 446, [["p", OTHER.pubkey]]),
            (THROWAWAY, 445, [["h", MINE]]),
            (THROWAWAY, 445, [["h", THEIRS]]),
            (THROWAWAY, 445, [["h", "unknown"]]),
            (OWNER, 450, [["h", MINE]]),
            (OWNER, 450, [["h", THEIRS]]),
            (OTHER, 1, [["p", READER.pubkey], ["h", THEIRS]]),
            (READER, 1, []),
        ]
    ):
        out.append(keys.sign(kind, f"e{i}", tags, created_at=NOW - i))
    return out


def f(**fields: Any) -> Filter:
    parsed = parse_filter(fields)
    assert isinstance(parsed, Filter)
    return parsed


def viewer(*keys: Keys, own: tuple[Event, ...] = ()) -> Viewer:
    v = Viewer(1, "10.0.0.1", frozenset(k.pubkey for k in keys))
    for event in own:
        v.remember(event.id)
    return v


def narrowed_matches(filt: Filter, v: Viewer, d: GroupDirectory) -> set[str]:
    parts = narrow_for_reader(filt, v, d)
    assert all(part.limit == filt.limit for part in parts)
    return {e.id for e in events() if any(part.matches(e) for part in parts)}


def readable_matches(filt: Filter, v: Viewer, d: GroupDirectory) -> set[str]:
    rule = restricted_delivery(d)
    return {e.id for e in events() if filt.matches(e) and rule(e, v)}


EXACT_FILTERS = [
    {"kinds": [1059]},
    {"kinds": [446, 1059], "limit": 5},
    {"kinds": [1059], "#p": [OTHER.pubkey]},
    {"kinds": [1059], "authors": [THROWAWAY.pubkey]},
    {"kinds": [445]},
    {"kinds": [445, 450], "since": NOW - 20},
    {"kinds": [1, 445, 1059]},
    {"kinds": [1, 446], "#p": [READER.pubkey, OWNER.pubkey]},
    {"kinds": [443, 10051]},
]


@pytest.mark.parametrize("fields", EXACT_FILTERS, ids=str)
@pytest.mark.parametrize("who", ["reader", "reader+other", "anon"])
def test_narrowed_filters_match_exactly_what_the_reader_may_read(
    fields: dict[str, Any], who: str
) -> None:
    """Nothing readable is lost and nothing unreadable is asked for."""
    published = events()[3]  # a 1059 this connection published under a throw-away key
    keys = {"reader": (READER,), "reader+other": (READER, OTHER), "anon": ()}[who]
    v = viewer(*keys, own=(published,))
    d = directory()
    filt = f(**fields)
    assert narrowed_matches(filt, v, d) == readable_matches(filt, v, d)


@pytest.mark.parametrize(
    "fields",
    [{}, {"limit": 3}, {"kinds": [445], "#h": [MINE, THEIRS]}, {"ids": [events()[8].id]}],
    ids=str,
)
def test_filters_the_rules_cannot_express_are_kept_whole(fields: dict[str, Any]) -> None:
    """Kind-less filters and filters naming groups with #h stay as asked (a superset the
    read rules then judge), so nothing readable is ever lost."""
    v, d = viewer(READER), directory()
    filt = f(**fields)
    assert narrowed_matches(filt, v, d) >= readable_matches(filt, v, d)
    if "kinds" not in fields or "#h" in fields:
        assert narrow_for_reader(filt, v, d) == (filt,)


def test_a_relay_wide_admin_reads_every_group_unnarrowed() -> None:
    """admin_pubkeys read every group, including ones the directory has not seen."""
    filt = f(kinds=[445])
    assert narrow_for_reader(filt, viewer(ROOT), directory()) == (filt,)


def test_a_reader_of_no_group_and_no_key_asks_for_nothing_restricted() -> None:
    """Nothing to read: no sub-filter at all for the restricted kinds."""
    assert narrow_for_reader(f(kinds=[445, 1059]), viewer(), directory()) == ()
    assert narrow_for_reader(f(kinds=[1, 445]), viewer(), directory()) == (f(kinds=[1]),)


def test_a_reader_of_very_many_groups_is_not_narrowed_by_group() -> None:
    """Past MAX_NARROWED_GROUPS an #h list costs more than reading past refused events."""
    d = directory()
    for i in range(MAX_NARROWED_GROUPS + 1):
        d.update(GroupState(f"g{i}", owner=READER.pubkey))
    filt = f(kinds=[445])
    assert narrow_for_reader(filt, viewer(READER), d) == (filt,)


def test_an_existing_p_constraint_is_kept_and_the_readers_keys_added() -> None:
    """``#p`` naming someone else: the reader's own keys become a second ``p`` condition
    (a wrap to both is the reader's), never a replacement that would widen the filter."""
    asked = f(kinds=[1059], **{"#p": [OTHER.pubkey]})
    first = narrow_for_reader(asked, viewer(READER), directory())[0]
    assert first.tags == (("p", frozenset({OTHER.pubkey})), ("p", frozenset({READER.pubkey})))
    mine = f(kinds=[1059], **{"#p": [READER.pubkey]})
    assert narrow_for_reader(mine, viewer(READER), directory())[0] == mine
