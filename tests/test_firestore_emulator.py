"""tests.support.firestore_emulator: the emulator fixture the Firestore tests share."""

from __future__ import annotations

from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from tests.support.firestore_emulator import FirestoreEmulator


def _client(emulator: FirestoreEmulator) -> firestore.AsyncClient:
    return firestore.AsyncClient(project=emulator.project, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]


async def test_the_emulator_stores_documents_and_reset_empties_it(
    firestore: FirestoreEmulator,
) -> None:
    """A document written over gRPC reads back; after reset() it is gone."""
    client = _client(firestore)
    ref = client.collection("probe").document("one")
    await ref.set({"n": 1})
    assert (await ref.get()).to_dict() == {"n": 1}
    firestore.reset()
    assert not (await ref.get()).exists
    client.close()  # type: ignore[no-untyped-call]
