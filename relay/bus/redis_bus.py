"""The Redis bus (cluster mode): pub/sub for messages, keys and Lua for shared counters.

Why pub/sub and not streams: fan-out is live delivery only, the store is the record.
A stream would need trimming and one cursor per instance, and Cloud Run instances come
and go; what a stream could replay after an outage was never published on it anyway
(the publisher could not reach Redis either). Subscribers catch up from the store with
``REQ … since`` — the same path as any client reconnecting.

One connection holds the subscription and is re-established with exponential backoff
(and jitter) whenever it fails; meanwhile :meth:`RedisBus.publish` answers False at
once, so the relay fans out locally without waiting for Redis on every event.

What queues while a publish is out goes in the next round trip as one bundle
(:func:`relay.bus.wire.encode_bundle`): one PUBLISH, and one message for every instance
to receive (and the sender to skip), instead of one per event. Versions before bundles
would drop them, so bundles go out only while every subscriber of the bus channel also
listens on a marker channel: a script counts both (``PUBSUB NUMSUB``) and publishes the
bundles in the same atomic step, or publishes nothing, and the messages then go one by one.
During a rollout from such a version, or a rollback to one, instances therefore publish
message by message, and an older instance that subscribes at any moment misses nothing.
Between two counts (on subscribing, then every ``bundle_check_interval`` seconds) an
instance that was told bundles are not read sends plain messages without asking.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoPermissionError, RedisError, ResponseError

from relay.bus import wire
from relay.bus.base import Bucket, BusStatus, BusUnavailable, Receiver, Resync

log = logging.getLogger("relay.bus")

# A bundle holds at most this many bytes of messages (one message above it goes alone).
BUNDLE_MAX_BYTES = 1024 * 1024

# KEYS: bucket keys; ARGV: capacity and period of each, in order. Server time, so the
# instances' clocks do not matter. Returns 0, or the 1-based index of an empty bucket.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local found = {}
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[2 * i - 1])
  local rate = capacity / tonumber(ARGV[2 * i])
  local b = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(b[1])
  if tokens == nil then
    tokens = capacity
  else
    tokens = math.min(capacity, tokens + math.max(0, now - tonumber(b[2])) * rate)
  end
  if tokens < 1 then return i end
  found[i] = {tokens - 1, rate, capacity}
end
for i, key in ipairs(KEYS) do
  local tokens, rate, capacity = found[i][1], found[i][2], found[i][3]
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((capacity - tokens) / rate * 1000) + 1000)
end
return 0
"""

# KEYS[1]: the lease; ARGV: holder id, ttl in ms. 1 if ARGV[1] holds it afterwards.
_LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# ARGV: the bus channel, the marker channel, then the messages to publish on the bus. They
# go out only if every subscriber of the bus channel also listens on the marker channel
# (reads bundles); 1 if published, 0 if nothing was. One step: no subscriber can come in
# between the count and the PUBLISHes.
_PUBLISH_IF_READ = """
local counts = redis.call('PUBSUB', 'NUMSUB', ARGV[1], ARGV[2])
if counts[2] ~= counts[4] then return 0 end
for i = 3, #ARGV do redis.call('PUBLISH', ARGV[1], ARGV[i]) end
return 1
"""


class RedisBus:
    """:class:`relay.bus.base.Bus` over one Redis (Memorystore) instance."""

    distributed = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "mlsgw",
        timeout: float = 1.0,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
        bundle_check_interval: float = 10.0,
    ) -> None:
        self.origin = uuid.uuid4().hex
        self.prefix = prefix
        self.channel = f"{prefix}:bus"
        # Subscribed to (never published on) by instances that read bundles.
        self.bundle_channel = f"{prefix}:bus:bundles"
        self.bundle_check_interval = bundle_check_interval
        self.bundles = False  # whether every subscriber reads bundles (last check)
        self._bundles_refused = False  # Redis would not run the bundle script: never again
        self._refused_scripts: set[str] = set()  # scripts this user may not run (logged)
        self._bundles_checked = 0.0
        self.timeout = timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        # Retries are ours (backoff in the listener, local fallback for the rest): the
        # client's own would hold every event's OK while Redis is down.
        self.client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._take = self.client.register_script(_TAKE)
        self._lead = self.client.register_script(_LEAD)
        self._publish_if_read = self.client.register_script(_PUBLISH_IF_READ)
        self._connected = False
        self._listener: asyncio.Task[None] | None = None
        # Messages waiting for the next round trip, and the task that sends them.
        self._outbox: list[tuple[Sequence[bytes], asyncio.Future[bool]]] = []
        self._sender: asyncio.Task[None] | None = None
        self.reconnects = 0

    # --- messages ------------------------------------------------------------------------

    def reaches_others(self) -> bool:
        """Always: any number of instances may be subscribed to the channel."""
        return True

    async def start(self, receive: Receiver, resync: Resync) -> None:
        """Subscribe (waiting at most one attempt) and keep the subscription alive."""
        first = asyncio.get_running_loop().create_future()
        self._listener = asyncio.create_task(self._listen(receive, resync, first))
        await asyncio.wait({first, self._listener}, return_when=asyncio.FIRST_COMPLETED)

    async def _listen(self, receive: Receiver, resync: Resync, first: asyncio.Future[None]) -> None:
        delay = self.min_backoff
        lost = False
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel, self.bundle_channel)
                self._connected = True
                await self.check_bundles()
                delay = self.min_backoff
                if lost:
                    self.reconnects += 1
                    log.warning("bus reconnected; reloading shared state")
                    await self._resync(resync)
                else:
                    log.info("bus connected", extra={"channel": self.channel})
                if not first.done():
                    first.set_result(None)
                await self._pump(pubsub, receive)
            except (RedisError, OSError) as exc:
                if self._connected or not lost:
                    log.error("bus connection lost; fanning out locally", extra={"error": str(exc)})
                lost = True
                self._connected = False
            finally:
                await _close_quietly(pubsub)
            # Pooled connections to a Redis that went away would each fail once after it
            # is back (and flap the bus): start from fresh ones.
            await _disconnect_quietly(self.client)
            if not first.done():
                first.set_result(None)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.max_backoff)

    async def _pump(self, pubsub: PubSub, receive: Receiver) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._connected:
                raise BusLost("a bus command failed")
            if loop.time() - self._bundles_checked >= self.bundle_check_interval:
                await self.check_bundles()
            message = await pubsub.get_message(timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            data = message["data"]
            if not wire.is_bundle(data):
                _hand_over(receive, data)
            elif not wire.sent_by(data, self.origin):
                try:
                    messages = wire.unbundle(data)
                except wire.MalformedMessage as exc:
                    log.error("ignoring a malformed bus bundle", extra={"error": str(exc)})
                    continue
                for one in messages:
                    _hand_over(receive, one)

    async def check_bundles(self) -> bool:
        """Whether to send bundles: every subscriber of the bus channel reads them, asked
        of Redis now, and Redis has never refused the bundle script (kept in
        :attr:`bundles`; False if Redis does not answer)."""
        self._bundles_checked = asyncio.get_running_loop().time()
        try:
            counts = dict(await self.client.pubsub_numsub(self.channel, self.bundle_channel))
        except (RedisError, OSError) as exc:
            log.warning("could not count bus subscribers", extra={"error": str(exc)})
            self.bundles = False
            return False
        readers = counts.get(self.bundle_channel.encode(), 0)
        everyone_reads = counts.get(self.channel.encode(), 0) == readers > 0
        self.bundles = everyone_reads and not self._bundles_refused
        return self.bundles

    async def _resync(self, resync: Resync) -> None:
        try:
            await resync()
        except Exception as exc:
            log.error("reload after bus reconnection failed", extra={"error": str(exc)})

    async def publish(self, message: bytes) -> bool:
        """PUBLISH on the bus channel; False (at once while disconnected) on failure."""
        return await self.publish_many((message,))

    async def publish_many(self, messages: Sequence[bytes]) -> bool:
        """PUBLISH each of ``messages`` on the bus channel, in order; False (at once while
        disconnected) if any failed.

        Publishes from every connection share round trips: what is queued while one
        round trip is out goes in the next, as one pipeline on one connection, so the
        order of the queue is the order on the bus."""
        if not messages:
            return True
        if not self._connected:
            return False
        sent: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._outbox.append((messages, sent))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_outbox())
        return await sent

    async def _send_outbox(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, []
            ok = False
            try:
                ok = self._connected and await self._send([m for q, _ in batch for m in q])
            finally:  # even cancelled, no caller waits forever
                for _, sent in batch:
                    if not sent.done():  # its caller may have been cancelled
                        sent.set_result(ok)

    async def _send(self, messages: list[bytes]) -> bool:
        try:
            if len(messages) > 1 and self.bundles:
                if await self._publish_bundles(messages):
                    return True
            if len(messages) == 1:
                await self.client.publish(self.channel, messages[0])
            else:
                async with self.client.pipeline(transaction=False) as pipe:
                    for message in messages:
                        pipe.publish(self.channel, message)
                    await pipe.execute()
        except (RedisError, OSError) as exc:
            self._lost(exc)
            return False
        except Exception:  # publish never raises: these events reach local subscribers only
            log.exception("bus publish failed")
            return False
        return True

    async def _publish_bundles(self, messages: list[bytes]) -> bool:
        """Publish ``messages`` bundled if every subscriber reads bundles (one atomic
        script) and answer True; otherwise publish nothing and answer False, with bundles
        off until the next count (for good if Redis refuses the script, as
        :func:`refuses_command` tells)."""
        bundled = _bundled(self.origin, messages)
        args: list[str | bytes] = [self.channel, self.bundle_channel, *bundled]
        try:
            if int(await self._publish_if_read(keys=[], args=args)) == 1:
                return True
            log.info("a bus subscriber reads no bundles; publishing message by message")
        except ResponseError as exc:
            if refuses_command(exc):
                # Asking again gets the same answer: the bus goes on without bundles.
                log.error(
                    "Redis refuses the bundle script; publishing message by message from now on",
                    extra={"error": str(exc)},
                )
                self._bundles_refused = True
            else:  # e.g. BUSY while another script runs: plain messages until the next count
                log.warning("the bundle script failed", extra={"error": str(exc)})
        self.bundles = False
        return False

    def _refused(self, what: str, exc: BaseException) -> BusUnavailable:
        """Redis answered, but will not run ``what``'s script for this client (see
        :func:`refuses_command`): the bus itself works and stays up, only this shared
        state falls back to the instance's own. Logged once per script."""
        if what not in self._refused_scripts:
            self._refused_scripts.add(what)
            log.error(
                "Redis refuses a script; what it shares now holds per instance",
                extra={"script": what, "error": str(exc)},
            )
        return BusUnavailable(f"{what}: Redis refuses the script: {exc}")

    def _lost(self, exc: BaseException) -> None:
        if self._connected:
            log.error("bus command failed; fanning out locally", extra={"error": str(exc)})
        self._connected = False

    # --- shared state --------------------------------------------------------------------

    async def take(self, buckets: Sequence[Bucket]) -> int | None:
        """Token buckets in Redis, checked and taken in one script (atomic)."""
        if not buckets:
            return None
        args: list[str | float] = []
        for bucket in buckets:
            args += [str(bucket.capacity), repr(float(bucket.period))]
        keys = [f"{self.prefix}:rl:{b.key}" for b in buckets]
        try:
            empty = int(await self._take(keys=keys, args=args))
        except (RedisError, OSError) as exc:
            if refuses_command(exc):
                raise self._refused("rate limit", exc) from exc
            self._lost(exc)
            raise BusUnavailable(f"rate limit check failed: {exc}") from exc
        return None if empty == 0 else empty - 1

    async def first_use(self, key: str, ttl: int) -> bool:
        """``SET key NX EX ttl``: only the first caller, on any instance, sets it."""
        try:
            created = await self.client.set(f"{self.prefix}:once:{key}", b"1", nx=True, ex=ttl)
        except (RedisError, OSError) as exc:
            self._lost(exc)
            raise BusUnavailable(f"one-time key check failed: {exc}") from exc
        return bool(created)

    async def lead(self, role: str, ttl: float) -> bool:
        """A lease key holding this instance's origin, renewed by its holder."""
        try:
            held = await self._lead(
                keys=[f"{self.prefix}:lease:{role}"], args=[self.origin, int(ttl * 1000)]
            )
        except (RedisError, OSError) as exc:
            if refuses_command(exc):
                raise self._refused("lease", exc) from exc
            self._lost(exc)
            raise BusUnavailable(f"lease renewal failed: {exc}") from exc
        return int(held) == 1

    # --- health --------------------------------------------------------------------------

    def status(self) -> BusStatus:
        """``ok`` while subscribed, else ``unhealthy``."""
        return "ok" if self._connected else "unhealthy"

    async def health(self) -> BusStatus:
        """``ok`` if subscribed and Redis answers PING within the timeout."""
        if not self._connected:
            return "unhealthy"
        try:
            await asyncio.wait_for(self.client.ping(), self.timeout)
        except (RedisError, OSError, TimeoutError) as exc:
            self._lost(exc)
            return "unhealthy"
        return "ok"

    async def close(self) -> None:
        """Stop the listener and close the connections."""
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)
        self._connected = False
        await self.client.aclose()


def _hand_over(receive: Receiver, data: bytes) -> None:
    try:
        receive(data)
    except Exception:
        log.exception("bus message could not be handled")


def refuses_command(exc: BaseException) -> bool:
    """Whether Redis answered ``exc`` because it will not run the command for this client,
    not because it is down or failing over: an ACL user without the permission
    (``NOPERM``), or a command renamed away or disabled with ``rename-command`` ("unknown
    command"). Asking again gets the same answer, so reconnecting would not help."""
    if isinstance(exc, NoPermissionError):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith("unknown command")


def _bundled(origin: str, messages: Sequence[bytes]) -> list[bytes]:
    """``messages`` in order, runs of them packed into bundles of at most
    :data:`BUNDLE_MAX_BYTES` (a run of one stays a plain message)."""
    runs: list[list[bytes]] = [[]]
    size = 0
    for message in messages:
        if runs[-1] and size + len(message) > BUNDLE_MAX_BYTES:
            runs.append([])
            size = 0
        runs[-1].append(message)
        size += len(message)
    return [wire.encode_bundle(origin, run) if len(run) > 1 else run[0] for run in runs if run]


class BusLost(RedisError):
    """Raised inside the listener when a command found Redis gone: resubscribe."""


async def _disconnect_quietly(client: Redis) -> None:
    try:
        await client.connection_pool.disconnect()
    except (RedisError, OSError):
        pass


async def _close_quietly(pubsub: PubSub) -> None:
    try:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    except (RedisError, OSError):
        pass
