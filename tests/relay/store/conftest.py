"""The store contract's backends: every contract test runs once per store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay.store.base import MlsStore
from relay.store.firestore import FirestoreStore
from relay.store.sqlite import SqliteStore
from tests.support.firestore_emulator import FirestoreEmulator

BACKENDS = ("sqlite", "firestore")


def firestore_store(emulator: FirestoreEmulator) -> FirestoreStore:
    """A Firestore store on ``emulator`` (``FIRESTORE_EMULATOR_HOST`` is already set)."""
    return FirestoreStore(emulator.project)


@pytest.fixture(params=BACKENDS)
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MlsStore]:
    """An open, empty store of each backend in turn; closed afterwards."""
    store: MlsStore
    if request.param == "sqlite":
        store = SqliteStore(tmp_path / "relay.db")
    else:
        store = firestore_store(request.getfixturevalue("firestore"))
    await store.open()
    try:
        yield store
    finally:
        await store.close()
