"""The MLS gateway: applies the pure MLS rules to the store and keeps the group directory.

The relay calls four hooks: rule lists for its :class:`~relay.core.policy.Policy`,
:meth:`MlsGateway.save` for MLS kinds, :meth:`MlsGateway.query` for every REQ (key
package consumption, R-M1b), and :meth:`MlsGateway.sweep` from the background sweeper.

With several instances (R-S2) every committed group change goes on the bus and the
other instances' directories apply it (:meth:`MlsGateway.apply_remote`); the key
package fetch limits and the NIP-98 replay guard keep their state on the bus.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from prometheus_client import CollectorRegistry, Counter

from relay.bus import wire
from relay.bus.base import Bus
from relay.bus.local import LocalBus
from relay.bus.shared import SharedReplayGuard
from relay.config import MlsGatewaySettings
from relay.core.auth import HTTP_AUTH_WINDOW_SECONDS
from relay.core.event import Event
from relay.core.filters import Filter
from relay.core.outcome import Outcome
from relay.core.policy import EventRule, ReadRule, ReqRule, ScopeRule, Viewer
from relay.core.reasons import Rejection, error, rate_limited
from relay.limiter.base import Limiter, LimiterUnavailable
from relay.limiter.memory import MemoryLimiter
from relay.mls import kinds
from relay.mls.groups import Actor, GroupState, on_gift_wrap, on_group_message, on_roster
from relay.mls.keypackages import HARD_MAX_PER_QUERY, keypackage_expiry
from relay.mls.narrowing import count_scope, narrow_for_reader
from relay.mls.rules import (
    GroupDirectory,
    own_keypackages_only,
    refuse_older_than_archive,
    require_auth_for_restricted_reads,
    require_auth_for_restricted_writes,
    restricted_delivery,
    validate_mls_events,
)
from relay.readable_query import query_readable
from relay.store.base import MlsStore, MlsSweep, StoreUnavailable

log = logging.getLogger("relay.mls")

FETCH_RULE = "keypackage_fetch"
FETCH_PERIOD = 3600.0
_DAY = 86400


class MlsMetrics:
    """The ``mls_gateway_*`` counters (R-H2), registered on the relay's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.events_processed = Counter(
            "mls_gateway_events_processed_total",
            "MLS events accepted, by kind",
            ["kind"],
            registry=r,
        )
        self.keypackages_stored = Counter(
            "mls_gateway_keypackages_stored_total", "Key packages stored", registry=r
        )
        self.keypackages_consumed = Counter(
            "mls_gateway_keypackages_consumed_total", "Key packages consumed by fetches", registry=r
        )
        self.groups_updated = Counter(
            "mls_gateway_groups_updated_total", "Group registry updates", registry=r
        )
        self.membership_updates = Counter(
            "mls_gateway_membership_updates_total",
            "Membership changes (rosters and invitations)",
            registry=r,
        )
        self.roster_updates = Counter(
            "mls_gateway_roster_policy_updates_total", "Roster/policy events applied", registry=r
        )
        self.archive_swept = Counter(
            "mls_gateway_archive_swept_total",
            "Archived group messages, Noise DMs and gift wraps removed after their TTL",
            registry=r,
        )
        self.keypackages_swept = Counter(
            "mls_gateway_keypackages_swept_total",
            "Key packages removed by the sweeper: expired, or a last resort after its grace",
            ["reason"],
            registry=r,
        )


class MlsGateway:
    """MLS state and rules for one relay process."""

    def __init__(
        self,
        settings: MlsGatewaySettings,
        store: MlsStore,
        *,
        registry: CollectorRegistry,
        clock: Callable[[], float],
        allowlist: frozenset[str] = frozenset(),
        fetch_limiter: Limiter | None = None,
        bus: Bus | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.allowlist = allowlist
        self.bus: Bus = bus or LocalBus()
        self.enforce = settings.delivery == "enforce"
        self.include_invitees = settings.membership == "welcome"
        # R-M11: "roster" keeps every group strictly to its recorded members.
        self.id_capability = settings.membership == "welcome"
        self.global_admins = frozenset(settings.admin_pubkeys)
        self.directory = GroupDirectory(
            include_invitees=self.include_invitees,
            global_admins=self.global_admins,
            id_capability=self.id_capability,
        )
        # Per requester identity and author (R-M1b); a cluster passes a shared limiter.
        self.fetch_limiter: Limiter = fetch_limiter or MemoryLimiter(
            settings.keypackage_fetch_rate, FETCH_PERIOD
        )
        self.metrics = MlsMetrics(registry)
        self._delivery = self.read_rules()
        self.http_auth_replays = SharedReplayGuard(self.bus, HTTP_AUTH_WINDOW_SECONDS)

    async def start(self) -> None:
        """Load the stored group states (memberships survive restarts)."""
        await self.reload()

    def describe(self) -> dict[str, object]:
        """What the start-up log line says about the gateway."""
        return {"groups": len(self.directory), "delivery": self.settings.delivery}

    async def reload(self) -> None:
        """Learn the stored group states (at start, and after a bus outage: the changes
        other instances made meanwhile are in the store, not on the bus). A later state
        already learnt from the bus is kept."""
        for state in await self.store.load_groups():
            self.directory.merge(state)

    def apply_remote(self, state: GroupState) -> None:
        """A group change another instance committed: deliver by it from now on (unless
        a later state of the group is already known)."""
        self.directory.merge(state)

    # --- policy hooks --------------------------------------------------------------------

    def event_rules(self) -> list[EventRule]:
        """Write rules: authentication for MLS kinds (when enforced), then shape checks."""
        rules = [require_auth_for_restricted_writes()] if self.enforce else []
        archive_ttl = self.settings.message_archive_ttl_days * _DAY
        return [
            *rules,
            validate_mls_events(int(self.settings.keypackage_ttl)),
            refuse_older_than_archive(archive_ttl),
        ]

    def req_rules(self) -> list[ReqRule]:
        """REQ/COUNT rules: restricted kinds need AUTH (when enforced)."""
        return [require_auth_for_restricted_reads()] if self.enforce else []

    def read_rules(self) -> list[ReadRule]:
        """Delivery rules (R-A3); none with ``delivery = "open"``."""
        return [restricted_delivery(self.directory)] if self.enforce else []

    @property
    def guarded_kinds(self) -> frozenset[int]:
        """The only kinds the gateway's read and passive rules ever refuse."""
        return kinds.RESTRICTED

    def passive_rules(self) -> list[ReadRule]:
        """R-M1b: another owner's key package reaches a connection only through a
        consuming, rate-limited fetch: never by live fan-out, and COUNT does not reveal
        how many someone has left (no harvesting)."""
        return [own_keypackages_only()]

    def scope_rules(self) -> list[ScopeRule]:
        """The read and passive rules as filters, so COUNT is counted in the store."""
        return [count_scope(self.directory, enforce=self.enforce)]

    # --- writes --------------------------------------------------------------------------

    def _actor(self, viewer: Viewer) -> Actor:
        return Actor(
            viewer.pubkeys,
            self.enforce,
            self.include_invitees,
            self.global_admins,
            self.id_capability,
        )

    async def save(self, event: Event, viewer: Viewer, now: int) -> Outcome | Rejection:
        """Store an event, applying the MLS state changes of its kind atomically."""
        kind = event.kind
        actor = self._actor(viewer)
        if kind == kinds.KEYPACKAGE:
            return await self._save_keypackage(event, now)
        if kind == kinds.GROUP_MESSAGE:
            outcome = await self._save_group_event(
                event, lambda s: on_group_message(s, event, actor), now
            )
        elif kind == kinds.ROSTER:
            outcome = await self._save_group_event(event, lambda s: on_roster(s, event, actor), now)
        elif kind == kinds.GIFT_WRAP and event.first_tag_value("h"):
            outcome = await self._save_group_event(
                event, lambda s: on_gift_wrap(s, event, actor), now
            )
        else:
            outcome = await self.store.save(event, now)
        self._count_stored(event, outcome)
        return outcome

    @staticmethod
    def saves_plainly(event: Event) -> bool:
        """True if :meth:`save` stores ``event`` as it is, changing no MLS state (so
        :meth:`save_many` may take it)."""
        kind = event.kind
        if kind == kinds.GIFT_WRAP:
            return not event.first_tag_value("h")
        return kind not in (kinds.KEYPACKAGE, kinds.GROUP_MESSAGE, kinds.ROSTER)

    async def save_many(
        self, events: Sequence[Event], now: int
    ) -> list[Outcome | StoreUnavailable]:
        """:meth:`save` for events that :meth:`saves_plainly`, in one store call; the
        result for each is its outcome or the store's failure for it."""
        results = await self.store.save_many(events, now)
        for event, outcome in zip(events, results, strict=True):
            self._count_stored(event, outcome)
        return results

    def _count_stored(self, event: Event, outcome: Outcome | Rejection | StoreUnavailable) -> None:
        if outcome is Outcome.STORED and event.kind in kinds.RESTRICTED:
            self.metrics.events_processed.labels(str(event.kind)).inc()

    async def _save_keypackage(self, event: Event, now: int) -> Outcome | Rejection:
        expires_at = keypackage_expiry(event, now=now, ttl=int(self.settings.keypackage_ttl))
        if isinstance(expires_at, Rejection):
            return expires_at
        saved = await self.store.save_keypackage(
            event,
            expires_at=expires_at,
            max_per_owner=self.settings.max_keypackages_per_user,
            grace=int(self.settings.last_resort_grace),
            now=now,
        )
        if saved.outcome is Outcome.STORED:
            self.metrics.keypackages_stored.inc()
            self.metrics.events_processed.labels(str(kinds.KEYPACKAGE)).inc()
        return saved.outcome

    async def _save_group_event(
        self,
        event: Event,
        transition: Callable[[GroupState | None], GroupState | Rejection | None],
        now: int,
    ) -> Outcome | Rejection:
        outcome, state = await self.store.save_group_event(event, transition, now)
        if state is not None:
            before = self.directory.get(state.group_id)
            # merge, not replace: another instance's later change may have arrived first
            self.directory.merge(state)
            # Before the relay publishes the event itself: each instance must know the
            # new membership when the event reaches it (one connection keeps the order).
            await self.bus.publish(wire.encode_group(self.bus.origin, state))
            self.metrics.groups_updated.inc()
            if event.kind == kinds.ROSTER:
                self.metrics.roster_updates.inc()
            if before is None or before.member_set() != state.member_set():
                self.metrics.membership_updates.inc()
        return outcome

    # --- reads ---------------------------------------------------------------------------

    def answers_unchanged(self, filters: Sequence[Filter]) -> bool:
        """True if :meth:`query` answers ``filters`` exactly as the store does: none of
        them can match a kind the gateway guards, narrows or serves by consuming fetch."""
        return all(f.kinds is not None and not f.kinds & kinds.RESTRICTED for f in filters)

    async def query(
        self,
        viewer: Viewer,
        filters: Sequence[Filter],
        now: int,
        readable: Callable[[Event], bool] | None = None,
    ) -> list[Event] | Rejection:
        """Stored events for a REQ that ``viewer`` may read, with R-M1b for kind 443.

        ``readable`` is the relay's read-rule check (default: the gateway's delivery
        rules); each filter's ``limit`` counts only events it allows, so a reader's own
        messages are never crowded out by newer ones addressed to others.

        A filter naming kind 443 with ``authors`` is answered per author (oldest first,
        at most ``max_keypackages_per_query``) and consumes what it serves; without
        ``authors`` it returns only the requester's own key packages. Filters that do
        not name 443 never return key packages (no harvesting around consumption).
        """
        plain: list[Filter] = []
        fetched: list[Event] = []
        limited = unavailable = False
        for f in filters:
            if f.kinds is None or kinds.KEYPACKAGE not in f.kinds:
                plain.append(f)
                continue
            if f.limit == 0:
                continue
            rest = f.kinds - {kinds.KEYPACKAGE}
            if rest:
                plain.append(replace(f, kinds=rest))
            own = viewer.pubkeys if f.authors is None else f.authors & viewer.pubkeys
            if own:  # owners list their own key packages without consuming them
                plain.append(replace(f, kinds=frozenset({kinds.KEYPACKAGE}), authors=own))
            others = frozenset() if f.authors is None else f.authors - viewer.pubkeys
            if others:
                try:
                    served, was_limited = await self._fetch_keypackages(viewer, f, others, now)
                except LimiterUnavailable as exc:
                    log.error("fetch limiter unavailable", extra={"error": str(exc)})
                    unavailable = True
                    continue
                fetched += served
                limited = limited or was_limited
        if limited and not fetched:
            return rate_limited(FETCH_RULE)
        if unavailable:
            return error("key package fetch limit unavailable, retry")
        events = await self._read(viewer, plain, now, readable) if plain else []
        merged = {e.id: e for e in [*events, *fetched]}
        return sorted(merged.values(), key=lambda e: (-e.created_at, e.id))

    async def _read(
        self,
        viewer: Viewer,
        filters: Sequence[Filter],
        now: int,
        readable: Callable[[Event], bool] | None,
    ) -> list[Event]:
        """R-A3 applied in the query: filters narrowed to what ``viewer`` may read, and
        read on past refused events where narrowing cannot say it."""
        delivery = self._delivery

        def may_read(event: Event) -> bool:
            if event.kind == kinds.KEYPACKAGE and event.pubkey not in viewer.pubkeys:
                return False  # others' key packages only through a consuming fetch
            if readable is not None:
                return readable(event)
            return all(rule(event, viewer) for rule in delivery)

        plan = [
            (f, narrow_for_reader(f, viewer, self.directory) if self.enforce else (f,))
            for f in filters
        ]
        return await query_readable(self.store, plan, now, may_read)

    async def _fetch_keypackages(
        self, viewer: Viewer, f: Filter, authors: frozenset[str], now: int
    ) -> tuple[list[Event], bool]:
        # An allowlisted identity is charged on every instance alike (the buckets are on
        # the bus); a connection's own key is unique only within this instance.
        requesters = [
            key if key in self.allowlist else f"{self.bus.origin}/{key}"
            for key in viewer.limit_keys(self.allowlist)
        ]
        clock = self.clock()
        allowed = []
        limited = False
        for author in sorted(authors):
            keys = [f"{requester}>{author}" for requester in requesters]
            if await self.fetch_limiter.acquire(keys, clock):
                allowed.append(author)
            else:
                limited = True
        per_author = min(self.settings.max_keypackages_per_query, HARD_MAX_PER_QUERY)
        if f.limit is not None:
            per_author = max(1, min(per_author, f.limit))
        if not allowed:
            return [], limited
        served = await self.store.take_keypackages(
            allowed, per_author=per_author, consume=True, now=now, where=f
        )
        consumed = sum(1 for s in served if s.consumed)
        if consumed:
            self.metrics.keypackages_consumed.inc(consumed)
        return [s.event for s in served], limited

    # --- background ----------------------------------------------------------------------

    async def sweep(self, now: int) -> MlsSweep:
        """R-M9 archive TTL, expired key packages, due last-resort deletions."""
        archive_before = now - self.settings.message_archive_ttl_days * _DAY
        result = await self.store.sweep_mls(now, archive_before)
        self.metrics.archive_swept.inc(result.archived)
        keypackages = self.metrics.keypackages_swept
        keypackages.labels("expired").inc(result.keypackages_expired)
        keypackages.labels("last_resort").inc(result.last_resort_deleted)
        await self.fetch_limiter.prune(self.clock())
        return result
