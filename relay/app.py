"""The relay application: config, store, policy and fan-out, independent of sockets.

:class:`Relay` turns the actions a :class:`~relay.core.session.Session` returns into
store calls and frames for :class:`Peer` objects. The server (``relay.server``)
supplies peers and feeds frames; nothing here touches a socket. Accepted events also go
on the bus (``relay.bus``), and events other instances accepted come back from it to be
fanned out here under the same delivery rules (R-S2).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol

from relay import __version__
from relay.access_log import AccessLogObserver
from relay.bus import wire
from relay.bus.base import Bus, BusUnavailable
from relay.bus.local import LocalBus
from relay.bus.shared import BusLimiter, SharedKindLimiter
from relay.config import Config
from relay.core import messages as m
from relay.core import policy as rules
from relay.core.auth import new_challenge
from relay.core.event import Event, verify_signatures
from relay.core.filters import Filter
from relay.core.outcome import Outcome
from relay.core.policy import Policy, Viewer
from relay.core.ratelimit import KindLimit, KindRateLimiter
from relay.core.reasons import Rejection, rate_limited
from relay.core.recent import RecentIds
from relay.core.session import (
    Action,
    AuthOptions,
    Count,
    Publish,
    Query,
    Send,
    Session,
    SessionLimits,
    Subscription,
)
from relay.core.subindex import SubscriptionIndex
from relay.gateway import FETCH_PERIOD, FETCH_RULE, MlsGateway
from relay.metrics import RelayMetrics
from relay.store.base import MlsStore, StoreUnavailable
from relay.store.guarded import GuardedStore
from relay.threads import name_os_thread

log = logging.getLogger("relay")

# COUNT under read rules must look at events one by one; this bounds the work.
MAX_COUNTED_WITH_READ_RULES = 10000
# A REQ answer is written in batches of about this size, each after the last drained.
STREAM_BATCH_BYTES = 256 * 1024
# Ids of recently fanned-out events: an event arriving twice (from a client and back
# over the bus, or accepted on two instances at once) within this many is sent once.
RECENT_EVENT_IDS = 16384
# Fewer EVENTs than this in one pipelined batch are verified on the loop (about 45 us
# each; coincurve lets other threads run meanwhile). Measured under 10x16 publish load
# (bench/RESULTS.md): the hop to the verify thread and back waited on the GIL for ~9 ms a
# batch of 8, so the thread only pays off for big bursts, which would hold the loop.
VERIFY_IN_THREAD_MIN = 32


class Peer(Protocol):
    """A connection as the application sees it."""

    session: Session

    def send(self, data: bytes) -> None:
        """Queue a frame for the client (never blocks; drops the client if it is too slow)."""
        ...

    def send_many(self, frames: Iterable[bytes]) -> None:
        """Queue several frames at once (one write)."""
        ...

    async def drain(self) -> None:
        """Return once the client has read enough of what is queued, or has gone."""
        ...

    @property
    def is_open(self) -> bool:
        """False once the connection is closing."""
        ...


def build_policy(
    config: Config,
    limiter: KindRateLimiter,
    clock: Callable[[], float],
    gateway: MlsGateway | None = None,
    *,
    shared_rate_limits: bool = False,
) -> Policy:
    """The rule lists for ``config`` (R-A2, R-A5, R-C3, NIP-70), with the MLS gateway's
    rules (R-A3, R-A4, §4) after access control and before rate limiting.

    With ``shared_rate_limits`` (cluster mode) the event rate limits are not a rule:
    the relay checks them on the bus after every rule passed, as the rule would."""
    auth = config.auth
    event_rules: list[rules.EventRule] = []
    req_rules: list[rules.ReqRule] = []
    if config.limitation.read_only:
        event_rules.append(rules.reject_when_read_only())
    event_rules.append(rules.reject_auth_events_as_event())
    if auth.allowed_networks or auth.blocked_networks:
        req_rules.append(
            rules.reject_unlisted_addresses(auth.allowed_networks, auth.blocked_networks)
        )
    if auth.blocked_pubkeys:
        event_rules.append(rules.reject_blocked_pubkeys(auth.blocked_pubkeys))
        req_rules.append(rules.reject_blocked_readers(auth.blocked_pubkeys))
    if auth.allowed_pubkeys:
        event_rules.append(
            rules.require_allowlisted_writer(
                auth.allowed_pubkeys, require_author_match=auth.require_author_match
            )
        )
        req_rules.append(rules.require_allowlisted_reader(auth.allowed_pubkeys))
    event_rules.append(rules.require_author_for_protected())
    read_rules: list[rules.ReadRule] = []
    passive_rules: list[rules.ReadRule] = []
    scope_rules: list[rules.ScopeRule] = []
    if gateway is not None:
        event_rules += gateway.event_rules()
        req_rules += gateway.req_rules()
        read_rules += gateway.read_rules()
        passive_rules += gateway.passive_rules()
        scope_rules += gateway.scope_rules()
    if config.rate_limiter.enabled and limiter.rules and not shared_rate_limits:
        event_rules.append(rules.limit_event_rate(limiter, clock))
    return Policy(
        tuple(event_rules),
        tuple(req_rules),
        tuple(read_rules),
        tuple(passive_rules),
        guarded_kinds=gateway.guarded_kinds if gateway is not None else None,
        scope_rules=tuple(scope_rules),
    )


def session_limits(config: Config) -> SessionLimits:
    """The per-connection limits from ``[limitation]`` and ``[rate_limiter]``."""
    per_second = config.rate_limiter.messages_per_second if config.rate_limiter.enabled else 0
    return SessionLimits(**dataclasses.asdict(config.limitation), messages_per_second=per_second)


class Relay:
    """Application state shared by all connections of one relay process."""

    def __init__(
        self,
        config: Config,
        store: MlsStore,
        *,
        clock: Callable[[], float] = time.time,
        metrics: RelayMetrics | None = None,
        bus: Bus | None = None,
        sweep_scope: str = "local",
    ) -> None:
        self.config = config
        # Every store call is bounded and retried here (R-S3), whatever the backend.
        self.store: MlsStore = (
            store
            if isinstance(store, GuardedStore)
            else GuardedStore(store, timeout=config.data.store_timeout)
        )
        self.clock = clock
        self.metrics = metrics or RelayMetrics()
        self.bus: Bus = bus or LocalBus()
        self.sweep_scope = sweep_scope
        self.recent = RecentIds(RECENT_EVENT_IDS)
        self.version = __version__
        self.started = time.monotonic()
        self.kind_limiter = KindRateLimiter(
            tuple(
                KindLimit(r.name, r.limit, r.period, frozenset(r.kinds))
                for r in config.rate_limiter.rules
            )
        )
        fetch_limiter = (
            BusLimiter(FETCH_RULE, config.mls_gateway.keypackage_fetch_rate, FETCH_PERIOD, self.bus)
            if self.bus.distributed
            else None
        )
        self.gateway = MlsGateway(
            config.mls_gateway,
            self.store,
            registry=self.metrics.registry,
            clock=clock,
            allowlist=config.auth.allowed_pubkeys,
            bus=self.bus,
            fetch_limiter=fetch_limiter,
        )
        shared = self.bus.distributed and config.rate_limiter.enabled
        self.event_limits = SharedKindLimiter(self.kind_limiter.rules, self.bus) if shared else None
        self.policy = build_policy(
            config, self.kind_limiter, clock, self.gateway, shared_rate_limits=shared
        )
        self.limits = session_limits(config)
        self.auth_options = AuthOptions(config.auth.enabled, config.information.relay_url)
        self.allowed_networks = config.auth.allowed_networks
        self.blocked_networks = config.auth.blocked_networks
        self.peers: dict[int, Peer] = {}
        self.subscriptions = SubscriptionIndex()
        self._next_conn_id = 0
        self._verifier: ThreadPoolExecutor | None = None
        self._save_seconds = self.metrics.store_seconds.labels("save")
        self._query_seconds = self.metrics.store_seconds.labels("query")

    # --- connections -------------------------------------------------------------------

    def new_session(self, ip: str, host: str | None = None) -> Session:
        """A session for a new connection (not yet registered for fan-out); ``host`` is
        the Host header of its WebSocket request (AUTH relay tags are checked against it
        when ``information.relay_url`` is unset)."""
        self._next_conn_id += 1
        auth = self.auth_options if host is None else replace(self.auth_options, request_host=host)
        return Session(
            self._next_conn_id,
            ip,
            challenge=new_challenge(),
            policy=self.policy,
            limits=self.limits,
            auth=auth,
            clock=self.clock,
            observer=AccessLogObserver(self.metrics, ip),
            index=self.subscriptions,
        )

    def register(self, peer: Peer) -> None:
        """Start delivering live events to ``peer``."""
        self.peers[peer.session.conn_id] = peer
        self.metrics.connections.set(len(self.peers))

    def unregister(self, peer: Peer) -> None:
        """Stop delivering to ``peer`` and forget its subscriptions."""
        self.peers.pop(peer.session.conn_id, None)
        peer.session.close_all()
        self.metrics.connections.set(len(self.peers))

    # --- actions -----------------------------------------------------------------------

    async def handle_frame(self, peer: Peer, frame: bytes) -> None:
        """Process one client frame to completion (store, fan out, answer)."""
        for action in peer.session.receive(frame):
            await self.execute(peer, action)

    async def handle_frames(self, peer: Peer, frames: Sequence[bytes]) -> None:
        """Process frames a client sent back to back, with the result of
        :meth:`handle_frame` on each in turn (same rules, same OKs in the same order).

        EVENTs among them have their signatures verified together, on the verify thread
        when there are enough to be worth it, and the events the gateway stores plainly
        are saved in one store call, and in cluster mode published on the bus in one
        exchange, before their OKs go out in one write. Any other frame, and any event
        with MLS state or a shared rate limit, first answers what came before it and then
        takes the one-frame path."""
        if len(frames) == 1:
            for frame in frames:
                await self.handle_frame(peer, frame)
            return
        session = peer.session
        checked = [session.check_event(frame) for frame in frames]
        signed = [c.event for c in checked if c is not None and isinstance(c.event, Event)]
        verdicts = iter(await self._verify(signed))
        pending: list[bytes | Event] = []
        for frame, check in zip(frames, checked, strict=True):
            if check is None:
                await self._answer(peer, pending)
                pending = []
                await self.handle_frame(peer, frame)
                continue
            verified = next(verdicts) if isinstance(check.event, Event) else False
            for action in session.admit(check, verified):
                if isinstance(action, Send):
                    pending.append(action.data)
                elif isinstance(action, Publish) and self._saves_in_batch(action):
                    pending.append(action.event)
                else:
                    await self._answer(peer, pending)
                    pending = []
                    await self.execute(peer, action)
        await self._answer(peer, pending)

    def _saves_in_batch(self, action: Publish) -> bool:
        """Whether ``action`` may join a batch: stored plainly, and no shared rate limit
        to check first (that check takes the one-frame path, in its place)."""
        event = action.event
        if self.event_limits is not None and self.event_limits.limits(event.kind):
            return False
        return action.store and self.gateway.saves_plainly(event)

    async def _verify(self, events: Sequence[Event]) -> list[bool]:
        if len(events) < VERIFY_IN_THREAD_MIN:
            return verify_signatures(events)
        if self._verifier is None:
            self._verifier = ThreadPoolExecutor(
                1, thread_name_prefix="verify", initializer=name_os_thread
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._verifier, verify_signatures, events)

    async def _answer(self, peer: Peer, pending: list[bytes | Event]) -> None:
        """Store the events of ``pending`` in one call, then send every frame of it in
        order (an event's OK in its place) in one write, then fan the stored ones out."""
        if not pending:
            return
        events = [item for item in pending if isinstance(item, Event)]
        session = peer.session
        try:
            results = await self._save_many(events)
            frames: list[bytes] = []
            fan_out: list[Event] = []
            outcomes = iter(results)
            for item in pending:
                if not isinstance(item, Event):
                    frames.append(item)
                    continue
                outcome = next(outcomes)
                if isinstance(outcome, StoreUnavailable):
                    log.error(
                        "store write failed", extra={"error": str(outcome), "kind": item.kind}
                    )
                    frames.append(session.store_failed(item, "could not store the event, retry"))
                    continue
                if outcome in (Outcome.STORED, Outcome.EPHEMERAL):
                    fan_out.append(item)
                frames.append(session.published(item, outcome))
            await self._publish_on_bus(fan_out)
        except Exception:
            log.exception("internal error", extra={"action": "Publish"})
            frames = [
                session.store_failed(item, "internal error") if isinstance(item, Event) else item
                for item in pending
            ]
            fan_out = []
        peer.send_many(frames)
        for event in fan_out:
            self.deliver(event)

    async def _publish_on_bus(self, events: Sequence[Event]) -> None:
        """R-P3: in cluster mode an OK follows the publish of its event; ``events`` go out
        in one exchange. If the bus is down they reach this instance's subscribers only."""
        if not events or not self.bus.reaches_others():
            return
        origin = self.bus.origin
        sent = await self.bus.publish_many([wire.encode_event(origin, e) for e in events])
        if self.bus.distributed:
            self.metrics.bus_published.labels("ok" if sent else "local_only").inc(len(events))

    async def _save_many(self, events: Sequence[Event]) -> list[Outcome | StoreUnavailable]:
        if not events:
            return []
        started = time.perf_counter()
        try:
            return await self.gateway.save_many(events, int(self.clock()))
        finally:
            self._save_seconds.observe(time.perf_counter() - started)

    async def execute(self, peer: Peer, action: Action) -> None:
        """Carry out one session action for ``peer``.

        A bug below this point still gets the answer the client waits for (OK false or
        CLOSED with ``error:``), and the connection keeps serving.
        """
        try:
            if isinstance(action, Send):
                peer.send(action.data)
            elif isinstance(action, Publish):
                await self._publish(peer, action)
            elif isinstance(action, Query):
                await self._query(peer, action)
            elif isinstance(action, Count):
                await self._count(peer, action)
        except Exception:
            log.exception("internal error", extra={"action": type(action).__name__})
            if isinstance(action, Publish):
                peer.send(peer.session.store_failed(action.event, "internal error"))
            elif isinstance(action, (Query, Count)):
                sub_id = action.subscription.sub_id if isinstance(action, Query) else action.sub_id
                peer.session.unsubscribe(sub_id)
                peer.send(m.encode_closed(sub_id, "error: internal error"))

    async def _publish(self, peer: Peer, action: Publish) -> None:
        event = action.event
        outcome = Outcome.EPHEMERAL
        if self.event_limits is not None:
            viewer = peer.session.viewer
            name = await self.event_limits.check(event.kind, viewer.rate_key(event.pubkey))
            if name is not None:
                self.metrics.rate_limited(name)
                peer.send(peer.session.published(event, rate_limited(name)))
                return
        if action.store:
            started = time.perf_counter()
            try:
                result = await self.gateway.save(event, peer.session.viewer, int(self.clock()))
            except StoreUnavailable as exc:
                log.error("store write failed", extra={"error": str(exc), "kind": event.kind})
                peer.send(peer.session.store_failed(event, "could not store the event, retry"))
                return
            finally:
                self._save_seconds.observe(time.perf_counter() - started)
            if isinstance(result, Rejection):
                peer.send(peer.session.published(event, result))
                return
            outcome = result
        fan_out = outcome in (Outcome.STORED, Outcome.EPHEMERAL)
        if fan_out:
            await self._publish_on_bus([event])
        peer.send(peer.session.published(event, outcome))
        if fan_out:
            self.deliver(event)

    def deliver(self, event: Event) -> None:
        """Fan ``event`` out on this instance unless it already was (R-S2: once each)."""
        if self.recent.add(event.id):
            self.broadcast(event)

    def receive_from_bus(self, data: bytes) -> None:
        """A bus message: another instance's event to fan out or group change to apply."""
        if wire.sent_by(data, self.bus.origin):
            return
        try:
            message = wire.decode(data)
        except wire.MalformedMessage as exc:
            self.metrics.bus_received.labels("malformed").inc()
            log.error("ignoring a malformed bus message", extra={"error": str(exc)})
            return
        if isinstance(message, wire.EventMessage):
            self.metrics.bus_received.labels("event").inc()
            self.deliver(message.event)
        else:
            self.metrics.bus_received.labels("group").inc()
            self.gateway.apply_remote(message.state)

    def broadcast(self, event: Event) -> None:
        """Deliver ``event`` to every live subscription allowed to read it (never awaits).

        Subscriptions are found through the index (about one lookup per tag of the
        event), so the cost does not grow with every filter of every connection."""
        raw = event.raw
        checks = self.subscriptions.checks
        matches = self.subscriptions.match(event)
        if self.subscriptions.checks != checks:  # Counter.inc takes a lock: not for 0
            self.metrics.fanout_checks.inc(self.subscriptions.checks - checks)
        for conn_id, sub_ids in matches.items():
            peer = self.peers.get(conn_id)
            if peer is None or not peer.is_open:
                continue
            for sub_id in self._live_readers(peer.session, event, sub_ids):
                peer.send(m.encode_event(sub_id, raw))

    def _live_readers(self, session: Session, event: Event, sub_ids: list[str]) -> list[str]:
        """Those of ``sub_ids`` through which ``session`` may receive ``event`` live."""
        if self.policy.can_read_passively(event, session.viewer):
            return sub_ids
        # Refused in general, an event may still be granted to a subscription that
        # names it explicitly (a Marmot group's id, R-M11).
        allowed = []
        for sub_id in sub_ids:
            sub = session.subscriptions.get(m.SubId(sub_id))
            if sub is not None and self.policy.can_read_passively(
                event, session.viewer.asking(sub.filters)
            ):
                allowed.append(sub_id)
        return allowed

    async def _query(self, peer: Peer, action: Query) -> None:
        sub = action.subscription
        if not self.policy.guards(sub.filters) and self.gateway.answers_unchanged(sub.filters):
            await self._query_raw(peer, sub)
            return
        started = time.perf_counter()
        try:
            viewer = peer.session.viewer.asking(sub.filters)
            result = await self.gateway.query(
                viewer, sub.filters, int(self.clock()), lambda e: self.policy.can_read(e, viewer)
            )
        except StoreUnavailable as exc:
            self._query_failed(peer, sub, exc)
            return
        finally:
            self._query_seconds.observe(time.perf_counter() - started)
        if isinstance(result, Rejection):
            peer.session.unsubscribe(sub.sub_id)
            peer.send(m.encode_closed(sub.sub_id, result.message()))
            return
        await self._stream(peer, sub, (e.raw for e in self._readable(viewer, result)))

    async def _query_raw(self, peer: Peer, sub: Subscription) -> None:
        """A REQ no rule can refuse, narrow or consume anything of: the stored JSON is
        the answer, unparsed; read on the event loop when the store can answer at once."""
        started = time.perf_counter()
        now = int(self.clock())
        raws = self.store.query_raw_now(sub.filters, now)
        try:
            if raws is None:
                raws = await self.store.query_raw(sub.filters, now)
        except StoreUnavailable as exc:
            self._query_failed(peer, sub, exc)
            return
        finally:
            self._query_seconds.observe(time.perf_counter() - started)
        await self._stream(peer, sub, raws)

    def _query_failed(self, peer: Peer, sub: Subscription, exc: StoreUnavailable) -> None:
        log.error("store query failed", extra={"error": str(exc)})
        peer.session.unsubscribe(sub.sub_id)
        peer.send(m.encode_closed(sub.sub_id, "error: could not query the store, retry"))

    async def _stream(self, peer: Peer, sub: Subscription, raws: Iterable[bytes]) -> None:
        """Send a REQ answer (events as stored JSON, then EOSE) in batches, waiting for
        the client to read while its buffer is full (R-P7): a large answer reaches a slow
        reader instead of dropping it. Nothing more is sent once the REQ is replaced."""
        if not (peer.is_open and peer.session.is_current(sub)):
            return
        batch: list[bytes] = []
        size = 0
        for frame in m.encode_events(sub.sub_id, raws):
            if size >= STREAM_BATCH_BYTES:
                peer.send_many(batch)
                batch, size = [], 0
                await peer.drain()
                if not (peer.is_open and peer.session.is_current(sub)):
                    return
            batch.append(frame)
            size += len(frame)
        batch.append(m.encode_eose(sub.sub_id))
        peer.send_many(batch)

    def _readable(self, viewer: Viewer, events: Iterable[Event]) -> Iterable[Event]:
        if not self.policy.read_rules:
            return events
        return (e for e in events if self.policy.can_read(e, viewer))

    async def _count(self, peer: Peer, action: Count) -> None:
        now = int(self.clock())
        started = time.perf_counter()
        try:
            viewer = peer.session.viewer.asking(action.filters)
            total = await self._count_readable(viewer, action.filters, now)
        except StoreUnavailable as exc:
            log.error("store count failed", extra={"error": str(exc)})
            peer.send(m.encode_closed(action.sub_id, "error: could not query the store, retry"))
            return
        finally:
            self.metrics.store_seconds.labels("count").observe(time.perf_counter() - started)
        cap = self.config.limitation.max_count
        peer.send(m.encode_count(action.sub_id, min(total, cap), approximate=total > cap))

    async def _count_readable(self, viewer: Viewer, filters: tuple[Filter, ...], now: int) -> int:
        """How many events matching ``filters`` ``viewer`` may see, counted in the store
        (NIP-45 ignores ``limit``); only rules without scope rules load events, capped."""
        plan = self.policy.count_plan(filters, viewer)
        if plan is None:
            cap = min(MAX_COUNTED_WITH_READ_RULES, self.config.limitation.max_count)
            capped = tuple(replace(f, limit=cap) for f in filters)
            events = await self.store.query(capped, now)
            return sum(1 for e in events if self.policy.can_read_passively(e, viewer))
        total = 0
        for part, sign in ((plan.total, 1), (plan.minus, -1), (plan.plus, 1)):
            if part:
                total += sign * await self.store.count(part, now)
        return max(total, 0)

    # --- health ------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the bus, then load state the rules need (the MLS group directory): in
        this order, a group change committed meanwhile is in one or the other."""
        await self.bus.start(self.receive_from_bus, self.gateway.reload)
        await self.gateway.start()

    async def close(self) -> None:
        """Leave the bus and stop the verify thread."""
        await self.bus.close()
        if self._verifier is not None:
            self._verifier.shutdown(wait=False)
            self._verifier = None

    async def sweep(self, now: int, *, lease: float = 180.0) -> bool:
        """One background pass: MLS archive/key packages and expired events (only on the
        instance holding the sweeper lease for this store, for ``lease`` seconds), then
        this instance's refilled rate buckets. True if this instance swept the store."""
        try:
            leads = await self.bus.lead(f"sweeper:{self.sweep_scope}", lease)
        except BusUnavailable:
            leads = True  # sweeping twice is harmless; not sweeping for long is not
        if leads:
            await self.gateway.sweep(now)
            await self.store.delete_expired(now)
        self.kind_limiter.prune(self.clock())
        if self.event_limits is not None:
            self.event_limits.prune()
        return leads

    async def health(self, timeout: float = 1.0) -> dict[str, object]:
        """The ``/health`` document (R-H1): ``status`` is ``healthy`` only if the store
        answers and, in cluster mode, the bus does, both checked at once within ``timeout``."""
        status = "healthy"
        store = "ok"
        store_check = asyncio.wait_for(self.store.health(), timeout)
        bus_check = asyncio.wait_for(self.bus.health(), timeout)
        store_result, bus_result = await asyncio.gather(
            store_check, bus_check, return_exceptions=True
        )
        if isinstance(store_result, (StoreUnavailable, TimeoutError)):
            status, store = "unhealthy", f"error: {store_result or 'timed out'}"
        elif isinstance(store_result, BaseException):
            raise store_result
        bus = "unhealthy" if isinstance(bus_result, BaseException) else bus_result
        if bus == "unhealthy":
            status = "unhealthy"
        if self.config.information.maintenance:
            status = "maintenance"
        return {
            "status": status,
            "version": self.version,
            "uptime_seconds": int(time.monotonic() - self.started),
            "store": store,
            "bus": bus,
        }
