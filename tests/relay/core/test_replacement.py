"""relay.core.replacement: NIP-01 replacement and NIP-09 deletion decisions (pure)."""

from __future__ import annotations

from relay.core.outcome import Outcome
from relay.core.replacement import (
    Coordinate,
    Version,
    coordinate_of,
    deletes_event,
    deletion_of,
    is_newer,
    parse_coordinate,
    plan_replacement,
)
from tests.support.nostr import Keys

ALICE, BOB = Keys(bytes.fromhex("11" * 32)), Keys(bytes.fromhex("22" * 32))
NOW = 1_700_000_000


def test_coordinates_of_replaceable_addressable_and_regular_kinds() -> None:
    """Replaceable kinds have an empty d; addressable kinds use their d tag; others none."""
    assert coordinate_of(ALICE.sign(0)) == Coordinate(0, ALICE.pubkey, "")
    assert coordinate_of(ALICE.sign(10002, tags=[["d", "x"]])) == Coordinate(
        10002, ALICE.pubkey, ""
    )
    assert coordinate_of(ALICE.sign(30000, tags=[["d", "x"]])) == Coordinate(
        30000, ALICE.pubkey, "x"
    )
    assert coordinate_of(ALICE.sign(30000)) == Coordinate(30000, ALICE.pubkey, "")
    assert coordinate_of(ALICE.sign(1)) is None


def test_newer_means_later_then_lowest_id() -> None:
    """Later created_at wins; on equal times the lower id wins."""
    assert is_newer(2, "b", 1, "a")
    assert not is_newer(1, "a", 2, "b")
    assert is_newer(1, "a", 1, "b")
    assert not is_newer(1, "b", 1, "a")


def test_a_newer_event_replaces_every_stored_version() -> None:
    """An event newer than all stored versions is stored and replaces them."""
    event = ALICE.sign(0, created_at=NOW)
    plan = plan_replacement(event, [Version("aa", NOW - 2), Version("bb", NOW - 1)], None)
    assert plan.refused is None and plan.replaced == ("aa", "bb")


def test_an_older_event_is_superseded() -> None:
    """A stored newer version refuses the event as SUPERSEDED and replaces nothing."""
    event = ALICE.sign(0, created_at=NOW)
    plan = plan_replacement(event, [Version("ff", NOW + 1)], None)
    assert plan.refused is Outcome.SUPERSEDED and plan.replaced == ()


def test_a_tie_is_won_by_the_lowest_id() -> None:
    """Equal created_at: a stored lower id supersedes; a stored higher id is replaced."""
    event = ALICE.sign(0, created_at=NOW)
    lower, higher = "0" * 64, "f" * 64
    assert plan_replacement(event, [Version(lower, NOW)], None).refused is Outcome.SUPERSEDED
    assert plan_replacement(event, [Version(higher, NOW)], None).replaced == (higher,)


def test_a_deleted_coordinate_refuses_versions_up_to_the_deletion() -> None:
    """Versions created at or before the deletion stay deleted; later ones are stored."""
    assert plan_replacement(ALICE.sign(0, created_at=NOW), [], NOW).refused is Outcome.DELETED
    assert plan_replacement(ALICE.sign(0, created_at=NOW + 1), [], NOW).refused is None


def test_the_same_event_again_is_a_duplicate() -> None:
    """A stored version with the same id is DUPLICATE."""
    event = ALICE.sign(0, created_at=NOW)
    plan = plan_replacement(event, [Version(event.id, NOW)], None)
    assert plan.refused is Outcome.DUPLICATE


def test_coordinates_parse_only_replaceable_or_addressable_kinds() -> None:
    """kind:pubkey:d with ASCII digits; replaceable kinds drop d; other kinds are None."""
    assert parse_coordinate(f"30023:{ALICE.pubkey}:a:b") == Coordinate(30023, ALICE.pubkey, "a:b")
    assert parse_coordinate(f"0:{ALICE.pubkey}:ignored") == Coordinate(0, ALICE.pubkey, "")
    assert parse_coordinate(f"1:{ALICE.pubkey}:") is None
    assert parse_coordinate(f"²:{ALICE.pubkey}:") is None
    assert parse_coordinate("30023:only-two") is None


def test_a_deletion_names_its_authors_targets_only() -> None:
    """e targets are kept (deduplicated); a coordinates of other authors are dropped."""
    deletion = deletion_of(
        ALICE.sign(
            5,
            tags=[
                ["e", "aa"],
                ["e", "aa"],
                ["a", f"30023:{ALICE.pubkey}:x"],
                ["a", f"30023:{BOB.pubkey}:x"],
            ],
            created_at=NOW,
        )
    )
    assert deletion is not None
    assert deletion.event_ids == ("aa",)
    assert deletion.coordinates == (Coordinate(30023, ALICE.pubkey, "x"),)
    assert deletion.until == NOW and deletion.pubkey == ALICE.pubkey
    assert deletion_of(ALICE.sign(1)) is None


def test_a_deletion_removes_only_its_authors_non_deletion_events() -> None:
    """Same author and not kind 5: removable; anything else stays."""
    deletion = deletion_of(ALICE.sign(5, tags=[["e", "aa"]]))
    assert deletion is not None
    assert deletes_event(deletion, pubkey=ALICE.pubkey, kind=1)
    assert not deletes_event(deletion, pubkey=BOB.pubkey, kind=1)
    assert not deletes_event(deletion, pubkey=ALICE.pubkey, kind=5)
