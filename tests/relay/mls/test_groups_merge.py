"""merged(): instances converge on a group's latest state whatever order they learn
committed states in (over the bus, or reloaded from the store)."""

from __future__ import annotations

from typing import Any

from relay.mls.groups import GroupState, merged
from relay.mls.rules import GroupDirectory

OWNER, ALICE, BOB, CAROL = "o" * 64, "a" * 64, "b" * 64, "c" * 64


def state(seq: int | None, **fields: Any) -> GroupState:
    return GroupState("g", owner=OWNER, last_seq=seq, **fields)


def test_an_unknown_group_takes_the_incoming_state() -> None:
    incoming = state(1, members=frozenset({ALICE}))
    assert merged(None, incoming) == incoming


def test_a_later_roster_sequence_wins_in_either_order() -> None:
    older = state(1, members=frozenset({ALICE}))
    newer = state(2, members=frozenset(), removed=frozenset({ALICE}))
    assert merged(older, newer) == newer
    assert merged(newer, older) == newer


def test_a_roster_beats_a_group_known_only_from_messages() -> None:
    created = state(None, last_epoch=4)
    bootstrapped = state(1, members=frozenset({ALICE}))
    assert merged(bootstrapped, created) == bootstrapped
    assert merged(created, bootstrapped) == bootstrapped


def test_same_sequence_unions_invitations_and_keeps_the_highest_epoch() -> None:
    invited_bob = state(3, invitees=frozenset({BOB}), last_epoch=2)
    invited_carol = state(3, invitees=frozenset({CAROL}), last_epoch=5)
    expected = state(3, invitees=frozenset({BOB, CAROL}), last_epoch=5)
    assert merged(invited_bob, invited_carol) == expected
    assert merged(invited_carol, invited_bob) == expected


def test_the_directory_ignores_a_stale_state_arriving_late() -> None:
    directory = GroupDirectory()
    directory.merge(state(1, members=frozenset({ALICE})))
    directory.merge(state(2, removed=frozenset({ALICE})))
    directory.merge(state(1, members=frozenset({ALICE})))  # the older one, late
    assert ALICE not in directory.members("g")
