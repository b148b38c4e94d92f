"""The relay application: config, store, policy and fan-out, independent of sockets.

:class:`Relay` turns the actions a :class:`~relay.core.session.Session` returns into
store calls and frames for :class:`~relay.peer.Peer` objects: EVENTs through its
:class:`~relay.publisher.Publisher`, REQ and COUNT through its
:class:`~relay.answers.Answers`; it keeps the connections and fans events out. The server
(``relay.server``) supplies peers and feeds frames; nothing here touches a socket.
Accepted events also go on the bus (``relay.bus``), and events other instances accepted
come back from it to be fanned out here under the same delivery rules (R-S2).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from relay import __version__
from relay.access_log import AccessLogObserver
from relay.answers import Answers
from relay.bus import wire
from relay.bus.base import Bus, BusUnavailable
from relay.bus.local import LocalBus
from relay.bus.shared import BusLimiter, SharedKindLimiter
from relay.config import Config
from relay.core import messages as m
from relay.core.auth import new_challenge
from relay.core.event import Event
from relay.core.ratelimit import KindRateLimiter
from relay.core.recent import RecentIds
from relay.core.session import (
    Action,
    AuthOptions,
    Count,
    Publish,
    Query,
    Send,
    Session,
)
from relay.core.subindex import SubscriptionIndex
from relay.gateway import FETCH_PERIOD, FETCH_RULE, MlsGateway
from relay.metrics import RelayMetrics
from relay.peer import Peer
from relay.policy_setup import build_policy, kind_limit, session_limits
from relay.publisher import Publisher
from relay.store.base import MlsStore, StoreUnavailable
from relay.store.guarded import GuardedStore

log = logging.getLogger("relay")

# Ids of recently fanned-out events: an event arriving twice (from a client and back
# over the bus, or accepted on two instances at once) within this many is sent once.
RECENT_EVENT_IDS = 16384


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
        self.kind_limiter = KindRateLimiter(tuple(kind_limit(r) for r in config.rate_limiter.rules))
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
        self.publisher = Publisher(
            self.gateway,
            self.bus,
            self.metrics,
            event_limits=self.event_limits,
            allowlist=config.auth.allowed_pubkeys,
            clock=clock,
            deliver=self.deliver,
        )
        self.answers = Answers(
            self.store,
            self.gateway,
            self.policy,
            self.metrics,
            clock=clock,
            max_count=config.limitation.max_count,
        )

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
        verdicts = iter(await self.publisher.verify(signed))
        pending: list[bytes | Event] = []
        for frame, check in zip(frames, checked, strict=True):
            if check is None:
                await self.publisher.answer(peer, pending)
                pending = []
                await self.handle_frame(peer, frame)
                continue
            verified = next(verdicts) if isinstance(check.event, Event) else False
            for action in session.admit(check, verified):
                if isinstance(action, Send):
                    pending.append(action.data)
                elif isinstance(action, Publish) and self.publisher.saves_in_batch(action):
                    pending.append(action.event)
                else:
                    await self.publisher.answer(peer, pending)
                    pending = []
                    await self.execute(peer, action)
        await self.publisher.answer(peer, pending)

    async def execute(self, peer: Peer, action: Action) -> None:
        """Carry out one session action for ``peer``.

        A bug below this point still gets the answer the client waits for (OK false or
        CLOSED with ``error:``), and the connection keeps serving.
        """
        try:
            if isinstance(action, Send):
                peer.send(action.data)
            elif isinstance(action, Publish):
                await self.publisher.publish(peer, action)
            elif isinstance(action, Query):
                await self.answers.query(peer, action)
            elif isinstance(action, Count):
                await self.answers.count(peer, action)
        except Exception:
            log.exception("internal error", extra={"action": type(action).__name__})
            if isinstance(action, Publish):
                peer.send(peer.session.store_failed(action.event, "internal error"))
            elif isinstance(action, (Query, Count)):
                sub_id = action.subscription.sub_id if isinstance(action, Query) else action.sub_id
                peer.session.unsubscribe(sub_id)
                peer.send(m.encode_closed(sub_id, "error: internal error"))

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

    # --- health ------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the bus, then load state the rules need (the MLS group directory): in
        this order, a group change committed meanwhile is in one or the other."""
        await self.bus.start(self.receive_from_bus, self.gateway.reload)
        await self.gateway.start()

    async def close(self) -> None:
        """Leave the bus and stop the verify thread."""
        await self.bus.close()
        self.publisher.close()

    async def sweep(self, now: int, *, lease: float = 180.0) -> bool:
        """One background pass: MLS archive/key packages and expired events (only on the
        instance holding the sweeper lease for this store, for ``lease`` seconds). True if
        this instance swept the store."""
        try:
            leads = await self.bus.lead(f"sweeper:{self.sweep_scope}", lease)
        except BusUnavailable:
            leads = True  # sweeping twice is harmless; not sweeping for long is not
        if leads:
            await self.gateway.sweep(now)
            await self.store.delete_expired(now)
        return leads

    def clear_rate_buckets(self) -> None:
        """Forget this instance's rate buckets that have refilled (bounded memory; run
        every ``rate_limiter.clear_interval``)."""
        self.kind_limiter.prune(self.clock())
        if self.event_limits is not None:
            self.event_limits.prune()

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
        if isinstance(store_result, TimeoutError):
            status, store = "unhealthy", f"error: no answer within {timeout:g} s"
        elif isinstance(store_result, StoreUnavailable):
            status, store = "unhealthy", f"error: {store_result}"
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
