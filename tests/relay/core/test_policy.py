"""relay.core.policy: the rule lists and each rule factory (R-A2, R-A5, NIP-70, R-C3)."""

from __future__ import annotations

import pytest

from relay.core import policy as rules
from relay.core.event import Event
from relay.core.filters import Filter
from relay.core.policy import Policy, Viewer
from relay.core.ratelimit import KindLimit, KindRateLimiter
from relay.core.reasons import Rejection, blocked, invalid
from tests.support.nostr import Keys

ALICE, BOB, MALLORY = (Keys(bytes.fromhex(h * 32)) for h in ("11", "22", "33"))
NOW = 1_700_000_000
ANON = Viewer(1, "10.0.0.1")


def as_(*keys: Keys) -> Viewer:
    return Viewer(1, "10.0.0.1", frozenset(k.pubkey for k in keys))


def msg(rejection: Rejection | None) -> str | None:
    return None if rejection is None else rejection.message()


def note(keys: Keys = ALICE, kind: int = 1, tags: list[list[str]] | None = None) -> Event:
    return keys.sign(kind, "", tags, created_at=NOW)


# --- Viewer --------------------------------------------------------------------------------


def test_viewer_rate_keys_are_the_author_then_every_key_then_the_ip() -> None:
    """Buckets are per authenticated pubkey, falling back to the client IP; an event its
    connection did not author counts against every key the connection holds."""
    viewer = as_(ALICE, BOB)
    assert viewer.rate_keys(BOB.pubkey, frozenset()) == (BOB.pubkey,)
    assert viewer.rate_keys(MALLORY.pubkey, frozenset()) == tuple(
        sorted((ALICE.pubkey, BOB.pubkey))
    )
    assert ANON.rate_keys(ALICE.pubkey, frozenset()) == ("ip:10.0.0.1",)
    assert not ANON.authenticated and viewer.authenticated


def test_viewer_rate_keys_with_an_allowlist_are_its_listed_keys_only() -> None:
    """An unlisted key costs nothing to mint: authenticating one, or signing with it,
    never moves an event to a fresh bucket (the point-7 hole, for writes)."""
    listed = frozenset({ALICE.pubkey})
    with_extra = as_(ALICE, MALLORY)
    assert with_extra.rate_keys(ALICE.pubkey, listed) == (ALICE.pubkey,)
    assert with_extra.rate_keys(MALLORY.pubkey, listed) == (ALICE.pubkey,)
    assert with_extra.rate_keys(BOB.pubkey, listed) == (ALICE.pubkey,)
    assert as_(MALLORY).rate_keys(MALLORY.pubkey, listed) == ("ip:10.0.0.1",)


def test_viewer_limit_keys_are_its_listed_identities_else_the_connection() -> None:
    """Fetch limits are charged to every allowlisted pubkey of the connection (extra keys
    add no budget), or to the connection at its IP when the allowlist is empty."""
    listed = frozenset({ALICE.pubkey, BOB.pubkey})
    assert as_(ALICE, MALLORY).limit_keys(listed) == (ALICE.pubkey,)
    assert as_(ALICE, BOB, MALLORY).limit_keys(listed) == tuple(sorted(listed))
    assert as_(ALICE, MALLORY).limit_keys(frozenset()) == ("conn:10.0.0.1#1",)
    assert ANON.limit_keys(listed) == ("conn:10.0.0.1#1",)


# --- Policy ---------------------------------------------------------------------------------


def test_the_first_rejecting_event_rule_wins_and_later_rules_do_not_run() -> None:
    """Rules run in order; the first rejection is returned."""
    ran: list[str] = []

    def rule(name: str, result: Rejection | None) -> rules.EventRule:
        def check(event: Event, viewer: Viewer, now: int) -> Rejection | None:
            ran.append(name)
            return result

        return check

    policy = Policy((rule("a", None), rule("b", invalid("b")), rule("c", blocked("c"))))
    assert msg(policy.reject_event(note(), ANON, NOW)) == "invalid: b"
    assert ran == ["a", "b"]


def test_empty_policy_accepts_and_allows_everything() -> None:
    """No rules: every event, REQ and read is allowed."""
    policy = Policy()
    assert policy.reject_event(note(), ANON, NOW) is None
    assert policy.reject_req([Filter()], ANON) is None
    assert policy.can_read(note(), ANON)


def test_can_read_needs_every_read_rule() -> None:
    """One read rule saying no hides the event."""
    policy = Policy(read_rules=(lambda e, v: True, lambda e, v: e.kind != 4))
    assert policy.can_read(note(kind=1), ANON)
    assert not policy.can_read(note(kind=4), ANON)


# --- rule factories --------------------------------------------------------------------------


def test_read_only_blocks_every_event() -> None:
    """R-C3: read-only mode answers ``blocked: relay is read-only for maintenance``."""
    rule = rules.reject_when_read_only()
    assert msg(rule(note(), as_(ALICE), NOW)) == "blocked: relay is read-only for maintenance"


def test_kind_22242_is_refused_as_an_event() -> None:
    """AUTH events published with EVENT are ``invalid:``; other kinds pass."""
    rule = rules.reject_auth_events_as_event()
    assert msg(rule(note(kind=22242), ANON, NOW)) == (
        "invalid: kind 22242 is only accepted in AUTH messages"
    )
    assert rule(note(kind=1), ANON, NOW) is None


def test_blacklisted_authors_and_connections_are_blocked() -> None:
    """An event by, or sent from a connection authenticated as, a blocked key is blocked."""
    rule = rules.reject_blocked_pubkeys(frozenset({MALLORY.pubkey}))
    assert msg(rule(note(MALLORY), ANON, NOW)) == "blocked: pubkey is not allowed on this relay"
    assert msg(rule(note(ALICE), as_(ALICE, MALLORY), NOW)) is not None
    assert rule(note(ALICE), as_(ALICE), NOW) is None


def test_blacklisted_readers_are_blocked() -> None:
    """REQ from a connection authenticated as a blocked key is ``blocked:``."""
    rule = rules.reject_blocked_readers(frozenset({MALLORY.pubkey}))
    assert msg(rule([Filter()], as_(MALLORY))) == "blocked: pubkey is not allowed on this relay"
    assert rule([Filter()], as_(ALICE)) is None
    assert rule([Filter()], ANON) is None


ALLOWED = frozenset({ALICE.pubkey})


def test_allowlisted_writer_requires_authentication() -> None:
    """Unauthenticated publishers get ``auth-required:``."""
    rule = rules.require_allowlisted_writer(ALLOWED, require_author_match=True)
    assert msg(rule(note(ALICE), ANON, NOW)) == (
        "auth-required: this relay only accepts events from authenticated users"
    )


def test_allowlisted_writer_restricts_unlisted_pubkeys() -> None:
    """Authenticated but not listed → ``restricted:``."""
    rule = rules.require_allowlisted_writer(ALLOWED, require_author_match=True)
    assert msg(rule(note(BOB), as_(BOB), NOW)) == (
        "restricted: pubkey is not on this relay's allowlist"
    )


def test_allowlisted_writer_requires_the_author_to_be_authenticated() -> None:
    """A listed connection may not publish someone else's event."""
    rule = rules.require_allowlisted_writer(ALLOWED, require_author_match=True)
    assert msg(rule(note(BOB), as_(ALICE), NOW)) == (
        "restricted: event author must be an authenticated pubkey of this connection"
    )
    assert rule(note(ALICE), as_(ALICE), NOW) is None
    assert rule(note(BOB), as_(ALICE, BOB), NOW) is None


@pytest.mark.parametrize("kind", [445, 1059])
def test_throwaway_key_kinds_skip_the_author_match(kind: int) -> None:
    """Kinds 445 and 1059 signed by a throw-away key pass from a listed connection."""
    rule = rules.require_allowlisted_writer(ALLOWED, require_author_match=True)
    throwaway = Keys()
    assert rule(note(throwaway, kind=kind), as_(ALICE), NOW) is None
    assert msg(rule(note(throwaway, kind=kind), ANON, NOW)) is not None
    assert msg(rule(note(throwaway, kind=kind), as_(BOB), NOW)) is not None


def test_author_match_can_be_switched_off() -> None:
    """``require_author_match = false`` lets a listed connection relay others' events."""
    rule = rules.require_allowlisted_writer(ALLOWED, require_author_match=False)
    assert rule(note(BOB), as_(ALICE), NOW) is None


def test_allowlisted_reader() -> None:
    """REQ/COUNT need an authenticated, listed connection."""
    rule = rules.require_allowlisted_reader(ALLOWED)
    assert (
        msg(rule([Filter()], ANON)) == "auth-required: this relay only serves authenticated users"
    )
    assert msg(rule([Filter()], as_(BOB))) == "restricted: pubkey is not on this relay's allowlist"
    assert rule([Filter()], as_(BOB, ALICE)) is None


def test_protected_events_only_from_their_authenticated_author() -> None:
    """NIP-70: ``["-"]`` needs the author authenticated on this connection."""
    rule = rules.require_author_for_protected()
    protected = note(ALICE, tags=[["-"]])
    assert msg(rule(protected, ANON, NOW)) == (
        "auth-required: this event may only be published by its author"
    )
    assert msg(rule(protected, as_(BOB), NOW)) == (
        "restricted: this event may only be published by its author"
    )
    assert rule(protected, as_(BOB, ALICE), NOW) is None
    assert rule(note(ALICE), ANON, NOW) is None


def test_event_rate_rule_answers_rate_limited_with_the_rule_name() -> None:
    """R-A5: over the limit → ``rate-limited: <name>``; per pubkey, else per IP."""
    limiter = KindRateLimiter((KindLimit("noise_dms", 1, 60.0, frozenset({446})),))
    clock = [0.0]
    rule = rules.limit_event_rate(limiter, lambda: clock[0])
    assert rule(note(ALICE, kind=446), as_(ALICE), NOW) is None
    assert msg(rule(note(ALICE, kind=446), as_(ALICE), NOW)) == "rate-limited: noise_dms"
    assert rule(note(BOB, kind=446), as_(BOB), NOW) is None  # another pubkey
    assert rule(note(ALICE, kind=446), ANON, NOW) is None  # the IP's own bucket
    assert msg(rule(note(BOB, kind=446), Viewer(2, "10.0.0.1"), NOW)) is not None  # same IP
    assert rule(note(ALICE, kind=1), as_(ALICE), NOW) is None  # kind without a rule
    clock[0] = 60.0
    assert rule(note(ALICE, kind=446), as_(ALICE), NOW) is None


def test_event_rate_rule_charges_an_unauthored_event_to_the_listed_identity() -> None:
    """Authenticating one more (unlisted) key, even one that sorts first, or signing with
    it gives no fresh bucket: the event still counts against the listed pubkey."""
    limiter = KindRateLimiter((KindLimit("mls_group_messages", 1, 60.0, frozenset({445})),))
    rule = rules.limit_event_rate(limiter, lambda: 0.0, frozenset({BOB.pubkey}))
    assert rule(note(MALLORY, kind=445), as_(BOB), NOW) is None
    extra = Keys(bytes.fromhex("01" * 32))
    assert extra.pubkey < BOB.pubkey
    for author in (MALLORY, extra):
        rejection = rule(note(author, kind=445), as_(BOB, extra), NOW)
        assert msg(rejection) == "rate-limited: mls_group_messages"


def test_guards_tells_which_filters_need_event_by_event_read_checks() -> None:
    """COUNT can use the store's own count unless a read rule may refuse a match."""
    allow_all = Policy()
    assert not allow_all.guards([Filter()])
    guarded = Policy(read_rules=(lambda e, v: True,), guarded_kinds=frozenset({445}))
    assert not guarded.guards([Filter(kinds=frozenset({1, 7}))])
    assert guarded.guards([Filter(kinds=frozenset({1, 445}))])
    assert guarded.guards([Filter(authors=frozenset({"a" * 64}))])  # any kind may match
    assert Policy(read_rules=(lambda e, v: True,)).guards([Filter(kinds=frozenset({1}))])


def test_viewer_names_only_what_a_tag_filter_of_its_request_asks_for() -> None:
    """names(tag, value): an explicit ``#tag`` value of any filter of the request; ids,
    authors, other tags and the connection's own viewer (no request) name nothing."""
    group = "ab" * 32
    viewer = as_(ALICE)
    assert not viewer.names("h", group)
    asking = viewer.asking(
        [Filter(kinds=frozenset({445})), Filter(tags=(("h", frozenset({group})),))]
    )
    assert asking.names("h", group) and not asking.names("h", "cd" * 32)
    assert not asking.names("p", group)
    assert not viewer.asking([Filter(ids=frozenset({group}), authors=frozenset({group}))]).names(
        "h", group
    )


def test_viewer_asking_keeps_the_connection_and_its_published_events() -> None:
    """The request-scoped viewer is the same connection: pubkeys and own events shared."""
    viewer = as_(ALICE)
    scoped = viewer.asking([Filter()])
    viewer.remember("e1")
    assert scoped.pubkeys == viewer.pubkeys and "e1" in scoped.own_events
