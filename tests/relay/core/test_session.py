"""relay.core.session: one connection's state machine, fed frames with a fixed clock.

Every rejection path answers in the form the client waits for (OK for EVENT/AUTH,
CLOSED for REQ/COUNT, NOTICE otherwise) with the standard NIP-01 prefix.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.core import messages as m
from relay.core import policy as rules
from relay.core.event import Event
from relay.core.filters import Filter
from relay.core.outcome import Outcome
from relay.core.policy import Policy
from relay.core.ratelimit import KindLimit, KindRateLimiter
from relay.core.reasons import invalid
from relay.core.session import (
    MAX_AUTHENTICATED_KEYS,
    MESSAGE_BURST_SECONDS,
    Action,
    AuthOptions,
    Count,
    Publish,
    Query,
    Send,
    Session,
    SessionLimits,
)
from tests.support.nostr import Keys, event_frame

ALICE, BOB, MALLORY = (Keys(bytes.fromhex(h * 32)) for h in ("11", "22", "33"))
NOW = 1_700_000_000
CHALLENGE = "c" * 64
RELAY_URL = "wss://relay.example.com"


@dataclass
class RecordingObserver:
    """Stand-in Observer that keeps every call."""

    calls: list[tuple[str, object, *tuple[object, ...]]] = field(default_factory=list)

    def message(self, command: str) -> None:
        self.calls.append(("message", command))

    def event_result(self, kind: int, result: str) -> None:
        self.calls.append(("event", kind, result))

    def auth_failure(self, reason: str) -> None:
        self.calls.append(("auth_failure", reason))

    def rate_limited(self, name: str) -> None:
        self.calls.append(("rate_limited", name))

    def req_rejected(self, reason: str) -> None:
        self.calls.append(("req_rejected", reason))


def make_session(
    policy: Policy | None = None,
    *,
    limits: SessionLimits | None = None,
    auth: AuthOptions | None = None,
    clock: Callable[[], float] = lambda: float(NOW),
    observer: RecordingObserver | None = None,
) -> Session:
    return Session(
        7,
        "10.0.0.1",
        challenge=CHALLENGE,
        policy=policy or Policy(),
        limits=limits or SessionLimits(),
        auth=auth or AuthOptions(enabled=True, relay_url=RELAY_URL),
        clock=clock,
        observer=observer,
    )


def feed(session: Session, *message: Any) -> list[Action]:
    return session.receive(orjson.dumps(list(message)))


def spend_messages(session: Session, count: int) -> None:
    """Send ``count`` harmless messages (CLOSEs of nothing): tokens of the message cap."""
    for _ in range(count):
        feed(session, "CLOSE", "nothing")


def sent(actions: list[Action]) -> list[list[Any]]:
    """The frames among ``actions``, decoded."""
    return [json.loads(a.data) for a in actions if isinstance(a, Send)]


def only_frame(actions: list[Action]) -> list[Any]:
    assert len(actions) == 1 and isinstance(actions[0], Send), actions
    frame = json.loads(actions[0].data)
    assert isinstance(frame, list)
    return frame


def note(keys: Keys = ALICE, kind: int = 1, **kwargs: Any) -> Event:
    kwargs.setdefault("created_at", NOW)
    return keys.sign(kind, kwargs.pop("content", "hi"), kwargs.pop("tags", None), **kwargs)


def publish(session: Session, event: Event) -> list[Action]:
    return session.receive(event_frame(event).encode())


def ok_reply(session: Session, event: Event) -> list[Any]:
    """The OK a session sends for ``event`` right away (a rejection)."""
    frame = only_frame(publish(session, event))
    assert frame[:3] == ["OK", event.id, False], frame
    return frame


def authenticate(session: Session, keys: Keys, **overrides: Any) -> list[Any]:
    tags = overrides.pop("tags", [["relay", RELAY_URL], ["challenge", CHALLENGE]])
    event = keys.sign(22242, "", tags, created_at=overrides.pop("created_at", NOW))
    frame = only_frame(feed(session, "AUTH", event.to_dict()))
    assert frame[:2] == ["OK", event.id]
    return frame


# --- greeting and accepted events ---------------------------------------------------------------


def test_greeting_sends_the_challenge_when_auth_is_enabled() -> None:
    """With auth on the first frame is ``["AUTH", challenge]``; with auth off, nothing."""
    assert sent(make_session().greeting()) == [["AUTH", CHALLENGE]]
    assert make_session(auth=AuthOptions(enabled=False)).greeting() == []


def test_valid_event_is_published_for_storage() -> None:
    """A valid event becomes a Publish action; nothing is sent before it is stored."""
    event = note()
    assert publish(make_session(), event) == [Publish(event, store=True)]


def test_ephemeral_event_is_published_without_storage() -> None:
    """Kinds 20000–29999 are fanned out but never stored."""
    event = note(kind=20001)
    assert publish(make_session(), event) == [Publish(event, store=False)]


@pytest.mark.parametrize(
    ("outcome", "reply"),
    [
        (Outcome.STORED, [True, ""]),
        (Outcome.EPHEMERAL, [True, ""]),
        (Outcome.DUPLICATE, [True, "duplicate: already have this event"]),
        (Outcome.SUPERSEDED, [False, "duplicate: a newer version of this event is stored"]),
        (Outcome.DELETED, [False, "blocked: this event was deleted by its author"]),
    ],
)
def test_published_answers_ok_by_store_outcome(outcome: Outcome, reply: list[Any]) -> None:
    """The OK after storage reflects what the store did, with the standard prefixes."""
    event = note()
    frame = json.loads(make_session().published(event, outcome))
    assert frame == ["OK", event.id, *reply]


def test_store_failure_answers_error() -> None:
    """A store failure is ``OK false "error: …"`` for that event."""
    event = note()
    frame = json.loads(make_session().store_failed(event, "disk full"))
    assert frame == ["OK", event.id, False, "error: disk full"]


def test_a_rejection_after_storage_is_answered_with_its_prefix() -> None:
    """published() with a Rejection (e.g. an MLS rule in the store) sends OK false."""
    event = note()
    frame = json.loads(make_session().published(event, invalid("nope")))
    assert frame == ["OK", event.id, False, "invalid: nope"]


# --- invalid: -------------------------------------------------------------------------------------


def test_bad_signature_is_invalid_and_echoes_the_id() -> None:
    """A forged signature gets ``OK <id> false "invalid: bad signature"``."""
    event = note()
    forged = replace(event, sig=note(BOB).sig)
    frame = only_frame(make_session().receive(b'["EVENT",' + orjson.dumps(forged.to_dict()) + b"]"))
    assert frame == ["OK", event.id, False, "invalid: bad signature"]


def test_wrong_id_is_invalid() -> None:
    """An id that is not the hash of the content is invalid."""
    obj = note().to_dict()
    obj["content"] = "changed"
    frame = only_frame(feed(make_session(), "EVENT", obj))
    assert frame == ["OK", obj["id"], False, "invalid: event id does not match its content"]


def test_wrong_types_are_invalid_with_the_claimed_id() -> None:
    """A shape error still echoes the id the client sent."""
    obj = note().to_dict()
    obj["kind"] = "1"
    frame = only_frame(feed(make_session(), "EVENT", obj))
    assert frame[:3] == ["OK", obj["id"], False] and frame[3].startswith("invalid: kind")


def test_event_without_a_usable_id_gets_a_notice() -> None:
    """No string id to echo → NOTICE with the invalid reason."""
    frame = only_frame(feed(make_session(), "EVENT", {"kind": 1}))
    assert frame == ["NOTICE", "invalid: missing field id"]


def test_too_many_tags_is_invalid() -> None:
    """More than ``max_event_tags`` tags is refused; exactly the limit passes."""
    session = make_session(limits=SessionLimits(max_event_tags=3))
    at_limit = note(tags=[["t", str(i)] for i in range(3)])
    assert isinstance(publish(session, at_limit)[0], Publish)
    over = note(tags=[["t", str(i)] for i in range(4)])
    assert ok_reply(session, over)[3] == "invalid: too many tags (max 3)"


def test_created_at_window_is_enforced_inclusively() -> None:
    """created_at must lie in [now − older, now + newer]; outside is ``invalid:``."""
    limits = SessionLimits(max_event_time_older_than_now=100, max_event_time_newer_than_now=10)
    session = make_session(limits=limits)
    for created_at in (NOW - 100, NOW + 10):
        assert isinstance(publish(session, note(created_at=created_at))[0], Publish)
    too_old = note(created_at=NOW - 101)
    assert ok_reply(session, too_old)[3] == "invalid: created_at is too far in the past"
    too_new = note(created_at=NOW + 11)
    assert ok_reply(session, too_new)[3] == "invalid: created_at is too far in the future"


YEAR = 365 * 24 * 3600
HOUR = 3600


def test_a_created_at_limit_of_0_means_no_limit_on_that_side_only() -> None:
    """As in rnostr, ``max_event_time_older_than_now = 0`` accepts any past event and
    ``max_event_time_newer_than_now = 0`` any future one; the other side stays enforced."""
    no_past_limit = make_session(
        limits=SessionLimits(max_event_time_older_than_now=0, max_event_time_newer_than_now=10)
    )
    assert isinstance(publish(no_past_limit, note(created_at=NOW - YEAR))[0], Publish)
    too_new = note(created_at=NOW + HOUR)
    assert ok_reply(no_past_limit, too_new)[3] == "invalid: created_at is too far in the future"
    no_future_limit = make_session(
        limits=SessionLimits(max_event_time_older_than_now=100, max_event_time_newer_than_now=0)
    )
    assert isinstance(publish(no_future_limit, note(created_at=NOW + HOUR))[0], Publish)
    too_old = note(created_at=NOW - YEAR)
    assert ok_reply(no_future_limit, too_old)[3] == "invalid: created_at is too far in the past"


def test_the_default_created_at_window_refuses_far_past_and_future_events() -> None:
    """Defaults: at most 3 years in the past and 900 s in the future."""
    session = make_session(limits=SessionLimits())
    too_old = note(created_at=NOW - 4 * YEAR)
    assert ok_reply(session, too_old)[3] == "invalid: created_at is too far in the past"
    too_new = note(created_at=NOW + HOUR)
    assert ok_reply(session, too_new)[3] == "invalid: created_at is too far in the future"


def test_expired_nip40_event_is_invalid() -> None:
    """An ``expiration`` at or before now is refused; a future one is accepted."""
    session = make_session()
    for when in (NOW - 1, NOW):
        expired = note(tags=[["expiration", str(when)]])
        assert ok_reply(session, expired)[3] == "invalid: event has expired"
    fresh = note(tags=[["expiration", str(NOW + 1)]])
    assert isinstance(publish(session, fresh)[0], Publish)


def test_kind_22242_via_event_is_invalid() -> None:
    """AUTH events published with EVENT are refused by the policy rule."""
    session = make_session(Policy((rules.reject_auth_events_as_event(),)))
    auth = note(kind=22242, tags=[["challenge", CHALLENGE]])
    assert ok_reply(session, auth)[3] == "invalid: kind 22242 is only accepted in AUTH messages"
    assert session.pubkeys == frozenset()


def test_oversize_event_is_invalid_and_echoes_the_id() -> None:
    """A frame over ``max_message_length`` bytes is refused before validation."""
    session = make_session(limits=SessionLimits(max_message_length=600))
    big = note(content="x" * 600)
    frame = ok_reply(session, big)
    assert frame[3] == f"invalid: message is {len(event_frame(big))} bytes, the limit is 600"


def test_frame_of_exactly_max_message_length_is_accepted() -> None:
    """The limit is inclusive."""
    event = note(content="y" * 100)
    length = len(event_frame(event).encode())
    session = make_session(limits=SessionLimits(max_message_length=length))
    assert isinstance(publish(session, event)[0], Publish)


def test_oversize_req_is_closed_and_oversize_garbage_is_a_notice() -> None:
    """Oversize REQ → CLOSED invalid; oversize non-JSON → NOTICE invalid."""
    session = make_session(limits=SessionLimits(max_message_length=100))
    frame = only_frame(feed(session, "REQ", "s", {"#t": ["x" * 200]}))
    assert frame[:2] == ["CLOSED", "s"] and frame[2].startswith("invalid: message is")
    frame = only_frame(session.receive(b"z" * 500))
    assert frame[0] == "NOTICE" and frame[1].startswith("invalid: message is 500 bytes")
    assert session.subscriptions == {}


def test_malformed_frames_get_an_invalid_notice() -> None:
    """Non-JSON and unknown commands are answered with a NOTICE and nothing else."""
    session = make_session()
    assert only_frame(session.receive(b"{")) == [
        "NOTICE",
        "invalid: could not parse message as JSON",
    ]
    assert only_frame(feed(session, "PING")) == ["NOTICE", "invalid: unknown command 'PING'"]


def test_req_with_a_bad_filter_is_closed_invalid() -> None:
    """A malformed filter closes that subscription with ``invalid:``."""
    frame = only_frame(feed(make_session(), "REQ", "s", {"kinds": "1"}))
    assert frame[:2] == ["CLOSED", "s"] and frame[2].startswith("invalid: filter field kinds")


# --- blocked: / rate-limited: / auth-required: / restricted: --------------------------------------


def test_blocked_pubkey_is_blocked() -> None:
    """A blacklisted author gets ``blocked:``."""
    session = make_session(Policy((rules.reject_blocked_pubkeys(frozenset({MALLORY.pubkey})),)))
    assert ok_reply(session, note(MALLORY))[3] == "blocked: pubkey is not allowed on this relay"


def test_read_only_mode_is_blocked() -> None:
    """R-C3 read-only answers ``blocked: relay is read-only for maintenance``."""
    session = make_session(Policy((rules.reject_when_read_only(),)))
    assert ok_reply(session, note())[3] == "blocked: relay is read-only for maintenance"


def test_kind_rate_limit_is_rate_limited_with_the_rule_name() -> None:
    """Over a [[rate_limiter.event]] rule → ``OK false "rate-limited: <name>"``."""
    limiter = KindRateLimiter((KindLimit("noise_dms", 2, 60.0, frozenset({446})),))
    observer = RecordingObserver()
    session = make_session(
        Policy((rules.limit_event_rate(limiter, lambda: float(NOW)),)), observer=observer
    )
    for i in range(2):
        assert isinstance(publish(session, note(kind=446, content=str(i)))[0], Publish)
    assert ok_reply(session, note(kind=446, content="3"))[3] == "rate-limited: noise_dms"
    assert ("rate_limited", "noise_dms") in observer.calls
    assert ("event", 446, "rate-limited") in observer.calls


def test_messages_per_second_cap_answers_in_the_form_of_each_message() -> None:
    """Over the connection cap (its burst spent): EVENT → OK, REQ → CLOSED, others →
    NOTICE, all rate-limited; a second later there are tokens again."""
    clock = [float(NOW)]
    observer = RecordingObserver()
    session = make_session(
        limits=SessionLimits(messages_per_second=2), clock=lambda: clock[0], observer=observer
    )
    spend_messages(session, 2 * MESSAGE_BURST_SECONDS)  # the burst the cap holds
    event = note()
    reason = "rate-limited: too many messages per second"
    assert only_frame(publish(session, event)) == ["OK", event.id, False, reason]
    assert only_frame(feed(session, "REQ", "s", {})) == ["CLOSED", "s", reason]
    assert only_frame(feed(session, "CLOSE", "s")) == ["NOTICE", reason]
    assert ("rate_limited", "messages_per_second") in observer.calls
    clock[0] += 1.0
    assert isinstance(publish(session, event)[0], Publish)


def test_zero_messages_per_second_means_no_cap() -> None:
    """messages_per_second = 0 disables the connection-level cap."""
    session = make_session(limits=SessionLimits(messages_per_second=0))
    for _ in range(50):
        assert isinstance(feed(session, "REQ", "s", {})[0], Query)


ALLOW_ALICE = Policy(
    (rules.require_allowlisted_writer(frozenset({ALICE.pubkey}), require_author_match=True),),
    (rules.require_allowlisted_reader(frozenset({ALICE.pubkey})),),
)


def test_allowlist_unauthenticated_event_is_auth_required() -> None:
    """Allowlist on, no AUTH yet → ``auth-required:``."""
    assert ok_reply(make_session(ALLOW_ALICE), note())[3].startswith("auth-required: ")


def test_allowlist_unauthenticated_req_and_count_are_closed_auth_required() -> None:
    """REQ and COUNT without AUTH are ``CLOSED "auth-required: …"``."""
    session = make_session(ALLOW_ALICE)
    for verb in ("REQ", "COUNT"):
        frame = only_frame(feed(session, verb, "s", {}))
        assert frame[:2] == ["CLOSED", "s"] and frame[2].startswith("auth-required: ")
    assert session.subscriptions == {}


def test_allowlist_unlisted_pubkey_is_restricted() -> None:
    """Authenticated as someone not listed → ``restricted:`` for EVENT and REQ."""
    session = make_session(ALLOW_ALICE)
    assert authenticate(session, BOB)[2] is True
    assert ok_reply(session, note(BOB))[3].startswith("restricted: ")
    frame = only_frame(feed(session, "REQ", "s", {}))
    assert frame[:2] == ["CLOSED", "s"] and frame[2].startswith("restricted: ")


def test_allowlist_listed_pubkey_may_publish_and_read() -> None:
    """Authenticated as a listed pubkey, EVENT and REQ proceed."""
    session = make_session(ALLOW_ALICE)
    authenticate(session, ALICE)
    assert isinstance(publish(session, note(ALICE))[0], Publish)
    assert isinstance(feed(session, "REQ", "s", {})[0], Query)


def test_allowlist_author_mismatch_is_restricted_except_throwaway_kinds() -> None:
    """A listed connection may not publish BOB's kind 1, but may relay 445/1059 by any key."""
    session = make_session(ALLOW_ALICE)
    authenticate(session, ALICE)
    assert ok_reply(session, note(BOB))[3] == (
        "restricted: event author must be an authenticated pubkey of this connection"
    )
    for kind in (445, 1059):
        assert isinstance(publish(session, note(Keys(), kind=kind))[0], Publish)


def test_protected_event_needs_its_authenticated_author() -> None:
    """NIP-70: unauthenticated → auth-required; another pubkey → restricted; author → ok."""
    session = make_session(Policy((rules.require_author_for_protected(),)))
    protected = note(ALICE, tags=[["-"]])
    assert ok_reply(session, protected)[3].startswith("auth-required: ")
    authenticate(session, BOB)
    assert ok_reply(session, protected)[3].startswith("restricted: ")
    authenticate(session, ALICE)
    assert isinstance(publish(session, protected)[0], Publish)


# --- REQ limits ----------------------------------------------------------------------------------


def test_max_subscriptions_is_restricted_but_replacing_is_allowed() -> None:
    """The (n+1)th live sub id is refused; reusing an id or closing one frees room."""
    session = make_session(limits=SessionLimits(max_subscriptions=2))
    assert isinstance(feed(session, "REQ", "a", {})[0], Query)
    assert isinstance(feed(session, "REQ", "b", {})[0], Query)
    assert only_frame(feed(session, "REQ", "c", {})) == [
        "CLOSED",
        "c",
        "restricted: too many subscriptions (max 2)",
    ]
    assert isinstance(feed(session, "REQ", "b", {"kinds": [1]})[0], Query)
    assert feed(session, "CLOSE", "a") == []
    assert isinstance(feed(session, "REQ", "c", {})[0], Query)
    assert set(session.subscriptions) == {"b", "c"}


def test_max_filters_is_invalid() -> None:
    """More filters than ``max_filters`` in one REQ or COUNT → CLOSED invalid."""
    session = make_session(limits=SessionLimits(max_filters=2))
    assert isinstance(feed(session, "REQ", "s", {}, {})[0], Query)
    for verb in ("REQ", "COUNT"):
        frame = only_frame(feed(session, verb, "t", {}, {}, {}))
        assert frame == ["CLOSED", "t", "invalid: too many filters (max 2)"]


def test_max_subid_length_is_invalid() -> None:
    """Sub ids longer than ``max_subid_length`` (or empty) → CLOSED invalid."""
    session = make_session(limits=SessionLimits(max_subid_length=5))
    assert isinstance(feed(session, "REQ", "12345", {})[0], Query)
    reason = "invalid: subscription id must be 1 to 5 characters"
    assert only_frame(feed(session, "REQ", "123456", {})) == ["CLOSED", "123456", reason]
    assert only_frame(feed(session, "REQ", "", {})) == ["CLOSED", "", reason]
    assert only_frame(feed(session, "COUNT", "123456", {})) == ["CLOSED", "123456", reason]


def test_rejected_req_drops_the_subscription_it_would_have_replaced() -> None:
    """A refused REQ with a live sub id leaves no stale subscription behind."""
    session = make_session(limits=SessionLimits(max_filters=1))
    feed(session, "REQ", "s", {})
    feed(session, "REQ", "s", {}, {})
    assert session.subscriptions == {}


@pytest.mark.parametrize(
    ("limits", "refused_req", "prefix"),
    [
        (SessionLimits(), ["REQ", "s", {"kinds": ["x"]}], "invalid:"),
        (SessionLimits(), ["REQ", "s"], "invalid:"),
        (SessionLimits(max_message_length=64), ["REQ", "s", {"#t": ["x" * 80]}], "invalid:"),
        (SessionLimits(messages_per_second=1), ["REQ", "s", {"kinds": [2]}], "rate-limited:"),
    ],
    ids=["bad filter", "no filter", "oversize", "rate-limited"],
)
def test_a_req_refused_before_its_filters_are_checked_also_ends_the_old_subscription(
    limits: SessionLimits, refused_req: list[Any], prefix: str
) -> None:
    """CLOSED ends the subscription whatever refused the REQ: a malformed or missing
    filter, an oversize frame, the message rate (NIP-01; R-P5's replacement)."""
    session = make_session(limits=limits)
    feed(session, "REQ", "s", {"kinds": [1]})
    assert set(session.subscriptions) == {"s"}
    if prefix == "rate-limited:":
        spend_messages(session, limits.messages_per_second * MESSAGE_BURST_SECONDS - 1)
    closed = only_frame(feed(session, *refused_req))
    assert closed[:2] == ["CLOSED", "s"] and closed[2].startswith(prefix)
    assert session.subscriptions == {}


def test_a_refused_count_leaves_a_live_req_of_that_id_alone() -> None:
    session = make_session()
    feed(session, "REQ", "s", {"kinds": [1]})
    assert only_frame(feed(session, "COUNT", "s", {"kinds": ["x"]}))[0] == "CLOSED"
    assert set(session.subscriptions) == {"s"}


def test_limit_is_clamped_to_max_limit_and_defaults_to_it() -> None:
    """Absent or too-large limits become max_limit; smaller ones are kept."""
    session = make_session(limits=SessionLimits(max_limit=10))
    (query,) = feed(session, "REQ", "s", {}, {"limit": 500}, {"limit": 3}, {"limit": 0})
    assert isinstance(query, Query)
    assert [f.limit for f in query.subscription.filters] == [10, 10, 3, 0]


def test_req_returns_a_query_and_registers_the_subscription() -> None:
    """A valid REQ is a Query for the store and a live subscription."""
    session = make_session()
    (query,) = feed(session, "REQ", "s", {"kinds": [1]})
    assert isinstance(query, Query)
    assert query.subscription.filters == (Filter(kinds=frozenset({1}), limit=1000),)
    assert session.is_current(query.subscription)


def test_req_with_an_existing_id_replaces_the_subscription() -> None:
    """The old subscription stops being current and only the new filters match live."""
    session = make_session()
    (old,) = feed(session, "REQ", "s", {"kinds": [1]})
    (new,) = feed(session, "REQ", "s", {"kinds": [2]})
    assert isinstance(old, Query) and isinstance(new, Query)
    assert not session.is_current(old.subscription) and session.is_current(new.subscription)
    assert session.live_matches(note(kind=1)) == []
    assert session.live_matches(note(kind=2)) == ["s"]


def test_close_stops_live_matches_and_unknown_close_is_silent() -> None:
    """CLOSE removes the subscription; closing an unknown id sends nothing."""
    session = make_session()
    (query,) = feed(session, "REQ", "s", {})
    assert isinstance(query, Query)
    assert session.live_matches(note()) == ["s"]
    assert feed(session, "CLOSE", "s") == []
    assert session.live_matches(note()) == [] and not session.is_current(query.subscription)
    assert feed(session, "CLOSE", "never") == []


def test_live_matches_lists_every_matching_subscription() -> None:
    """An event is delivered once per matching subscription."""
    session = make_session()
    feed(session, "REQ", "a", {"kinds": [1]})
    feed(session, "REQ", "b", {"authors": [ALICE.pubkey]})
    feed(session, "REQ", "c", {"kinds": [2]})
    assert sorted(session.live_matches(note(ALICE))) == ["a", "b"]


def test_live_matches_respects_read_rules() -> None:
    """Events the viewer may not read are never delivered live."""
    session = make_session(Policy(read_rules=(lambda e, v: e.kind != 4,)))
    feed(session, "REQ", "s", {})
    assert session.live_matches(note(kind=4)) == []
    assert session.live_matches(note(kind=1)) == ["s"]
    assert not session.can_read(note(kind=4))


def test_a_rule_may_grant_an_event_to_the_subscriptions_that_name_it_only() -> None:
    """A read rule that grants what a request names explicitly (R-M11) delivers to the
    subscription naming the tag value, never to a broad one on the same connection."""
    named_x = Policy(read_rules=(lambda e, v: e.kind != 4 or v.names("t", "x"),))
    session = make_session(named_x)
    feed(session, "REQ", "broad", {"kinds": [4]})
    feed(session, "REQ", "named", {"kinds": [4], "#t": ["x", "y"]})
    feed(session, "REQ", "other", {"kinds": [4], "#t": ["y"]})
    tagged = ALICE.sign(4, "", [["t", "x"], ["t", "y"]], created_at=NOW)
    assert session.live_matches(tagged) == ["named"]
    assert not session.can_read(tagged)
    assert session.can_read(tagged, session.subscriptions[m.SubId("named")].filters)


def test_count_returns_a_count_action_without_a_subscription() -> None:
    """COUNT is answered by the store and registers nothing."""
    session = make_session()
    actions = feed(session, "COUNT", "n", {"kinds": [1]})
    assert actions == [Count(m.SubId("n"), (Filter(kinds=frozenset({1})),))]
    assert session.subscriptions == {}


# --- AUTH ----------------------------------------------------------------------------------------


def test_auth_success_authenticates_the_pubkey() -> None:
    """A correct kind-22242 answer → OK true and the pubkey is authenticated."""
    session = make_session()
    assert authenticate(session, ALICE)[2:] == [True, ""]
    assert session.pubkeys == {ALICE.pubkey}


def test_without_relay_url_the_relay_tag_must_name_the_request_host() -> None:
    """relay_url unset: the session checks the relay tag against its request's Host."""
    observer = RecordingObserver()
    session = make_session(
        auth=AuthOptions(enabled=True, relay_url=None, request_host="relay.example.com"),
        observer=observer,
    )
    evil = [["relay", "wss://evil-relay.example"], ["challenge", CHALLENGE]]
    frame = authenticate(session, ALICE, tags=evil)
    assert frame[2] is False and frame[3].startswith("auth-required: relay tag")
    assert ("auth_failure", "relay") in observer.calls
    assert authenticate(session, ALICE)[2:] == [True, ""]  # RELAY_URL names that host


def test_several_pubkeys_may_authenticate_on_one_connection() -> None:
    """Each successful AUTH adds a pubkey (NIP-42)."""
    session = make_session()
    authenticate(session, ALICE)
    authenticate(session, BOB)
    assert session.pubkeys == {ALICE.pubkey, BOB.pubkey}


def test_auth_beyond_the_key_cap_is_restricted_and_the_earlier_keys_stay() -> None:
    """One connection authenticates at most MAX_AUTHENTICATED_KEYS keys: the AUTH of one
    more gets OK false restricted naming the cap, the keys it had keep working (an AUTH
    of one of them still succeeds, the challenge unchanged) and nothing is added."""
    observer = RecordingObserver()
    session = make_session(ALLOW_ALICE, observer=observer)
    authenticate(session, ALICE)
    for _ in range(MAX_AUTHENTICATED_KEYS - 1):
        assert authenticate(session, Keys())[2] is True
    held = session.pubkeys
    frame = authenticate(session, BOB)
    assert frame[2:] == [
        False,
        f"restricted: too many authenticated keys on this connection"
        f" (max {MAX_AUTHENTICATED_KEYS}); open another connection for more",
    ]
    assert ("auth_failure", "too_many_keys") in observer.calls
    assert session.pubkeys == held and len(held) == MAX_AUTHENTICATED_KEYS
    assert authenticate(session, ALICE)[2:] == [True, ""]
    assert isinstance(feed(session, "REQ", "s", {"kinds": [1]})[0], Query)
    assert feed(session, "COUNT", "n", {"kinds": [1]}) == [
        Count(m.SubId("n"), (Filter(kinds=frozenset({1})),))
    ]
    assert isinstance(publish(session, note(ALICE))[0], Publish)


@pytest.mark.parametrize(
    ("overrides", "label"),
    [
        ({"tags": [["relay", RELAY_URL], ["challenge", "wrong"]]}, "challenge"),
        ({"tags": [["relay", "wss://other.example"], ["challenge", CHALLENGE]]}, "relay"),
        ({"tags": [["challenge", CHALLENGE]]}, "relay"),
        ({"created_at": NOW - 601}, "stale"),
        ({"created_at": NOW + 601}, "stale"),
    ],
)
def test_failed_auth_is_auth_required_and_the_challenge_stays_valid(
    overrides: dict[str, Any], label: str
) -> None:
    """Wrong challenge/relay/time → OK false auth-required; a correct retry then succeeds."""
    observer = RecordingObserver()
    session = make_session(observer=observer)
    frame = authenticate(session, ALICE, **overrides)
    assert frame[2] is False and frame[3].startswith("auth-required: ")
    assert session.pubkeys == frozenset()
    assert ("auth_failure", label) in observer.calls
    assert authenticate(session, ALICE)[2] is True


def test_auth_with_a_bad_signature_is_auth_required() -> None:
    """A forged AUTH event is refused with auth-required and its id echoed."""
    event = ALICE.sign(22242, "", [["relay", RELAY_URL], ["challenge", CHALLENGE]], created_at=NOW)
    forged = {**event.to_dict(), "sig": note(BOB).sig}
    session = make_session()
    assert only_frame(feed(session, "AUTH", forged)) == [
        "OK",
        event.id,
        False,
        "auth-required: bad signature",
    ]
    assert session.pubkeys == frozenset()


def test_auth_with_the_wrong_kind_is_auth_required() -> None:
    """An AUTH carrying a kind-1 event does not authenticate."""
    session = make_session()
    event = ALICE.sign(1, "", [["challenge", CHALLENGE]], created_at=NOW)
    frame = only_frame(feed(session, "AUTH", event.to_dict()))
    assert frame == ["OK", event.id, False, "auth-required: AUTH event must be kind 22242"]


def test_auth_when_disabled_is_refused() -> None:
    """With auth.enabled = false nobody can authenticate."""
    session = make_session(auth=AuthOptions(enabled=False))
    frame = authenticate(session, ALICE)
    assert frame[2] is False and frame[3].startswith("restricted: ")
    assert session.pubkeys == frozenset()


def test_auth_without_an_event_object_is_a_notice() -> None:
    """``["AUTH", "x"]`` is malformed: NOTICE."""
    frame = only_frame(feed(make_session(), "AUTH", "challenge"))
    assert frame == ["NOTICE", "invalid: AUTH must carry one signed event object"]


def test_observer_counts_every_command() -> None:
    """The observer sees one message() per frame, by command."""
    observer = RecordingObserver()
    session = make_session(observer=observer)
    feed(session, "REQ", "s", {})
    feed(session, "CLOSE", "s")
    feed(session, "COUNT", "s", {})
    session.receive(b"junk")
    commands = [c[1] for c in observer.calls if c[0] == "message"]
    assert commands == ["REQ", "CLOSE", "COUNT", "INVALID"]


# --- property tests -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=5),
    max_leaves=25,
)


def strict_session() -> Session:
    """A session with every rule and small limits, so random frames reach every branch."""
    limiter = KindRateLimiter((KindLimit("r", 1, 60.0, frozenset({1, 445})),))
    policy = Policy(
        (
            rules.reject_auth_events_as_event(),
            rules.reject_blocked_pubkeys(frozenset({MALLORY.pubkey})),
            rules.require_author_for_protected(),
            rules.limit_event_rate(limiter, lambda: float(NOW)),
        ),
        (rules.reject_blocked_readers(frozenset({MALLORY.pubkey})),),
    )
    limits = SessionLimits(
        max_message_length=2000, max_subscriptions=2, max_filters=2, max_subid_length=8
    )
    return make_session(policy, limits=limits)


def check_answer(session: Session, frame: bytes) -> None:
    """The session never raises and answers each message in the form the client expects."""
    msg = m.parse_client_message(frame)
    actions = session.receive(frame)
    if isinstance(msg, m.CloseMessage):
        assert actions in (
            [],
            [Send(m.encode_notice("rate-limited: too many messages per second"))],
        )
        return
    assert len(actions) >= 1
    for action in actions:
        if isinstance(action, Publish):
            assert isinstance(msg, m.EventMessage)
            reply = json.loads(session.published(action.event, Outcome.STORED))
            assert reply == ["OK", action.event.id, True, ""]
        elif isinstance(action, Query | Count):
            assert isinstance(msg, m.ReqMessage | m.CountMessage)
        else:
            reply = json.loads(action.data)
            assert reply[0] in ("OK", "CLOSED", "NOTICE")
            text = reply[-1]
            assert isinstance(text, str) and text.split(": ", 1)[0] in {
                "invalid",
                "blocked",
                "rate-limited",
                "auth-required",
                "restricted",
                "duplicate",
                "error",
                "",
            }
            if reply[0] == "OK":
                hint = m.event_id_hint(getattr(msg, "event", None))
                assert reply[1] == hint and reply[2] in (True, False)
            if isinstance(msg, m.ReqMessage | m.CountMessage):
                assert reply[:2] == ["CLOSED", msg.sub_id]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_always_get_an_answer(frame: bytes) -> None:
    """Arbitrary bytes never raise out of the session and get a NOTICE/OK/CLOSED."""
    check_answer(strict_session(), frame)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["EVENT", "REQ", "COUNT", "CLOSE", "AUTH", "X"]), st.lists(json_values))
def test_random_messages_always_get_an_answer(verb: str, rest: list[object]) -> None:
    """Known commands with arbitrary JSON arguments never raise and are always answered."""
    check_answer(strict_session(), json.dumps([verb, *rest]).encode())


def valid_frames() -> list[bytes]:
    event = ALICE.sign(1, "hello", [["t", "x"], ["e", "ab" * 32]], created_at=NOW)
    auth = ALICE.sign(22242, "", [["relay", RELAY_URL], ["challenge", CHALLENGE]], created_at=NOW)
    return [
        event_frame(event).encode(),
        orjson.dumps(["AUTH", auth.to_dict()]),
        orjson.dumps(["REQ", "sub", {"kinds": [1], "#t": ["x"], "limit": 5}, {"ids": [event.id]}]),
        orjson.dumps(["COUNT", "n", {"authors": [ALICE.pubkey], "since": 1}]),
        orjson.dumps(["CLOSE", "sub"]),
    ]


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(st.sampled_from(valid_frames()), st.data())
def test_byte_mutated_frames_always_get_an_answer(frame: bytes, data: st.DataObject) -> None:
    """Valid frames with bytes flipped, dropped or inserted never raise and are answered."""
    mutated = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "drop", "insert"]))
        pos = data.draw(st.integers(0, max(len(mutated) - 1, 0)))
        if op == "flip" and mutated:
            mutated[pos] = data.draw(st.integers(0, 255))
        elif op == "drop" and mutated:
            del mutated[pos]
        else:
            mutated.insert(pos, data.draw(st.integers(0, 255)))
    check_answer(strict_session(), bytes(mutated))


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(st.sampled_from(valid_frames()), st.data())
def test_json_mutated_frames_always_get_an_answer(frame: bytes, data: st.DataObject) -> None:
    """Valid frames with one field replaced by arbitrary JSON never raise and are answered."""
    msg = json.loads(frame)
    index = data.draw(st.integers(0, len(msg) - 1))
    target = msg[index]
    if isinstance(target, dict) and target and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(target)))
        target[key] = data.draw(json_values)
    else:
        msg[index] = data.draw(json_values)
    check_answer(strict_session(), json.dumps(msg).encode())


def test_a_session_survives_a_stream_of_hostile_frames_and_still_works() -> None:
    """After garbage, the same session still authenticates and publishes normally."""
    session = strict_session()
    for frame in (b"", b"[", b"[null]", b'["EVENT",{"id":[]}]', b'["REQ",{}]', b"\x00" * 10):
        check_answer(session, frame)
    assert authenticate(session, ALICE)[2] is True
    assert isinstance(publish(session, note(ALICE, kind=7))[0], Publish)


tag_names = st.sampled_from(
    ["expiration", "d", "a", "e", "p", "t", "-", "h", "k", "challenge", "relay", "x"]
) | st.text(max_size=3)
tag_values = (
    st.text(max_size=30)
    | st.integers(-(2**70), 2**70).map(str)
    | st.sampled_from(["²", "١٢٣", "9" * 5000, "0" * 30 + "1", f"30000:{ALICE.pubkey}:", "5:x:y"])
)
tags = st.lists(
    st.lists(tag_values, max_size=3).flatmap(
        lambda rest: tag_names.map(lambda name: [name, *rest])
    ),
    max_size=6,
)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(
    kind=st.sampled_from([0, 1, 3, 5, 7, 445, 1059, 10002, 20001, 22242, 30023, 65535]),
    tags=tags,
    content=st.text(max_size=50),
    offset=st.integers(-(10**9), 10**9),
)
def test_correctly_signed_events_with_hostile_tags_always_get_an_answer(
    kind: int, tags: list[list[str]], content: str, offset: int
) -> None:
    """Signed events with odd tag values (², huge numbers) never raise: Publish or OK."""
    event = ALICE.sign(kind, content, tags, created_at=max(0, NOW + offset))
    check_answer(strict_session(), event_frame(event).encode())


# --- filter values per connection (issue 8 §3) ------------------------------------------------


def authors(n: int, start: int = 0) -> list[str]:
    return [f"{i:064x}" for i in range(start, start + n)]


def test_filter_values_are_bounded_across_a_connections_subscriptions() -> None:
    """ids, authors, kinds and tag values add up over every live REQ; the REQ that would
    pass max_filter_values is CLOSED naming the limit, and the others stay live."""
    session = make_session(limits=SessionLimits(max_filter_values=10))
    assert isinstance(feed(session, "REQ", "a", {"authors": authors(4), "kinds": [1]})[0], Query)
    assert isinstance(
        feed(session, "REQ", "b", {"#t": ["x", "y", "z"], "ids": authors(2)})[0], Query
    )
    closed = only_frame(feed(session, "REQ", "c", {"kinds": [1]}))
    assert closed[:2] == ["CLOSED", "c"]
    assert closed[2].startswith("restricted: ") and "limitation.max_filter_values = 10" in closed[2]
    assert set(session.subscriptions) == {"a", "b"}


def test_replacing_or_closing_a_req_gives_its_filter_values_back() -> None:
    session = make_session(limits=SessionLimits(max_filter_values=5))
    feed(session, "REQ", "a", {"authors": authors(5)})
    assert isinstance(feed(session, "REQ", "a", {"authors": authors(5, 10)})[0], Query)
    feed(session, "CLOSE", "a")
    assert isinstance(feed(session, "REQ", "b", {"authors": authors(5)})[0], Query)


def test_a_count_is_held_to_the_filter_value_limit_on_its_own() -> None:
    session = make_session(limits=SessionLimits(max_filter_values=3))
    feed(session, "REQ", "a", {"kinds": [1, 2, 3]})
    assert isinstance(feed(session, "COUNT", "n", {"kinds": [1, 2]})[0], Count)
    closed = only_frame(feed(session, "COUNT", "n", {"kinds": [1, 2, 3, 4]}))
    assert closed[:2] == ["CLOSED", "n"] and "max_filter_values" in closed[2]


# --- checked ahead, admitted in order (pipelined publish) ---------------------------------------


def test_check_event_then_admit_answers_as_receive_does() -> None:
    """For every EVENT frame, check_event + admit (with the signature's verdict) gives
    the actions and counters receive gives; other frames are left to receive."""
    good, forged = note(content="good"), note(content="forged")
    forged_frame = orjson.dumps(["EVENT", {**forged.to_dict(), "sig": good.sig}])
    frames = [
        event_frame(good).encode(),
        forged_frame,
        orjson.dumps(["EVENT", {**good.to_dict(), "kind": "one"}]),
        event_frame(note(kind=20001, content="ephemeral")).encode(),
    ]
    verdicts = [True, False, False, True]
    one_by_one, checked_ahead = RecordingObserver(), RecordingObserver()
    plain = make_session(observer=one_by_one, limits=SessionLimits(messages_per_second=2))
    ahead = make_session(observer=checked_ahead, limits=SessionLimits(messages_per_second=2))
    for session in (plain, ahead):  # two tokens left: the third frame is over the cap
        spend_messages(session, 2 * MESSAGE_BURST_SECONDS - 2)
    one_by_one.calls.clear()
    checked_ahead.calls.clear()
    expected = [plain.receive(frame) for frame in frames]
    checks = [ahead.check_event(frame) for frame in frames]
    assert checked_ahead.calls == []  # checking changes nothing
    got = []
    for check, verdict in zip(checks, verdicts, strict=True):
        assert check is not None
        got.append(ahead.admit(check, verdict))
    assert got == expected
    assert checked_ahead.calls == one_by_one.calls
    assert ["rate_limited", "messages_per_second"] in [list(c) for c in one_by_one.calls]


def test_check_event_leaves_other_and_oversize_frames_to_receive() -> None:
    """REQ, CLOSE, AUTH, malformed and oversize frames are not EVENTs to check ahead."""
    session = make_session(limits=SessionLimits(max_message_length=2000))
    big = event_frame(note(content="x" * 3000)).encode()
    for frame in (b'["REQ","s",{}]', b'["CLOSE","s"]', b"not json", big):
        assert session.check_event(frame) is None


def test_the_message_cap_lets_a_burst_of_a_few_seconds_through() -> None:
    """A burst of MESSAGE_BURST_SECONDS' worth passes at once; one more is rate-limited."""
    session = make_session(limits=SessionLimits(messages_per_second=3), clock=lambda: NOW)
    for _ in range(3 * MESSAGE_BURST_SECONDS):
        assert feed(session, "CLOSE", "nothing") == []
    assert only_frame(feed(session, "CLOSE", "nothing"))[0] == "NOTICE"
