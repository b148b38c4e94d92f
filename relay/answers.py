"""Answering REQ and COUNT: the store's events under the read rules, streamed to a peer.

:class:`Answers` runs the store query a session's :class:`~relay.core.session.Query` or
:class:`~relay.core.session.Count` asks for and sends what the viewer may read, then EOSE
(or the COUNT). A store fault closes the subscription with ``error:``; the connection
keeps serving.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from contextlib import aclosing
from dataclasses import replace

from relay.answer_pages import answer_pages, is_large
from relay.core import messages as m
from relay.core.event import Event
from relay.core.filters import Filter
from relay.core.policy import Policy, Viewer
from relay.core.reasons import Rejection
from relay.core.session import Count, Query, Subscription
from relay.gateway import MlsGateway
from relay.metrics import RelayMetrics
from relay.peer import Peer
from relay.store.base import MlsStore, StoreUnavailable

log = logging.getLogger("relay")

# COUNT under read rules must look at events one by one; this bounds the work.
MAX_COUNTED_WITH_READ_RULES = 10000
# A REQ answer is written in batches of about this size, each after the last drained.
STREAM_BATCH_BYTES = 256 * 1024


class Answers:
    """Answers REQs and COUNTs for the relay's peers."""

    def __init__(
        self,
        store: MlsStore,
        gateway: MlsGateway,
        policy: Policy,
        metrics: RelayMetrics,
        *,
        clock: Callable[[], float],
        max_count: int,
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.policy = policy
        self.metrics = metrics
        self.clock = clock
        self.max_count = max_count
        self._query_seconds = metrics.store_seconds.labels("query")

    async def query(self, peer: Peer, action: Query) -> None:
        """Send ``peer`` the stored events of the REQ it may read, then EOSE; a REQ the
        rules refuse gets CLOSED with their reason."""
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
        raws = (e.raw for e in self._readable(viewer, result))
        await self._send_events(peer, sub, raws, eose=True)

    async def _query_raw(self, peer: Peer, sub: Subscription) -> None:
        """A REQ no rule can refuse, narrow or consume anything of: the stored JSON is
        the answer, unparsed; read on the event loop when the store can answer at once."""
        if is_large(sub.filters):
            await self._query_pages(peer, sub)
            return
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
        await self._send_events(peer, sub, raws, eose=True)

    def _query_failed(self, peer: Peer, sub: Subscription, exc: StoreUnavailable) -> None:
        log.error("store query failed", extra={"error": str(exc)})
        peer.session.unsubscribe(sub.sub_id)
        peer.send(m.encode_closed(sub.sub_id, "error: could not query the store, retry"))

    async def _query_pages(self, peer: Peer, sub: Subscription) -> None:
        """A REQ that may have more than a page of answer (see :mod:`relay.answer_pages`):
        each page is read from the store once the client has read the last one, so the
        connection holds about one page, however large the answer."""
        try:
            pages_read = answer_pages(
                self.store, sub.filters, int(self.clock()), self._query_seconds.observe
            )
            async with aclosing(pages_read) as pages:
                async for page in pages:
                    if not await self._send_events(peer, sub, page):
                        return
                    await peer.drain()
        except StoreUnavailable as exc:
            self._query_failed(peer, sub, exc)
            return
        if peer.is_open and peer.session.is_current(sub):
            peer.send(m.encode_eose(sub.sub_id))

    async def _send_events(
        self, peer: Peer, sub: Subscription, raws: Iterable[bytes], *, eose: bool = False
    ) -> bool:
        """Send ``raws`` as EVENT frames (then EOSE if ``eose``) in batches of about
        :data:`STREAM_BATCH_BYTES`, waiting after each for the client to read while its
        buffer is full (R-P7): a large answer reaches a slow reader instead of dropping it.
        False (and nothing more sent) once the peer is gone or the REQ was replaced or
        closed."""
        if not (peer.is_open and peer.session.is_current(sub)):
            return False
        batch: list[bytes] = []
        size = 0
        for frame in m.encode_events(sub.sub_id, raws):
            if size >= STREAM_BATCH_BYTES:
                peer.send_many(batch)
                batch, size = [], 0
                await peer.drain()
                if not (peer.is_open and peer.session.is_current(sub)):
                    return False
            batch.append(frame)
            size += len(frame)
        if eose:
            batch.append(m.encode_eose(sub.sub_id))
        peer.send_many(batch)
        return True

    def _readable(self, viewer: Viewer, events: Iterable[Event]) -> Iterable[Event]:
        if not self.policy.read_rules:
            return events
        return (e for e in events if self.policy.can_read(e, viewer))

    async def count(self, peer: Peer, action: Count) -> None:
        """Send ``peer`` the NIP-45 COUNT of what it may read, capped at ``max_count``
        (then marked approximate)."""
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
        cap = self.max_count
        peer.send(m.encode_count(action.sub_id, min(total, cap), approximate=total > cap))

    async def _count_readable(self, viewer: Viewer, filters: tuple[Filter, ...], now: int) -> int:
        """How many events matching ``filters`` ``viewer`` may see, counted in the store
        (NIP-45 ignores ``limit``); only rules without scope rules load events, capped."""
        plan = self.policy.count_plan(filters, viewer)
        if plan is None:
            cap = min(MAX_COUNTED_WITH_READ_RULES, self.max_count)
            capped = tuple(replace(f, limit=cap) for f in filters)
            events = await self.store.query(capped, now)
            return sum(1 for e in events if self.policy.can_read_passively(e, viewer))
        total = 0
        for part, sign in ((plan.total, 1), (plan.minus, -1), (plan.plus, 1)):
            if part:
                total += sign * await self.store.count(part, now)
        return max(total, 0)
