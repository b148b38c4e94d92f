"""relay.mls.narrowing.count_scope: COUNT filters select exactly what the read rules allow.

Counting ``total - minus + plus`` of a :class:`~relay.core.policy.CountPlan` in memory
must give the same events as filtering every match through ``can_read_passively``.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.core.event import Event, EventId, Pubkey
from relay.core.filters import Filter
from relay.core.policy import Policy, Viewer
from relay.mls import kinds
from relay.mls.groups import GroupState
from relay.mls.narrowing import count_scope
from relay.mls.rules import GroupDirectory, own_keypackages_only, restricted_delivery

KEYS = [c * 64 for c in "abcd"]
# Short ids need a roster to be read; 64-hex ids are capabilities (R-M11) while roster-less.
GROUPS = ["g1", "g2", "e" * 64, "f" * 64]
KINDS = sorted(kinds.RESTRICTED | {1, 444})


def policy(directory: GroupDirectory, *, enforce: bool) -> Policy:
    return Policy(
        read_rules=(restricted_delivery(directory),) if enforce else (),
        passive_rules=(own_keypackages_only(),),
        guarded_kinds=kinds.RESTRICTED,
        scope_rules=(count_scope(directory, enforce=enforce),),
    )


def make_event(n: int, kind: int, author: str, p: list[str], h: str) -> Event:
    # The write rules store 445 and 450 only with exactly one h tag; others may have one.
    has_h = kind in (kinds.GROUP_MESSAGE, kinds.ROSTER) or n % 2
    tags = tuple(("p", v) for v in p) + ((("h", h),) if has_h else ())
    return Event(EventId(f"{n:064x}"), Pubkey(author), 100, kind, tags, "", "0" * 128, b"{}")


events = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.sampled_from(KEYS),
        st.lists(st.sampled_from(KEYS), max_size=2),
        st.sampled_from([*GROUPS, "unknown", "0" * 64]),
    ),
    max_size=25,
).map(lambda rows: [make_event(i, *row) for i, row in enumerate(rows)])
filters = st.lists(
    st.builds(
        Filter,
        kinds=st.none() | st.frozensets(st.sampled_from(KINDS), min_size=1, max_size=4),
        authors=st.none() | st.frozensets(st.sampled_from(KEYS), min_size=1, max_size=2),
        tags=st.just(())
        | st.sampled_from([*GROUPS, "0" * 64]).map(lambda g: (("h", frozenset({g})),)),
        limit=st.none() | st.integers(0, 3),
    ),
    min_size=1,
    max_size=3,
)
members = st.dictionaries(
    st.sampled_from(GROUPS),
    st.tuples(st.frozensets(st.sampled_from(KEYS), max_size=2), st.booleans()),
    max_size=3,
)


def matched(fs: tuple[Filter, ...], evs: list[Event]) -> set[str]:
    return {e.id for e in evs if any(f.matches(e) for f in fs)}


@settings(max_examples=200, deadline=None)
@given(
    events,
    filters,
    members,
    st.frozensets(st.sampled_from(KEYS), max_size=2),
    st.frozensets(st.sampled_from(KEYS), max_size=1),
    st.frozensets(st.integers(0, 24), max_size=3),
    st.booleans(),
)
def test_count_plan_counts_exactly_the_passively_readable_events(
    evs: list[Event],
    fs: list[Filter],
    groups: dict[str, tuple[frozenset[str], bool]],
    pubkeys: frozenset[str],
    admins: frozenset[str],
    own: frozenset[int],
    enforce: bool,
) -> None:
    directory = GroupDirectory(global_admins=admins)
    for group_id, (group_members, rostered) in groups.items():
        state = GroupState(group_id, members=group_members, last_seq=1 if rostered else None)
        directory.update(state)
    viewer = Viewer(1, "10.0.0.1", pubkeys, {f"{n:064x}": None for n in own}).asking(fs)
    rules = policy(directory, enforce=enforce)
    plan = rules.count_plan(fs, viewer)
    assert plan is not None
    expected = {
        e.id for e in evs if any(f.matches(e) for f in fs) and rules.can_read_passively(e, viewer)
    }
    total, minus, plus = (matched(part, evs) for part in (plan.total, plan.minus, plan.plus))
    assert minus <= total and not (plus & (total - minus))
    assert len(total) - len(minus) + len(plus) == len(expected)
    assert (total - minus) | plus == expected


def test_a_count_over_unguarded_kinds_is_one_plain_store_count() -> None:
    rules = policy(GroupDirectory(), enforce=True)
    fs = [Filter(kinds=frozenset({1, 7}))]
    plan = rules.count_plan(fs, Viewer(1, "10.0.0.1"))
    assert plan is not None and plan.total == tuple(fs) and not plan.minus and not plan.plus
