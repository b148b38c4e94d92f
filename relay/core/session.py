"""One client connection's protocol state machine (Sans-I/O).

The server feeds every text frame to :meth:`Session.receive` and performs the
returned actions: :class:`Send` frames now, :class:`Publish` an event (store, then
fan out, then answer with :meth:`Session.published`), :class:`Query` stored events
for a subscription, :class:`Count` them. The session decides; it never does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from relay.core import messages as m
from relay.core.auth import check_auth_event
from relay.core.event import Event, is_ephemeral, parse_event, verify_signature
from relay.core.filters import Filter
from relay.core.outcome import Outcome, outcome_reply
from relay.core.policy import Policy, Viewer
from relay.core.ratelimit import TokenBucket
from relay.core.reasons import (
    Rejection,
    auth_required,
    error,
    invalid,
    rate_limited,
    restricted,
)
from relay.core.subindex import SubscriptionIndex
from relay.settings import LimitationSettings


@dataclass(frozen=True, slots=True)
class Send:
    """Write this frame to the client."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Publish:
    """Store ``event`` (unless ephemeral), fan it out, then send ``session.published(...)``."""

    event: Event
    store: bool


@dataclass(frozen=True, slots=True)
class Subscription:
    """A live REQ: its filters (limits clamped). Identity tells a replaced REQ apart."""

    sub_id: m.SubId
    filters: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Query:
    """Send stored events matching ``subscription`` the viewer may read, then EOSE."""

    subscription: Subscription


@dataclass(frozen=True, slots=True)
class Count:
    """Answer NIP-45 COUNT for ``filters`` (events the viewer may read)."""

    sub_id: m.SubId
    filters: tuple[Filter, ...]


Action = Send | Publish | Query | Count


@dataclass(frozen=True, slots=True)
class CheckedEvent:
    """An EVENT frame checked for everything but its signature (:meth:`Session.check_event`):
    the decoded object and its event, or why it is invalid."""

    obj: object
    event: Event | Rejection


class Observer(Protocol):
    """Receives counters from sessions (the server plugs in Prometheus metrics)."""

    def message(self, command: str) -> None: ...

    def event_result(self, kind: int, result: str) -> None: ...

    def auth_failure(self, reason: str) -> None: ...

    def rate_limited(self, name: str) -> None: ...

    def req_rejected(self, reason: str) -> None: ...


class NullObserver:
    """An :class:`Observer` that records nothing."""

    def message(self, command: str) -> None:
        """Ignore."""

    def event_result(self, kind: int, result: str) -> None:
        """Ignore."""

    def auth_failure(self, reason: str) -> None:
        """Ignore."""

    def rate_limited(self, name: str) -> None:
        """Ignore."""

    def req_rejected(self, reason: str) -> None:
        """Ignore."""


# The per-connection message cap holds this many seconds' worth: a client may send a
# burst (a backlog flushed on reconnect, a batch of key packages) as long as its rate
# over a few seconds stays under the cap.
MESSAGE_BURST_SECONDS = 5

# NIP-42 lets one connection authenticate several keys (a client signed in to a few
# accounts); no real client comes near this many. Every key is copied into each read the
# connection makes (its addressed and group events), so the cap bounds what one
# connection can make every REQ and COUNT cost, and the memory it holds.
MAX_AUTHENTICATED_KEYS = 32


@dataclass(frozen=True)
class SessionLimits(LimitationSettings):
    """The ``[limitation]`` values a session enforces, plus the per-connection message
    rate of ``[rate_limiter]`` (0: unlimited)."""

    messages_per_second: int = 1000


@dataclass(frozen=True)
class AuthOptions:
    """NIP-42 settings for a session."""

    enabled: bool = True
    relay_url: str | None = None
    # The Host header of this connection's WebSocket request: what the relay tag of an
    # AUTH must name when relay_url is unset.
    request_host: str | None = None


class Session:
    """Protocol state of one connection: authenticated pubkeys and live subscriptions."""

    def __init__(
        self,
        conn_id: int,
        ip: str,
        *,
        challenge: str,
        policy: Policy,
        limits: SessionLimits,
        auth: AuthOptions,
        clock: Callable[[], float],
        observer: Observer | None = None,
        index: SubscriptionIndex | None = None,
    ) -> None:
        self.conn_id = conn_id
        self.ip = ip
        self.challenge = challenge
        self.policy = policy
        self.limits = limits
        self.auth = auth
        self.clock = clock
        self.observer: Observer = observer or NullObserver()
        self.viewer = Viewer(conn_id, ip)
        self.subscriptions: dict[m.SubId, Subscription] = {}
        self.index = index
        self._filter_values = 0
        rate = limits.messages_per_second
        self._message_bucket = (
            TokenBucket(float(rate * MESSAGE_BURST_SECONDS), float(rate)) if rate > 0 else None
        )

    # --- lifecycle ---------------------------------------------------------------------

    def greeting(self) -> list[Action]:
        """Frames to send right after the WebSocket opens (the NIP-42 challenge)."""
        return [Send(m.encode_auth(self.challenge))] if self.auth.enabled else []

    @property
    def pubkeys(self) -> frozenset[str]:
        """Pubkeys this connection has authenticated as."""
        return self.viewer.pubkeys

    # --- input -------------------------------------------------------------------------

    def receive(self, frame: bytes) -> list[Action]:
        """Handle one text frame; returns what the server must do, in order."""
        if len(frame) > self.limits.max_message_length:
            return self._oversize(frame)
        msg = m.parse_client_message(frame)
        command = type(msg).__name__.removesuffix("Message").upper()
        self.observer.message(command if command != "MALFORMED" else "INVALID")
        if self._message_bucket is not None and not self._message_bucket.take(self.clock()):
            self.observer.rate_limited("messages_per_second")
            return self._refuse(msg, rate_limited("too many messages per second"))
        if isinstance(msg, m.EventMessage):
            return self._on_event(msg.event)
        if isinstance(msg, m.ReqMessage):
            return self._on_req(msg)
        if isinstance(msg, m.CountMessage):
            return self._on_count(msg)
        if isinstance(msg, m.CloseMessage):
            self.unsubscribe(msg.sub_id)
            return []
        if isinstance(msg, m.AuthMessage):
            return self._on_auth(msg.event)
        return self._refuse(msg, msg.rejection or invalid(msg.detail))

    def _refuse(self, msg: m.ClientMessage, rejection: Rejection) -> list[Action]:
        """Answer in the form the client is waiting for: OK, CLOSED or NOTICE. A refused
        REQ also ends the subscription it would have replaced (NIP-01: CLOSED means the
        relay ended it), whatever refused it."""
        if isinstance(msg, (m.EventMessage, m.AuthMessage)):
            event_id = m.event_id_hint(msg.event)
            if event_id is not None:
                return [Send(m.encode_ok(event_id, False, rejection.message()))]
        elif isinstance(msg, (m.ReqMessage, m.CountMessage)):
            if isinstance(msg, m.ReqMessage):
                self.unsubscribe(msg.sub_id)
            return [Send(m.encode_closed(msg.sub_id, rejection.message()))]
        elif isinstance(msg, m.Malformed):
            if msg.sub_id is not None:
                if msg.verb == "REQ":
                    self.unsubscribe(msg.sub_id)
                return [Send(m.encode_closed(msg.sub_id, rejection.message()))]
            if msg.event_id is not None:
                return [Send(m.encode_ok(msg.event_id, False, rejection.message()))]
        return [Send(m.encode_notice(rejection.message()))]

    def _oversize(self, frame: bytes) -> list[Action]:
        limit = self.limits.max_message_length
        rejection = invalid(f"message is {len(frame)} bytes, the limit is {limit}")
        msg = m.parse_client_message(frame)
        self.observer.message("INVALID")
        return self._refuse(msg, rejection)

    # --- EVENT -------------------------------------------------------------------------

    def check_event(self, frame: bytes) -> CheckedEvent | None:
        """Shape, limits and id of the event in an EVENT frame, without its signature,
        or None for any other frame (give that one to :meth:`receive`).

        Changes no state: the frame is only handled once :meth:`admit` is called, so
        checking frames ahead and verifying their signatures together (elsewhere, on
        another thread) answers them exactly as :meth:`receive` would, in order."""
        if len(frame) > self.limits.max_message_length:
            return None
        msg = m.parse_client_message(frame)
        if not isinstance(msg, m.EventMessage):
            return None
        return CheckedEvent(msg.event, self._check(msg.event))

    def admit(self, checked: CheckedEvent, signature_ok: bool) -> list[Action]:
        """What :meth:`receive` returns for the frame :meth:`check_event` checked, given
        whether the event's signature verifies (not consulted for an invalid event)."""
        self.observer.message("EVENT")
        if self._message_bucket is not None and not self._message_bucket.take(self.clock()):
            self.observer.rate_limited("messages_per_second")
            return self._refuse(
                m.EventMessage(checked.obj), rate_limited("too many messages per second")
            )
        return self._decide(checked.obj, checked.event, signature_ok)

    def _check(self, obj: object) -> Event | Rejection:
        """Shape and limits: the cheap checks, before the (expensive) signature."""
        parsed = parse_event(obj, verify=False)
        if isinstance(parsed, Rejection):
            return parsed
        now = int(self.clock())
        limits = self.limits
        if len(parsed.tags) > limits.max_event_tags:
            return invalid(f"too many tags (max {limits.max_event_tags})")
        # As in rnostr, a limit of 0 means no limit on that side.
        older, newer = limits.max_event_time_older_than_now, limits.max_event_time_newer_than_now
        if older and parsed.created_at < now - older:
            return invalid("created_at is too far in the past")
        if newer and parsed.created_at > now + newer:
            return invalid("created_at is too far in the future")
        expiration = parsed.expiration
        if expiration is not None and expiration <= now:
            return invalid("event has expired")
        return parsed

    def _on_event(self, obj: object) -> list[Action]:
        event = self._check(obj)
        signature_ok = isinstance(event, Event) and verify_signature(
            event.id, event.pubkey, event.sig
        )
        return self._decide(obj, event, signature_ok)

    def _decide(self, obj: object, event: Event | Rejection, signature_ok: bool) -> list[Action]:
        if isinstance(event, Event) and not signature_ok:
            event = invalid("bad signature")
        if isinstance(event, Rejection):
            kind = obj.get("kind") if isinstance(obj, dict) else None
            self.observer.event_result(kind if type(kind) is int else -1, "invalid")
            return self._refuse(m.EventMessage(obj), event)
        rejection = self.policy.reject_event(event, self.viewer, int(self.clock()))
        if rejection is not None:
            self.observer.event_result(event.kind, rejection.reason.value)
            if rejection.reason.value == "rate-limited":
                self.observer.rate_limited(rejection.detail)
            return [Send(m.encode_ok(event.id, False, rejection.message()))]
        return [Publish(event, store=not is_ephemeral(event.kind))]

    def published(self, event: Event, outcome: Outcome | Rejection) -> bytes:
        """The OK frame for ``event`` once the server has stored (or failed to store) it."""
        if isinstance(outcome, Rejection):
            self.observer.event_result(event.kind, outcome.reason.value)
            return m.encode_ok(event.id, False, outcome.message())
        self.observer.event_result(event.kind, outcome.value)
        accepted, message = outcome_reply(outcome)
        if accepted:
            self.viewer.remember(event.id)
        return m.encode_ok(event.id, accepted, message)

    def store_failed(self, event: Event, detail: str) -> bytes:
        """The OK frame when the store could not commit ``event``."""
        return self.published(event, error(detail))

    # --- REQ / COUNT / AUTH ------------------------------------------------------------

    def _check_req(self, sub_id: m.SubId, filters: tuple[Filter, ...]) -> Rejection | None:
        limits = self.limits
        if not sub_id or len(sub_id) > limits.max_subid_length:
            return invalid(f"subscription id must be 1 to {limits.max_subid_length} characters")
        if len(filters) > limits.max_filters:
            return invalid(f"too many filters (max {limits.max_filters})")
        return self.policy.reject_req(filters, self.viewer)

    def _clamp(self, filters: tuple[Filter, ...]) -> tuple[Filter, ...]:
        max_limit = self.limits.max_limit
        return tuple(
            f if f.limit is not None and f.limit <= max_limit else replace(f, limit=max_limit)
            for f in filters
        )

    def _too_many_values(self, filters: tuple[Filter, ...], replaced: m.SubId | None) -> bool:
        held = self._filter_values
        old = self.subscriptions.get(replaced) if replaced is not None else None
        if old is not None:
            held -= sum(f.value_count for f in old.filters)
        return held + sum(f.value_count for f in filters) > self.limits.max_filter_values

    def _values_rejection(self) -> Rejection:
        limit = self.limits.max_filter_values
        return restricted(
            "too many filter values: ids, authors, kinds and tag values across a"
            f" connection's subscriptions are limited (limitation.max_filter_values = {limit})"
        )

    def _on_req(self, msg: m.ReqMessage) -> list[Action]:
        rejection = self._check_req(msg.sub_id, msg.filters)
        if rejection is None and (
            msg.sub_id not in self.subscriptions
            and len(self.subscriptions) >= self.limits.max_subscriptions
        ):
            rejection = restricted(f"too many subscriptions (max {self.limits.max_subscriptions})")
        if rejection is None and self._too_many_values(msg.filters, msg.sub_id):
            rejection = self._values_rejection()
        if rejection is not None:
            self.observer.req_rejected(rejection.reason.value)
            self.unsubscribe(msg.sub_id)
            return [Send(m.encode_closed(msg.sub_id, rejection.message()))]
        subscription = Subscription(msg.sub_id, self._clamp(msg.filters))
        self._subscribe(subscription)
        return [Query(subscription)]

    def _subscribe(self, subscription: Subscription) -> None:
        self.unsubscribe(subscription.sub_id)
        self.subscriptions[subscription.sub_id] = subscription
        self._filter_values += sum(f.value_count for f in subscription.filters)
        if self.index is not None:
            self.index.add(self.conn_id, subscription.sub_id, subscription.filters)

    def unsubscribe(self, sub_id: m.SubId) -> None:
        """End a subscription (CLOSE, CLOSED, replaced); unknown ids are ignored."""
        subscription = self.subscriptions.pop(sub_id, None)
        if subscription is None:
            return
        self._filter_values -= sum(f.value_count for f in subscription.filters)
        if self.index is not None:
            self.index.remove(self.conn_id, sub_id)

    def close_all(self) -> None:
        """End every subscription (the connection is gone); later REQs are not indexed."""
        for sub_id in list(self.subscriptions):
            self.unsubscribe(sub_id)
        self.index = None

    def _on_count(self, msg: m.CountMessage) -> list[Action]:
        rejection = self._check_req(msg.sub_id, msg.filters)
        values = sum(f.value_count for f in msg.filters)
        if rejection is None and values > self.limits.max_filter_values:
            rejection = self._values_rejection()
        if rejection is not None:
            self.observer.req_rejected(rejection.reason.value)
            return [Send(m.encode_closed(msg.sub_id, rejection.message()))]
        return [Count(msg.sub_id, msg.filters)]

    def _on_auth(self, obj: object) -> list[Action]:
        event = parse_event(obj)
        if isinstance(event, Rejection):
            self.observer.auth_failure("invalid")
            return self._refuse(m.AuthMessage(obj), auth_required(event.detail))
        if not self.auth.enabled:
            self.observer.auth_failure("disabled")
            return [Send(m.encode_ok(event.id, False, "restricted: authentication is disabled"))]
        rejection = check_auth_event(
            event,
            challenge=self.challenge,
            relay_url=self.auth.relay_url,
            now=int(self.clock()),
            request_host=self.auth.request_host,
        )
        if rejection is not None:
            label, reason = rejection
            self.observer.auth_failure(label)
            return [Send(m.encode_ok(event.id, False, reason.message()))]
        keys = self.viewer.pubkeys
        if event.pubkey not in keys and len(keys) >= MAX_AUTHENTICATED_KEYS:
            self.observer.auth_failure("too_many_keys")
            too_many = restricted(
                f"too many authenticated keys on this connection (max {MAX_AUTHENTICATED_KEYS});"
                " open another connection for more"
            )
            return [Send(m.encode_ok(event.id, False, too_many.message()))]
        self.viewer = replace(self.viewer, pubkeys=self.viewer.pubkeys | {event.pubkey})
        return [Send(m.encode_ok(event.id, True, ""))]

    # --- delivery ----------------------------------------------------------------------

    def can_read(self, event: Event, filters: Sequence[Filter] = ()) -> bool:
        """True if this connection may receive ``event`` as an answer to ``filters``
        (what the request names explicitly can widen what it may read, R-M11)."""
        viewer = self.viewer.asking(filters) if filters else self.viewer
        return self.policy.can_read(event, viewer)

    def live_matches(self, event: Event) -> list[m.SubId]:
        """Subscriptions that should receive ``event`` now, if the viewer may read it
        through that subscription."""
        subs = [
            (sub_id, sub)
            for sub_id, sub in self.subscriptions.items()
            if any(f.matches(event) for f in sub.filters)
        ]
        if not subs:
            return []
        if self.policy.can_read_passively(event, self.viewer):
            return [sub_id for sub_id, _ in subs]
        # Refused in general, an event may still be granted to a subscription that
        # names it explicitly (a Marmot group's id, R-M11).
        return [
            sub_id
            for sub_id, sub in subs
            if self.policy.can_read_passively(event, self.viewer.asking(sub.filters))
        ]

    def is_current(self, subscription: Subscription) -> bool:
        """False once the REQ was closed or replaced (drop its late query results)."""
        return self.subscriptions.get(subscription.sub_id) is subscription
