"""Relay policy as lists of small rule functions (in the style of khatru's hook lists).

A :class:`Policy` holds four lists:

* ``event_rules``: ``(event, viewer, now) -> Rejection | None``, run in order on every
  EVENT after its signature is checked; the first rejection wins.
* ``req_rules``: ``(filters, viewer) -> Rejection | None``, run on REQ and COUNT.
* ``read_rules``: ``(event, viewer) -> bool``, every one must allow an event before a
  viewer receives it, whether stored, live or counted.
* ``passive_rules``: ``(event, viewer) -> bool``, applied on top of the read rules to
  everything that is not a REQ's stored results, i.e. live fan-out and COUNT (key packages
  reach other users only through a consuming fetch, R-M1b).
* ``scope_rules``: ``(filter, viewer) -> filters``, the same decisions as filters: given a
  filter over guarded kinds, filters matching exactly the events the read and passive
  rules let the viewer see, so a COUNT is counted in the store without loading events.

Rules never do I/O; the MLS gateway adds its own rules from ``relay.mls``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from relay.core.event import Event
from relay.core.filters import Filter
from relay.core.ratelimit import IpNetwork, KindRateLimiter
from relay.core.reasons import Rejection, auth_required, blocked, invalid, rate_limited, restricted

# Kinds whose authors are throw-away keys (R-A2): the allowlist applies to the connection.
THROWAWAY_AUTHOR_KINDS = frozenset({445, 1059})


OWN_EVENTS_REMEMBERED = 128


@dataclass(frozen=True, slots=True)
class Viewer:
    """A connection as the rules see it: its id, client IP, authenticated pubkeys, the
    ids of the events it published recently (R-A3 lets a publisher see its own gift wrap)
    and, while a request is answered, that request's filters (what it names explicitly)."""

    conn_id: int
    ip: str
    pubkeys: frozenset[str] = frozenset()
    own_events: dict[str, None] = field(default_factory=dict, compare=False, hash=False)
    asked: tuple[Filter, ...] = field(default=(), compare=False, hash=False)

    def asking(self, filters: Sequence[Filter]) -> Viewer:
        """This viewer while it is answered ``filters`` (a REQ, COUNT or live
        subscription); it shares the published-events memory with the connection's."""
        return replace(self, asked=tuple(filters))

    def names(self, tag: str, value: str) -> bool:
        """True if the request being answered asks for ``value`` in ``#tag`` explicitly.

        Only an explicit tag filter names something: ids, authors, kinds or a filter
        without ``#tag`` never do. A rule can grant what is named (R-M11).
        """
        for f in self.asked:
            values = f.tag_values(tag)
            if values is not None and value in values:
                return True
        return False

    def remember(self, event_id: str) -> None:
        """Record an event this connection published (bounded, oldest forgotten first)."""
        self.own_events[event_id] = None
        if len(self.own_events) > OWN_EVENTS_REMEMBERED:
            del self.own_events[next(iter(self.own_events))]

    @property
    def authenticated(self) -> bool:
        """True once at least one pubkey has completed NIP-42 AUTH."""
        return bool(self.pubkeys)

    def limit_keys(self, allowlist: frozenset[str]) -> tuple[str, ...]:
        """Who a rate-limited read (a key package fetch) is charged to: every allowlisted
        pubkey this connection authenticated as, so authenticating one more key never
        adds budget; with an empty allowlist, where keys cost nothing to mint, the
        connection itself at its IP."""
        listed = self.pubkeys & allowlist
        if listed:
            return tuple(sorted(listed))
        return (f"conn:{self.ip}#{self.conn_id}",)

    def rate_keys(self, author: str, allowlist: frozenset[str]) -> tuple[str, ...]:
        """Whose buckets an event counts against (R-A5): its author, when this connection
        authenticated as that author; otherwise every key the connection holds, so
        authenticating one more key never adds budget; with none, the client IP. With a
        non-empty allowlist only listed keys count (an unlisted one costs nothing to
        mint)."""
        owned = self.pubkeys & allowlist if allowlist else self.pubkeys
        if author in owned:
            return (author,)
        if owned:
            return tuple(sorted(owned))
        return (f"ip:{self.ip}",)


def ip_permitted(ip: str, allowed: tuple[IpNetwork, ...], blocked: tuple[IpNetwork, ...]) -> bool:
    """R-A2 CIDR rules: not in any blocked range, and in an allowed one if any are set."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return not allowed
    if any(address in net for net in blocked):
        return False
    return not allowed or any(address in net for net in allowed)


EventRule = Callable[[Event, Viewer, int], Rejection | None]
ReqRule = Callable[[Sequence[Filter], Viewer], Rejection | None]
ReadRule = Callable[[Event, Viewer], bool]
ScopeRule = Callable[[Filter, Viewer], tuple[Filter, ...] | None]
"""Filters matching exactly what the rules let ``viewer`` see of ``filter`` (over guarded
kinds); None when that cannot be said as filters."""


@dataclass(frozen=True, slots=True)
class CountPlan:
    """A COUNT under the read rules as three store counts: ``total - minus + plus``.

    ``total`` counts every match except guarded kinds asked for by kind, ``minus`` the
    guarded-kind matches of filters without ``kinds`` (counted in ``total``), and
    ``plus`` the guarded-kind matches the viewer may see."""

    total: tuple[Filter, ...]
    minus: tuple[Filter, ...] = ()
    plus: tuple[Filter, ...] = ()


@dataclass(frozen=True)
class Policy:
    """The rule lists applied by sessions; see the module docstring."""

    event_rules: tuple[EventRule, ...] = ()
    req_rules: tuple[ReqRule, ...] = ()
    read_rules: tuple[ReadRule, ...] = field(default=())
    passive_rules: tuple[ReadRule, ...] = field(default=())
    # Kinds the read and passive rules can refuse (None: any kind). Lets COUNT over other
    # kinds be answered by the store directly instead of event by event.
    guarded_kinds: frozenset[int] | None = None
    scope_rules: tuple[ScopeRule, ...] = field(default=())

    def reject_event(self, event: Event, viewer: Viewer, now: int) -> Rejection | None:
        """The first rule's rejection of ``event`` from ``viewer``, or None to accept."""
        for rule in self.event_rules:
            rejection = rule(event, viewer, now)
            if rejection is not None:
                return rejection
        return None

    def reject_req(self, filters: Sequence[Filter], viewer: Viewer) -> Rejection | None:
        """The first rule's rejection of a REQ/COUNT, or None to serve it."""
        for rule in self.req_rules:
            rejection = rule(filters, viewer)
            if rejection is not None:
                return rejection
        return None

    def can_read(self, event: Event, viewer: Viewer) -> bool:
        """True if every read rule lets ``viewer`` receive ``event``."""
        return all(rule(event, viewer) for rule in self.read_rules)

    def guards(self, filters: Sequence[Filter]) -> bool:
        """True if read or passive rules may refuse some event matching ``filters``."""
        if not (self.read_rules or self.passive_rules):
            return False
        if self.guarded_kinds is None:
            return True
        return any(f.kinds is None or f.kinds & self.guarded_kinds for f in filters)

    def can_read_passively(self, event: Event, viewer: Viewer) -> bool:
        """True if ``viewer`` may receive ``event`` live, or count it."""
        return self.can_read(event, viewer) and all(
            rule(event, viewer) for rule in self.passive_rules
        )

    def count_plan(self, filters: Sequence[Filter], viewer: Viewer) -> CountPlan | None:
        """How to count what ``viewer`` may see of ``filters`` in the store, or None when
        rules guard these filters and no scope rules express them as filters."""
        if not self.guards(filters):
            return CountPlan(tuple(filters))
        guarded = self.guarded_kinds
        if guarded is None or not self.scope_rules:
            return None
        total: list[Filter] = []
        minus: list[Filter] = []
        plus: list[Filter] = []
        for f in filters:
            if f.kinds is None:
                total.append(f)
                minus.append(replace(f, kinds=guarded))
                asked = guarded
            else:
                if f.kinds - guarded:
                    total.append(replace(f, kinds=f.kinds - guarded))
                asked = f.kinds & guarded
            narrowed: list[Filter] = [replace(f, kinds=asked)] if asked else []
            for rule in self.scope_rules:
                scoped: list[Filter] = []
                for g in narrowed:
                    parts = rule(g, viewer)
                    if parts is None:
                        return None
                    scoped += parts
                narrowed = scoped
            plus += narrowed
        return CountPlan(tuple(total), tuple(minus), tuple(plus))


# --- rule factories ------------------------------------------------------------------


def reject_when_read_only(message: str = "relay is read-only for maintenance") -> EventRule:
    """R-C3: every EVENT is refused with ``blocked:``."""

    def rule(event: Event, viewer: Viewer, now: int) -> Rejection | None:
        return blocked(message)

    return rule


def reject_auth_events_as_event() -> EventRule:
    """Kind 22242 answers a challenge; published with EVENT it would be fanned out."""

    def rule(event: Event, viewer: Viewer, now: int) -> Rejection | None:
        if event.kind == 22242:
            return invalid("kind 22242 is only accepted in AUTH messages")
        return None

    return rule


def reject_blocked_pubkeys(blocked_pubkeys: frozenset[str]) -> EventRule:
    """Events by, or sent from connections authenticated as, a blacklisted pubkey."""

    def rule(event: Event, viewer: Viewer, now: int) -> Rejection | None:
        if event.pubkey in blocked_pubkeys or viewer.pubkeys & blocked_pubkeys:
            return blocked("pubkey is not allowed on this relay")
        return None

    return rule


def require_allowlisted_writer(allowed: frozenset[str], *, require_author_match: bool) -> EventRule:
    """R-A2 (non-empty allowlist): only listed, authenticated connections may publish,
    and the author must be one of them, except for throw-away-key kinds 445 and 1059."""

    def rule(event: Event, viewer: Viewer, now: int) -> Rejection | None:
        if not viewer.authenticated:
            return auth_required("this relay only accepts events from authenticated users")
        if not viewer.pubkeys & allowed:
            return restricted("pubkey is not on this relay's allowlist")
        if (
            require_author_match
            and event.kind not in THROWAWAY_AUTHOR_KINDS
            and event.pubkey not in viewer.pubkeys
        ):
            return restricted("event author must be an authenticated pubkey of this connection")
        return None

    return rule


def require_author_for_protected() -> EventRule:
    """NIP-70: an event tagged ``["-"]`` is accepted only from its authenticated author."""

    def rule(event: Event, viewer: Viewer, now: int) -> Rejection | None:
        if not event.is_protected or event.pubkey in viewer.pubkeys:
            return None
        if not viewer.authenticated:
            return auth_required("this event may only be published by its author")
        return restricted("this event may only be published by its author")

    return rule


def limit_event_rate(
    limiter: KindRateLimiter, clock: Callable[[], float], allowlist: frozenset[str] = frozenset()
) -> EventRule:
    """R-A5: per-kind token buckets keyed by authenticated pubkey, else client IP
    (:meth:`Viewer.rate_keys`)."""

    def rule(event: Event, viewer: Viewer, now: int) -> Rejection | None:
        if not limiter.rules_for(event.kind):
            return None  # most kinds: no need to work out whose buckets they would use
        keys = viewer.rate_keys(event.pubkey, allowlist)
        name = limiter.check(event.kind, keys, clock(), viewer.ip)
        return rate_limited(name) if name is not None else None

    return rule


def require_allowlisted_reader(allowed: frozenset[str]) -> ReqRule:
    """R-A2 (non-empty allowlist): REQ/COUNT only from listed, authenticated connections."""

    def rule(filters: Sequence[Filter], viewer: Viewer) -> Rejection | None:
        if not viewer.authenticated:
            return auth_required("this relay only serves authenticated users")
        if not viewer.pubkeys & allowed:
            return restricted("pubkey is not on this relay's allowlist")
        return None

    return rule


def reject_unlisted_addresses(
    allowed: tuple[IpNetwork, ...], blocked_networks: tuple[IpNetwork, ...]
) -> ReqRule:
    """R-A2 CIDR lists on every read. WebSocket clients are already refused at the
    handshake; this rule is what keeps the REST API (one request per connection) under
    the same lists."""

    def rule(filters: Sequence[Filter], viewer: Viewer) -> Rejection | None:
        if not ip_permitted(viewer.ip, allowed, blocked_networks):
            return blocked("your address may not use this relay")
        return None

    return rule


def reject_blocked_readers(blocked_pubkeys: frozenset[str]) -> ReqRule:
    """Connections authenticated as a blacklisted pubkey may not read."""

    def rule(filters: Sequence[Filter], viewer: Viewer) -> Rejection | None:
        if viewer.pubkeys & blocked_pubkeys:
            return blocked("pubkey is not allowed on this relay")
        return None

    return rule
