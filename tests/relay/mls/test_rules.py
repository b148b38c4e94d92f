"""relay.mls.rules: the write and read rule functions of the MLS gateway (R-A3, R-M1…R-M11)."""

from __future__ import annotations

from typing import Any

import pytest

from relay.core.event import Event
from relay.core.filters import Filter, parse_filter
from relay.core.policy import Viewer
from relay.core.reasons import Rejection
from relay.mls.groups import GroupState
from relay.mls.rules import (
    GroupDirectory,
    refuse_older_than_archive,
    require_auth_for_restricted_reads,
    require_auth_for_restricted_writes,
    restricted_delivery,
    validate_mls_events,
)
from tests.support.nostr import Keys

OWNER, MEMBER, OUTSIDER, RECIPIENT, ROOT, THROWAWAY = (
    Keys(bytes.fromhex(h * 32)) for h in ("11", "22", "33", "44", "55", "66")
)
NOW = 1_700_000_000
TTL = 7 * 86400
G = "group-1"
MARMOT = "b2" * 32  # a roster-less Marmot group: 32 random bytes in hex, owned by OWNER
ANON = Viewer(1, "10.0.0.1")


def as_(*keys: Keys) -> Viewer:
    return Viewer(1, "10.0.0.1", frozenset(k.pubkey for k in keys))


def ev(
    kind: int, tags: list[list[str]] | None = None, keys: Keys = OWNER, content: str = ""
) -> Event:
    return keys.sign(kind, content, tags or [], created_at=NOW)


def f(**fields: Any) -> Filter:
    parsed = parse_filter(fields)
    assert isinstance(parsed, Filter)
    return parsed


def msg(rejection: Rejection | None) -> str | None:
    return None if rejection is None else rejection.message()


def directory(**options: Any) -> GroupDirectory:
    d = GroupDirectory(**options)
    d.update(
        GroupState(
            G,
            owner=OWNER.pubkey,
            admins=frozenset({OWNER.pubkey}),
            members=frozenset({MEMBER.pubkey}),
            invitees=frozenset({RECIPIENT.pubkey}),
            last_seq=1,
        )
    )
    return d


# --- GroupDirectory ------------------------------------------------------------------------


def test_directory_members_include_owner_roster_and_invitees() -> None:
    """The cached member set follows R-M7."""
    assert directory().members(G) == {OWNER.pubkey, MEMBER.pubkey, RECIPIENT.pubkey}


def test_directory_with_roster_membership_ignores_invitees() -> None:
    """membership = "roster": invitees are not readers."""
    assert RECIPIENT.pubkey not in directory(include_invitees=False).members(G)


def test_directory_unknown_group_has_only_the_global_admins() -> None:
    """Nobody but ``admin_pubkeys`` reads a group the relay has never seen; no h, nobody."""
    d = directory(global_admins=frozenset({ROOT.pubkey}))
    assert d.members("unknown") == {ROOT.pubkey}
    assert d.members(None) == frozenset()
    assert ROOT.pubkey in d.members(G)


def test_directory_update_replaces_the_cached_members() -> None:
    """After an update, the new member set is used."""
    d = directory()
    d.update(GroupState(G, owner=OWNER.pubkey))
    assert d.members(G) == {OWNER.pubkey} and len(d) == 1 and d.get(G) is not None


def test_directory_groups_of_follows_membership_changes() -> None:
    """The reverse index answers which groups a reader belongs to, through updates."""
    d = directory()
    d.update(GroupState("other", owner=MEMBER.pubkey))
    assert d.groups_of(frozenset({MEMBER.pubkey})) == {G, "other"}
    assert d.groups_of(frozenset({RECIPIENT.pubkey, OUTSIDER.pubkey})) == {G}
    d.update(GroupState(G, owner=OWNER.pubkey))
    assert d.groups_of(frozenset({MEMBER.pubkey})) == {"other"}
    assert d.groups_of(frozenset({RECIPIENT.pubkey})) == frozenset()


# --- write rules ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [443, 445, 446, 450, 1059, 10051])
def test_restricted_kinds_need_an_authenticated_writer(kind: int) -> None:
    """R-A2: publishing an MLS kind unauthenticated is auth-required."""
    rule = require_auth_for_restricted_writes()
    assert msg(rule(ev(kind), ANON, NOW)) == (
        f"auth-required: kind {kind} requires an authenticated connection"
    )
    assert rule(ev(kind, keys=OUTSIDER), as_(OUTSIDER), NOW) is None


def test_keypackage_is_accepted_only_from_its_owners_connection() -> None:
    """A 443 signed by someone else (e.g. a fetched, consumed one replayed) is restricted."""
    rule = require_auth_for_restricted_writes()
    event = ev(443, keys=OWNER)
    assert msg(rule(event, as_(OUTSIDER), NOW)) == (
        "restricted: key packages are accepted only from their owner's connection"
    )
    assert rule(event, as_(OUTSIDER, OWNER), NOW) is None


@pytest.mark.parametrize("kind", [0, 1, 3, 7, 444, 30023])
def test_ordinary_kinds_need_no_authentication(kind: int) -> None:
    """Non-MLS kinds are open (444 is refused by the shape rule instead)."""
    assert require_auth_for_restricted_writes()(ev(kind), ANON, NOW) is None


@pytest.mark.parametrize(
    ("kind", "tags", "content", "expected"),
    [
        (444, [], "", "invalid: welcome must be gift-wrapped"),
        (443, [["exp", str(NOW - 1)]], "0102", "invalid: keypackage expired"),
        (443, [], "zz", "invalid: keypackage content"),
        (443, [["p", "ab" * 32]], "0102", "invalid: keypackage owner mismatch"),
        (443, [], "0102", None),
        (445, [], "", "invalid: missing h"),
        (445, [["h", "g" * 257]], "", "invalid: bad group id"),
        (445, [["h", "g\u0000\u202e"]], "", "invalid: bad group id"),
        (445, [["h", "a b"]], "", "invalid: bad group id"),
        (445, [["h", "ab" * 32]], "", None),
        (445, [["h", "q+/w=="]], "", None),
        (450, [["h", "g" * 257], ["op", "bootstrap"], ["seq", "1"]], "", "invalid: bad group id"),
        (445, [["h", G], ["k", "x"]], "", "invalid: k (epoch) must be a non-negative integer"),
        (445, [["h", G], ["k", "³"]], "", "invalid: k (epoch) must be a non-negative integer"),
        (445, [["h", G], ["k", "3"]], "", None),
        (446, [], "", "invalid: noise DM needs exactly one p tag"),
        (
            446,
            [["p", "ab" * 32], ["p", "cd" * 32]],
            "",
            "invalid: noise DM needs exactly one p tag",
        ),
        (446, [["p", "ab" * 32], ["v", "noise.2"]], "", "invalid: unsupported noise version"),
        (446, [["p", "ab" * 32], ["v", "noise.1"]], "", None),
        (1059, [], "", "invalid: gift wrap needs a p tag"),
        (1059, [["p", "ab" * 32]], "", None),
        (450, [["h", G], ["op", "add"]], "", "invalid: bad seq"),
        (450, [["h", G], ["op", "bootstrap"], ["seq", "1"]], "", None),
        (10051, [], "", "invalid: keypackage relay list needs a relay tag"),
        (10051, [["relay", "https://a.example"]], "", "invalid: keypackage relay list"),
        (10051, [["relay", "wss://"]], "", "invalid: keypackage relay list"),
        (10051, [["relay", "wss://a.example"]], "", None),
        (10051, [["relay", "ws://127.0.0.1:7777"]], "", None),
        (1, [], "hello", None),
    ],
)
def test_validate_mls_events_matrix(
    kind: int, tags: list[list[str]], content: str, expected: str | None
) -> None:
    """Every MLS kind's synchronous shape check (R-M1 … R-M8), by reason prefix."""
    got = msg(validate_mls_events(TTL)(ev(kind, tags, content=content), as_(OWNER), NOW))
    if expected is None:
        assert got is None
    else:
        assert got is not None and got.startswith(expected), got


# --- read rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        [{"kinds": [445]}],
        [{"kinds": [1, 443]}],
        [{"kinds": [1]}, {"kinds": [1059]}],
        [{"kinds": [446], "#p": ["ab" * 32]}],
        [{"kinds": [450]}],
        [{"kinds": [10051]}],
    ],
)
def test_unauthenticated_req_naming_a_restricted_kind_is_auth_required(
    filters: list[dict[str, Any]],
) -> None:
    """R-A3: any filter that names a restricted kind needs AUTH."""
    rule = require_auth_for_restricted_reads()
    got = msg(rule([f(**x) for x in filters], ANON))
    assert got is not None and got.startswith("auth-required: kind ")
    assert rule([f(**x) for x in filters], as_(OUTSIDER)) is None


@pytest.mark.parametrize(
    "filters", [[{}], [{"kinds": [1]}], [{"#h": [G]}], [{"authors": ["ab" * 32]}]]
)
def test_unauthenticated_req_without_restricted_kinds_is_served(
    filters: list[dict[str, Any]],
) -> None:
    """Kind-less and ordinary filters are served (delivery filtering hides MLS events)."""
    assert require_auth_for_restricted_reads()([f(**x) for x in filters], ANON) is None


def readers(event: Event, d: GroupDirectory | None = None) -> set[str]:
    """Which of the test identities (and the anonymous viewer) may read ``event``."""
    rule = restricted_delivery(d or directory())
    names = {"owner": OWNER, "member": MEMBER, "outsider": OUTSIDER, "recipient": RECIPIENT}
    got = {name for name, keys in names.items() if rule(event, as_(keys))}
    return got | ({"anon"} if rule(event, ANON) else set())


def test_group_message_is_readable_by_members_only() -> None:
    """445: owner, roster members and invitees; never outsiders or anonymous viewers."""
    event = ev(445, [["h", G]], keys=THROWAWAY)
    assert readers(event) == {"owner", "member", "recipient"}


def test_group_message_of_an_unknown_group_is_readable_by_nobody() -> None:
    """445 for a group the relay does not know: no reader."""
    assert readers(ev(445, [["h", "unknown"]], keys=THROWAWAY)) == set()
    assert readers(ev(445, [], keys=THROWAWAY)) == set()


def test_group_message_with_roster_membership_excludes_invitees() -> None:
    """membership = "roster": invitees do not receive 445."""
    event = ev(445, [["h", G]], keys=THROWAWAY)
    assert readers(event, directory(include_invitees=False)) == {"owner", "member"}


def test_roster_event_is_readable_by_members_and_admins() -> None:
    """450: members and admins of the group."""
    event = ev(450, [["h", G], ["op", "add"], ["seq", "2"], ["p", MEMBER.pubkey]])
    assert readers(event) == {"owner", "member", "recipient"}


@pytest.mark.parametrize("kind", [446, 1059])
def test_addressed_kinds_are_readable_by_recipients_and_author_only(kind: int) -> None:
    """446/1059: the ``p`` recipients and the author's pubkey; nobody else."""
    event = ev(kind, [["p", RECIPIENT.pubkey]], keys=MEMBER)
    assert readers(event) == {"recipient", "member"}


def test_addressed_kind_is_readable_by_the_connection_that_published_it() -> None:
    """A gift wrap by a throw-away key is readable by the connection that sent it."""
    event = ev(1059, [["p", RECIPIENT.pubkey]], keys=THROWAWAY)
    viewer = as_(OWNER)
    rule = restricted_delivery(directory())
    assert not rule(event, viewer)
    viewer.remember(event.id)
    assert rule(event, viewer)


@pytest.mark.parametrize("kind", [443, 10051])
def test_keypackage_kinds_are_readable_by_any_authenticated_viewer(kind: int) -> None:
    """443/10051: any authenticated connection, never anonymous ones."""
    assert readers(ev(kind)) == {"owner", "member", "outsider", "recipient"}


def test_ordinary_kinds_are_readable_by_everyone() -> None:
    """The delivery rule does not touch non-MLS kinds."""
    assert readers(ev(1, [["h", G]])) == {"owner", "member", "outsider", "recipient", "anon"}


# --- R-M11: naming a roster-less group's id -------------------------------------------------


def marmot_directory(**options: Any) -> GroupDirectory:
    d = GroupDirectory(**options)
    d.update(GroupState(MARMOT, owner=OWNER.pubkey, last_epoch=1))
    return d


def named_readers(event: Event, *filters: Filter, d: GroupDirectory | None = None) -> set[str]:
    """Who may read ``event`` while answering a request made of ``filters``."""
    rule = restricted_delivery(d or marmot_directory())
    names = {"owner": OWNER, "member": MEMBER, "outsider": OUTSIDER}
    got = {name for name, keys in names.items() if rule(event, as_(keys).asking(filters))}
    return got | ({"anon"} if rule(event, ANON.asking(filters)) else set())


MARMOT_MSG = ev(445, [["h", MARMOT]], keys=THROWAWAY)


def test_marmot_group_message_is_readable_by_an_authenticated_request_naming_its_h() -> None:
    """Any authenticated viewer whose request names the group with #h reads it, the
    anonymous one never does."""
    assert named_readers(MARMOT_MSG, f(kinds=[445], **{"#h": [MARMOT]})) == {
        "owner",
        "member",
        "outsider",
    }


@pytest.mark.parametrize(
    "filters",
    [
        [],
        [{"kinds": [445]}],
        [{}],
        [{"ids": [MARMOT_MSG.id]}],
        [{"authors": [THROWAWAY.pubkey]}],
        [{"kinds": [445], "#h": ["c3" * 32]}],
        [{"kinds": [445], "#p": [MARMOT]}],
        [{"kinds": [445], "#e": [MARMOT]}],
    ],
)
def test_marmot_group_message_is_hidden_from_requests_that_do_not_name_it(
    filters: list[dict[str, Any]],
) -> None:
    """Broad queries, ids, authors, other groups, the id in another tag: only the
    recorded owner reads the group's events."""
    assert named_readers(MARMOT_MSG, *(f(**x) for x in filters)) == {"owner"}


def test_naming_the_group_in_any_filter_of_the_request_counts() -> None:
    """The request names the group: the id is known, so any filter may return its events."""
    assert "outsider" in named_readers(MARMOT_MSG, f(kinds=[445]), f(**{"#h": [MARMOT]}))


def test_marmot_group_with_a_roster_is_not_opened_by_naming_it() -> None:
    """A 450 bootstrap makes the group strict: naming it is no longer enough."""
    d = GroupDirectory()
    d.update(GroupState(MARMOT, owner=OWNER.pubkey, last_seq=1))
    assert named_readers(MARMOT_MSG, f(**{"#h": [MARMOT]}), d=d) == {"owner"}


def test_membership_roster_turns_the_capability_off() -> None:
    """membership = "roster": recorded members only, whatever the request names."""
    d = marmot_directory(include_invitees=False, id_capability=False)
    assert named_readers(MARMOT_MSG, f(**{"#h": [MARMOT]}), d=d) == {"owner"}


def test_a_guessable_group_id_is_not_opened_by_naming_it() -> None:
    """Short ids are no capability: naming one reads nothing."""
    d = GroupDirectory()
    d.update(GroupState(G, owner=OWNER.pubkey))
    event = ev(445, [["h", G]], keys=THROWAWAY)
    assert named_readers(event, f(**{"#h": [G]}), d=d) == {"owner"}


def test_an_unknown_marmot_group_is_readable_by_whoever_names_it() -> None:
    """A group not seen yet (e.g. still on its way from another instance) is open too."""
    event = ev(445, [["h", "d4" * 32]], keys=THROWAWAY)
    assert named_readers(event, f(**{"#h": ["d4" * 32]})) == {"owner", "member", "outsider"}


def test_roster_events_are_never_granted_by_naming_the_group() -> None:
    """450 stays members and admins only."""
    event = ev(450, [["h", MARMOT], ["op", "add"], ["seq", "2"], ["p", MEMBER.pubkey]])
    assert named_readers(event, f(**{"#h": [MARMOT]})) == {"owner"}


@pytest.mark.parametrize("kind", [445, 446, 1059])
def test_archived_kinds_older_than_the_archive_are_refused(kind: int) -> None:
    """R-M9: created_at before now - TTL (what the sweep deletes) → invalid; at the
    boundary and after it → accepted."""
    rule = refuse_older_than_archive(30 * 86400)
    cutoff = NOW - 30 * 86400
    old = THROWAWAY.sign(kind, "", [["h", G], ["p", MEMBER.pubkey]], created_at=cutoff - 1)
    edge = THROWAWAY.sign(kind, "", [["h", G], ["p", MEMBER.pubkey]], created_at=cutoff)
    assert msg(rule(old, as_(OWNER), NOW)) == "invalid: older than the message archive"
    assert rule(edge, as_(OWNER), NOW) is None


def test_kinds_outside_the_archive_are_never_refused_for_their_age() -> None:
    """Rosters, key package lists and ordinary notes are not swept, so age is no reason."""
    rule = refuse_older_than_archive(86400)
    for kind in (1, 450, 10051):
        event = OWNER.sign(kind, "", [["h", G]], created_at=NOW - 10 * 86400)
        assert rule(event, as_(OWNER), NOW) is None
