"""Storing EVENTs and acknowledging them: one at a time, or a pipelined batch together.

:class:`Publisher` carries out a session's :class:`~relay.core.session.Publish`: the
shared rate limit (cluster mode), the store through the MLS gateway, the bus, the OK, then
local fan-out. Events a client pipelined are verified together and the plain ones saved in
one store call and published in one bus exchange, with the same outcomes and OKs in the
same order as one by one. Every OK follows its event's COMMIT (and, in cluster mode, its
publish, R-P3).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from relay.bus import wire
from relay.bus.base import Bus
from relay.bus.shared import SharedKindLimiter
from relay.core.event import Event, verify_signatures
from relay.core.outcome import Outcome
from relay.core.reasons import Rejection, rate_limited
from relay.core.session import Publish
from relay.gateway import MlsGateway
from relay.metrics import RelayMetrics
from relay.peer import Peer
from relay.store.base import StoreUnavailable
from relay.threads import name_os_thread

log = logging.getLogger("relay")

# Fewer EVENTs than this in one pipelined batch are verified on the loop (about 45 us
# each; coincurve lets other threads run meanwhile). Measured under 10x16 publish load
# (bench/RESULTS.md): the hop to the verify thread and back waited on the GIL for ~9 ms a
# batch of 8, so the thread only pays off for big bursts, which would hold the loop.
VERIFY_IN_THREAD_MIN = 32


class Publisher:
    """Stores, publishes and acknowledges the events of every connection."""

    def __init__(
        self,
        gateway: MlsGateway,
        bus: Bus,
        metrics: RelayMetrics,
        *,
        event_limits: SharedKindLimiter | None,
        allowlist: frozenset[str],
        clock: Callable[[], float],
        deliver: Callable[[Event], None],
    ) -> None:
        self.gateway = gateway
        self.bus = bus
        self.metrics = metrics
        self.event_limits = event_limits
        self.allowlist = allowlist  # whose keys a connection's events are charged to
        self.clock = clock
        self.deliver = deliver  # fans an accepted event out on this instance
        self._verifier: ThreadPoolExecutor | None = None
        self._save_seconds = metrics.store_seconds.labels("save")

    def saves_in_batch(self, action: Publish) -> bool:
        """Whether ``action`` may join a batch: stored plainly, and no shared rate limit
        to check first (that check takes the one-frame path, in its place)."""
        event = action.event
        if self.event_limits is not None and self.event_limits.limits(event.kind):
            return False
        return action.store and self.gateway.saves_plainly(event)

    async def verify(self, events: Sequence[Event]) -> list[bool]:
        """Each event's signature check, in order: on the loop for a few, on the verify
        thread for a burst of at least :data:`VERIFY_IN_THREAD_MIN`."""
        if len(events) < VERIFY_IN_THREAD_MIN:
            return verify_signatures(events)
        if self._verifier is None:
            self._verifier = ThreadPoolExecutor(
                1, thread_name_prefix="verify", initializer=name_os_thread
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._verifier, verify_signatures, events)

    async def answer(self, peer: Peer, pending: list[bytes | Event]) -> None:
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

    async def publish(self, peer: Peer, action: Publish) -> None:
        """One event: shared rate limit, store, bus, then its OK and local fan-out."""
        event = action.event
        outcome = Outcome.EPHEMERAL
        if self.event_limits is not None and self.event_limits.limits(event.kind):
            viewer = peer.session.viewer
            keys = viewer.rate_keys(event.pubkey, self.allowlist)
            name = await self.event_limits.check(event.kind, keys, viewer.ip)
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

    def close(self) -> None:
        """Stop the verify thread (if a burst started it)."""
        if self._verifier is not None:
            self._verifier.shutdown(wait=False)
            self._verifier = None
