"""Run a relay process: build the store, serve, sweep, and drain on SIGTERM/SIGINT (R-C2)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import ExitStack

from relay.app import Relay
from relay.bus.base import Bus
from relay.bus.local import LocalBus
from relay.config import Config
from relay.datalock import DataDirLock
from relay.server import RelayServer
from relay.store.base import MlsStore, StoreUnavailable
from relay.store.guarded import GuardedStore
from relay.store.sqlite import SqliteStore

log = logging.getLogger("relay")

SHUTDOWN_BUDGET_SECONDS = 8.0
SWEEP_INTERVAL_SECONDS = 60.0
CLEAR_INTERVAL_SECONDS = 60.0  # rate_limiter.clear_interval = 0 means this (rnostr)


class UnsupportedBackend(Exception):
    """A configured backend (store or bus) cannot be used as given."""


def build_store(config: Config) -> MlsStore:
    """The event store selected by ``data.backend`` (or ``mls_gateway.storage_backend``),
    behind the fault guard (timeouts and retries, R-S3)."""
    store: MlsStore
    if config.store_backend == "firestore":
        # Imported here, as RedisBus below: a relay on the embedded store never loads the
        # Google Cloud and Redis clients (tens of MB of memory and a slower cold start).
        from relay.store.firestore import FirestoreStore

        store = FirestoreStore(
            config.firestore_project,
            config.data.database,
            archive_ttl=config.mls_gateway.message_archive_ttl_days * 86400,
        )
    else:
        store = SqliteStore(config.sqlite_path, synchronous=config.data.synchronous)
    return GuardedStore(store, timeout=config.data.store_timeout)


def build_bus(config: Config) -> Bus:
    """The Redis bus when ``cluster.redis_url`` is set (R-S2), else the in-process one."""
    if config.cluster.redis_url:
        from relay.bus.redis_bus import RedisBus

        try:
            return RedisBus(config.cluster.redis_url, prefix=config.cluster.prefix)
        except ValueError as exc:  # redis-py's answer to a URL it cannot use
            raise UnsupportedBackend(f"cluster.redis_url: {exc}") from None
    return LocalBus()


def store_scope(config: Config) -> str:
    """Names the database the instances share, for the sweeper lease: one SQLite file
    on one host, or the configured backend's database."""
    if config.store_backend == "sqlite":
        return f"sqlite:{socket.gethostname()}:{config.sqlite_path.resolve()}"
    return f"firestore:{config.firestore_project or ''}/{config.data.database}"


async def _clear_rate_buckets(relay: Relay, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        relay.clear_rate_buckets()


def sweep_interval(config: Config) -> float:
    """How often the sweeper runs: every minute, or twice per last-resort grace period when
    that is shorter, so a due deletion never waits much past its grace (at least 1 s)."""
    grace = config.mls_gateway.last_resort_grace
    return max(1.0, min(SWEEP_INTERVAL_SECONDS, grace / 2))


async def _sweep(relay: Relay, interval: float) -> None:
    while True:
        try:
            await relay.sweep(int(time.time()), lease=3 * interval)
        except StoreUnavailable as exc:
            log.warning("sweep failed; will retry", extra={"error": str(exc)})
        await asyncio.sleep(interval)


async def serve(
    config: Config,
    *,
    store: MlsStore | None = None,
    ready: Callable[[RelayServer], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set), then drain and return.

    With the SQLite store the data directory is locked for the process's life
    (:class:`~relay.datalock.DataDirLocked` when another relay holds it,
    :class:`~relay.datalock.DataPathUnusable` when it cannot be created or its lock file
    opened). Raises
    :class:`StoreUnavailable` if the store cannot be opened and :class:`OSError` if the port
    cannot be bound; "MLS gateway ready" is logged only once the port accepts connections.
    """
    with ExitStack() as held:
        if store is None and config.store_backend == "sqlite":
            held.enter_context(DataDirLock(config.data.path))
        warn_ephemeral_storage(config, os.environ)
        await _serve(config, store or build_store(config), ready, stop or asyncio.Event())


def _sources(config: Config) -> dict[str, str]:
    """Where this relay's settings and data come from, for its start-up lines."""
    data = str(config.sqlite_path) if config.store_backend == "sqlite" else config.store_backend
    return {"config": config.source or "built-in defaults", "data": data}


def warn_ephemeral_storage(config: Config, environ: Mapping[str, str]) -> bool:
    """Log a WARNING when SQLite runs on Cloud Run, where the file dies with the instance."""
    if config.store_backend != "sqlite" or not environ.get("K_SERVICE"):
        return False
    log.warning(
        "SQLite store on Cloud Run: the data lives inside this instance and is lost with "
        "every new revision, restart or scale-in; use the Firestore store "
        '(data.backend = "firestore") for a deployment that keeps its data',
        extra={"service": environ.get("K_SERVICE"), "data_path": str(config.sqlite_path)},
    )
    return True


async def _serve(
    config: Config,
    store: MlsStore,
    ready: Callable[[RelayServer], None] | None,
    stop: asyncio.Event,
) -> None:
    # From here on SIGTERM/SIGINT stop the relay cleanly (R-C2), also while it starts:
    # opening a store that does not answer can take a while.
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    bus = build_bus(config)
    log.info("opening the event store", extra={"store": config.store_backend, **_sources(config)})
    if not await _unless_stopped(store.open(), stop):
        await _stopped_while_starting(store)
        return
    relay = Relay(config, store, bus=bus, sweep_scope=store_scope(config))
    try:
        started = await _unless_stopped(relay.start(), stop)
    except BaseException:
        await relay.close()
        await store.close()
        raise
    if not started:
        await relay.close()
        await _stopped_while_starting(store)
        return
    server = RelayServer(relay)
    try:
        await server.start(config.network.host, config.network.port)
    except OSError:
        await relay.close()
        await store.close()
        raise
    sweeper = asyncio.create_task(_sweep(relay, sweep_interval(config)))
    clearer = asyncio.create_task(
        _clear_rate_buckets(relay, config.rate_limiter.clear_interval or CLEAR_INTERVAL_SECONDS)
    )
    log.info(
        "relay listening",
        extra={
            "host": config.network.host,
            "port": server.port,
            "store": config.store_backend,
            **_sources(config),
            "bus": "redis" if relay.bus.distributed else "local",
            "version": relay.version,
        },
    )
    log.info("MLS gateway ready", extra=relay.gateway.describe())
    if ready is not None:
        ready(server)
    await stop.wait()
    log.info("shutting down: draining connections")
    sweeper.cancel()
    clearer.cancel()
    await server.shutdown(SHUTDOWN_BUDGET_SECONDS - 1.5)
    await relay.close()
    await store.close()
    log.info("relay stopped")


async def _stopped_while_starting(store: MlsStore) -> None:
    await store.close()
    log.info("stopped while starting")


async def _unless_stopped(step: Awaitable[None], stop: asyncio.Event) -> bool:
    """Run ``step`` to its end (True), or cancel it when ``stop`` is set first (False).
    Its errors are raised as they are."""
    task = asyncio.ensure_future(step)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when serve itself is cancelled: no step is left running
        stopped.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        return False
    task.result()
    return True


def run(config: Config) -> None:
    """Blocking entry point for ``mlsgw serve`` (uses uvloop when installed)."""
    try:
        import uvloop

        uvloop.run(serve(config))
    except ImportError:
        asyncio.run(serve(config))
