"""Shared fixtures: an in-process relay on 127.0.0.1:0 and real WebSocket clients."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("NO_GCE_CHECK", "true")
os.environ.setdefault("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/mlsgw-tests-use-no-adc")

from relay.app import Relay  # noqa: E402
from relay.config import Config, load_config  # noqa: E402
from relay.server import RelayServer  # noqa: E402
from relay.store.sqlite import SqliteStore  # noqa: E402
from tests.support.firestore_emulator import (  # noqa: E402
    EmulatorMissing,
    FirestoreEmulator,
    start_emulator,
)
from tests.support.nostr import RelayClient  # noqa: E402


def make_config(data_dir: Path, **sections: dict[str, Any]) -> Config:
    """A Config with ``data.path`` in ``data_dir`` and the given per-section overrides,
    e.g. ``make_config(tmp, auth={"pubkey_whitelist": ("ab…",)})``."""
    base = load_config(None, {"MLSGW_CONFIG": ""})
    base = dataclasses.replace(
        base,
        data=dataclasses.replace(base.data, path=str(data_dir)),
        network=dataclasses.replace(base.network, host="127.0.0.1", port=0),
    )
    for name, overrides in sections.items():
        base = dataclasses.replace(
            base, **{name: dataclasses.replace(getattr(base, name), **overrides)}
        )
    return base


class RunningRelay:
    """A relay serving in the test's event loop."""

    def __init__(self, relay: Relay, server: RelayServer) -> None:
        self.relay = relay
        self.server = server

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def public_url(self) -> str:
        """The URL clients name in AUTH: ``information.relay_url``, else the local one."""
        return self.relay.config.information.relay_url or self.url

    async def client(self, **kwargs: Any) -> RelayClient:
        kwargs.setdefault("relay_url", self.public_url)
        return await RelayClient.open(self.url, **kwargs)


StartRelay = Callable[..., Any]


@pytest.fixture
async def start_relay(tmp_path: Path) -> AsyncIterator[StartRelay]:
    """Factory: ``await start_relay(config=None, store=None, clock=None, bus=None)`` ->
    :class:`RunningRelay` (``clock`` replaces ``time.time`` for the relay's decisions;
    ``bus`` defaults to the relay's own in-process bus)."""
    started: list[tuple[RelayServer, Any]] = []

    async def start(
        config: Config | None = None,
        store: Any = None,
        clock: Callable[[], float] | None = None,
        bus: Any = None,
    ) -> RunningRelay:
        config = config or make_config(tmp_path / f"data{len(started)}")
        store = store or SqliteStore(config.sqlite_path)
        await store.open()
        options: dict[str, Any] = {"bus": bus}
        if clock is not None:
            options["clock"] = clock
        relay = Relay(config, store, **options)
        await relay.start()
        server = RelayServer(relay)
        await server.start("127.0.0.1", 0)
        started.append((server, store))
        return RunningRelay(relay, server)

    yield start
    for server, store in started:
        await server.shutdown(2.0)
        await server.relay.close()
        await store.close()


@pytest.fixture
async def running(start_relay: StartRelay) -> RunningRelay:
    """A relay with the default configuration."""
    result: RunningRelay = await start_relay()
    return result


# --- Firestore emulator (one per session, data reset between tests) ------------------------


def _start_emulator_or_fail() -> FirestoreEmulator:
    problem = ""
    try:
        return start_emulator()
    except EmulatorMissing as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    """The session's Firestore emulator; fails (never skips) when none is installed."""
    emulator = _start_emulator_or_fail()
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
    try:
        yield emulator
    finally:
        emulator.stop()
        if previous is None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = previous


@pytest.fixture
def firestore(
    firestore_emulator: FirestoreEmulator, request: pytest.FixtureRequest
) -> FirestoreEmulator:
    """The shared emulator, emptied for this test (``FIRESTORE_EMULATOR_HOST`` points at it).

    Tests marked ``official_firestore_only`` are skipped on the npm fallback, which has
    no transaction isolation.
    """
    if request.node.get_closest_marker("official_firestore_only") and not (
        firestore_emulator.official
    ):
        pytest.skip("needs the official Firestore emulator (transaction isolation)")
    firestore_emulator.reset()
    return firestore_emulator


@pytest.fixture
def private_firestore() -> Iterator[FirestoreEmulator]:
    """An emulator of this test's own, for tests that pause, stop or restart it."""
    emulator = _start_emulator_or_fail()
    try:
        yield emulator
    finally:
        emulator.stop()
