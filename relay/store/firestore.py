"""The Firestore store (production on Cloud Run, R-S1): events and all MLS state in one
Firestore database shared by every instance.

Uses the async ``google-cloud-firestore`` client. Every read-modify-write runs in a
transaction that the client retries on contention; every query is paginated; Firestore's
own limits (500 writes per transaction, 30 values per ``in``) are handled here. Library
errors become :class:`StoreUnavailable` at this boundary. The emulator is used when
``FIRESTORE_EMULATOR_HOST`` is set (the client reads it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.auth.exceptions import GoogleAuthError
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from relay.core.event import Event, event_from_raw
from relay.core.filters import Filter
from relay.core.outcome import Outcome
from relay.core.reasons import Rejection
from relay.core.replacement import Deletion, deletion_of
from relay.mls import kinds
from relay.mls.groups import GroupState
from relay.store import firestore_mls
from relay.store.base import (
    GroupTransition,
    KeyPackageSaved,
    MlsSweep,
    ServedKeyPackage,
    StoreUnavailable,
)
from relay.store.firestore_docs import (
    DELETIONS,
    EVENTS,
    GROUPS,
    HEALTH,
    KEYPACKAGES,
    MAX_WRITES,
    WRITE_CHECK,
    tombstone_id,
)
from relay.store.firestore_events import (
    Client,
    Transaction,
    Writes,
    count_exactly,
    get_docs,
    plan_deletion,
    plan_save,
    query_filter,
    scan,
    split_deletion,
)

T = TypeVar("T")

TRANSACTION_ATTEMPTS = 5  # the client library's default, stated
CONTENTION_ROUNDS = 6
CONTENTION_BACKOFF = 0.05  # seconds, doubled each round, jittered
DEFAULT_ARCHIVE_TTL = 30 * 86400
# Deleting one event can take two writes (event + key package document).
_DELETES_PER_BATCH = MAX_WRITES // 2


class FirestoreStore:
    """:class:`~relay.store.base.MlsStore` on Cloud Firestore (native mode)."""

    def __init__(
        self,
        project: str | None,
        database: str = "(default)",
        *,
        archive_ttl: int = DEFAULT_ARCHIVE_TTL,
        client_factory: Callable[[], Client] | None = None,
    ) -> None:
        self.project = project
        self.database = database or "(default)"
        self.archive_ttl = archive_ttl
        self._client_factory = client_factory
        self._client: Client | None = None

    # --- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Build the client (no I/O yet: Firestore needs no migrations) and check that
        the database answers."""
        if self._client_factory is not None:
            self._client = self._client_factory()
        else:
            kwargs: dict[str, Any] = {"project": self.project, "database": self.database}
            if os.environ.get("FIRESTORE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                kwargs["credentials"] = AnonymousCredentials()  # type: ignore[no-untyped-call]
                kwargs["project"] = (
                    self.project
                    or os.environ.get("GOOGLE_CLOUD_PROJECT")
                    or os.environ.get("GCLOUD_PROJECT")
                    or "demo-mlsgw"
                )
            try:
                self._client = firestore.AsyncClient(**kwargs)
            except (gexc.GoogleAPIError, GoogleAuthError, ValueError) as exc:
                raise StoreUnavailable(f"cannot build the Firestore client: {exc}") from exc
        await self.health()

    async def close(self) -> None:
        """Release the client's channel."""
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]
            self._client = None

    # --- plumbing ----------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The open client; raises :class:`StoreUnavailable` before ``open``."""
        if self._client is None:
            raise StoreUnavailable("store is not open")
        return self._client

    @asynccontextmanager
    async def _translated(self, what: str) -> AsyncIterator[None]:
        try:
            yield
        except (gexc.GoogleAPIError, GoogleAuthError) as exc:  # auth: token refresh failed
            raise StoreUnavailable(f"firestore {what} failed: {exc}") from exc
        except ValueError as exc:  # the client's "failed to commit in N attempts"
            raise StoreUnavailable(f"firestore {what} failed: {exc}") from exc

    async def _transaction(self, what: str, body: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``body`` in a transaction. The client library retries a commit that lost a
        race (keeping its place in line); when a whole round of those attempts fails,
        or a read inside the transaction is aborted, the transaction is run again after
        a jittered backoff, a bounded number of times."""

        @firestore.async_transactional
        async def run(transaction: Transaction) -> T:
            return await body(transaction)

        for round_ in range(CONTENTION_ROUNDS):
            try:
                async with self._translated(what):
                    return await run(self.client.transaction(max_attempts=TRANSACTION_ATTEMPTS))
            except StoreUnavailable as exc:
                if round_ + 1 == CONTENTION_ROUNDS or not _contended(exc):
                    raise
            await asyncio.sleep(CONTENTION_BACKOFF * 2**round_ * (0.5 + random.random()))
        raise AssertionError("unreachable")  # pragma: no cover - for mypy

    async def _delete_events(self, event_ids: Sequence[str]) -> int:
        """Delete events (and their key package documents) in batches; returns how many
        events existed."""
        client = self.client
        removed = 0
        for start in range(0, len(event_ids), _DELETES_PER_BATCH):
            chunk = list(event_ids[start : start + _DELETES_PER_BATCH])
            refs = [client.collection(EVENTS).document(i) for i in chunk]
            removed += len(await get_docs(client, refs))
            batch = client.batch()
            for event_id in chunk:
                batch.delete(client.collection(EVENTS).document(event_id))
                batch.delete(client.collection(KEYPACKAGES).document(event_id))
            await batch.commit()
        return removed

    async def _ids(self, query: Any) -> list[str]:
        return [snap.id async for snap in scan(query)]

    # --- EventStore --------------------------------------------------------------------

    async def save(self, event: Event, now: int) -> Outcome:
        """See :meth:`relay.store.base.EventStore.save`. A deletion naming more targets
        than one transaction can write applies its earlier parts first (idempotent), and
        stores itself with the last part: a retry after a failure completes it."""
        return await self._save(event, expires_at=event.expiration)

    async def save_many(
        self, events: Sequence[Event], now: int
    ) -> list[Outcome | StoreUnavailable]:
        """See :meth:`relay.store.base.EventStore.save_many`: one transaction per event,
        one after the other (exactly the order of separate saves)."""
        results: list[Outcome | StoreUnavailable] = []
        for event in events:
            try:
                results.append(await self.save(event, now))
            except StoreUnavailable as exc:
                results.append(exc)
        return results

    async def _save(self, event: Event, *, expires_at: int | None) -> Outcome:
        client = self.client
        deletion = deletion_of(event)
        parts: list[Deletion | None] = (
            [None] if deletion is None else list(split_deletion(deletion))
        )
        if len(parts) > 1 and await self._refused_outright(event):
            parts = parts[-1:]  # the final transaction answers DUPLICATE or DELETED
        for part in parts[:-1]:
            assert part is not None

            async def apply_part(transaction: Transaction, part: Deletion = part) -> None:
                writes = Writes()
                await plan_deletion(client, transaction, part, writes)
                writes.apply(transaction)

            await self._transaction("deletion", apply_part)

        async def body(transaction: Transaction) -> Outcome:
            outcome, writes = await plan_save(
                client,
                transaction,
                event,
                expires_at=expires_at,
                archive_ttl=self.archive_ttl,
                deletion_part=parts[-1],
            )
            if outcome is Outcome.STORED:
                writes.apply(transaction)
            return outcome

        return await self._transaction("save", body)

    async def _refused_outright(self, event: Event) -> bool:
        """True if ``event`` is already stored or tombstoned (checked before the parts of
        a large deletion, so a refused deletion deletes nothing)."""
        refs = [
            self.client.collection(EVENTS).document(event.id),
            self.client.collection(DELETIONS).document(tombstone_id(event.pubkey, event.id)),
        ]
        async with self._translated("save"):
            return bool(await get_docs(self.client, refs))
        raise AssertionError("unreachable")  # pragma: no cover - for mypy

    async def query(
        self, filters: Sequence[Filter], now: int, *, oldest_first: bool = False
    ) -> list[Event]:
        """See :meth:`relay.store.base.EventStore.query`."""
        raws = await self.query_raw(filters, now, oldest_first=oldest_first)
        return [event_from_raw(raw) for raw in raws]

    async def query_raw(
        self, filters: Sequence[Filter], now: int, *, oldest_first: bool = False
    ) -> list[bytes]:
        """See :meth:`relay.store.base.EventStore.query_raw`."""
        found: dict[str, tuple[int, bytes]] = {}
        async with self._translated("query"):
            for f in filters:
                found.update(await query_filter(self.client, f, now, oldest_first=oldest_first))
        sign = 1 if oldest_first else -1
        ordered = sorted(found.items(), key=lambda item: (sign * item[1][0], item[0]))
        return [raw for _, (_, raw) in ordered]

    def query_raw_now(self, filters: Sequence[Filter], now: int) -> list[bytes] | None:
        """Always None: every Firestore read is a network round trip."""
        return None

    async def count(self, filters: Sequence[Filter], now: int) -> int:
        """See :meth:`relay.store.base.EventStore.count`. One filter that Firestore can
        evaluate entirely is counted by aggregation queries; otherwise (a union needs
        distinct ids, or checks Firestore cannot run) by a paginated scan of ids."""
        async with self._translated("count"):
            if len(filters) == 1:
                counted = await count_exactly(self.client, filters[0], now)
                if counted is not None:
                    return counted
            seen: set[str] = set()
            for f in filters:
                unlimited = dataclasses.replace(f, limit=None)
                seen.update(await query_filter(self.client, unlimited, now, oldest_first=True))
            return len(seen)
        raise AssertionError("unreachable")  # pragma: no cover - for mypy

    async def delete_expired(self, now: int) -> int:
        """See :meth:`relay.store.base.EventStore.delete_expired`."""
        query = self.client.collection(EVENTS).where(filter=FieldFilter("expires_at", "<=", now))
        async with self._translated("delete_expired"):
            return await self._delete_events(await self._ids(query))
        raise AssertionError("unreachable")  # pragma: no cover - for mypy

    async def health(self) -> None:
        """See :meth:`relay.store.base.EventStore.health`: one document read."""
        async with self._translated("health check"):
            await self.client.collection(GROUPS).document("health-probe").get()

    async def check_write(self) -> None:
        """See :meth:`relay.store.base.EventStore.check_write`: one commit that sets the
        document ``relay_health/write-check`` to the current time, in a collection of its
        own that no query, count, sweep or group load reads."""
        document = self.client.collection(HEALTH).document(WRITE_CHECK)
        async with self._translated("write check"):
            await document.set({"checked_at": int(time.time())})

    # --- MlsStore ----------------------------------------------------------------------

    async def save_keypackage(
        self, event: Event, *, expires_at: int, max_per_owner: int, grace: int, now: int
    ) -> KeyPackageSaved:
        """See :meth:`relay.store.base.MlsStore.save_keypackage`."""
        client = self.client

        async def body(transaction: Transaction) -> KeyPackageSaved:
            return await firestore_mls.save_keypackage(
                client,
                transaction,
                event,
                expires_at=expires_at,
                max_per_owner=max_per_owner,
                grace=grace,
                now=now,
                archive_ttl=self.archive_ttl,
            )

        return await self._transaction("save_keypackage", body)

    async def take_keypackages(
        self,
        authors: Sequence[str],
        *,
        per_author: int,
        consume: bool,
        now: int,
        where: Filter | None = None,
    ) -> list[ServedKeyPackage]:
        """See :meth:`relay.store.base.MlsStore.take_keypackages` (authors in groups of
        :data:`~relay.store.firestore_mls.AUTHORS_PER_TRANSACTION`, one transaction each)."""
        client = self.client
        unique = list(dict.fromkeys(authors))
        served: list[ServedKeyPackage] = []
        step = firestore_mls.AUTHORS_PER_TRANSACTION
        for start in range(0, len(unique), step):
            group = unique[start : start + step]

            async def body(
                transaction: Transaction, group: list[str] = group
            ) -> list[ServedKeyPackage]:
                return await firestore_mls.take_keypackages(
                    client,
                    transaction,
                    group,
                    per_author=per_author,
                    consume=consume,
                    now=now,
                    where=where,
                )

            served += await self._transaction("take_keypackages", body)
        return served

    async def save_group_event(
        self, event: Event, transition: GroupTransition, now: int
    ) -> tuple[Outcome | Rejection, GroupState | None]:
        """See :meth:`relay.store.base.MlsStore.save_group_event`."""
        client = self.client

        async def body(transaction: Transaction) -> tuple[Outcome | Rejection, GroupState | None]:
            return await firestore_mls.save_group_event(
                client, transaction, event, transition, now, self.archive_ttl
            )

        return await self._transaction("save_group_event", body)

    async def load_groups(self) -> list[GroupState]:
        """See :meth:`relay.store.base.MlsStore.load_groups` (paginated)."""
        query = self.client.collection(GROUPS)
        async with self._translated("load_groups"):
            return [
                firestore_mls.group_from_doc(snap.to_dict() or {})
                async for snap in scan(query)
                if "state" in (snap.to_dict() or {})
            ]
        raise AssertionError("unreachable")  # pragma: no cover - for mypy

    async def sweep_mls(self, now: int, archive_before: int) -> MlsSweep:
        """See :meth:`relay.store.base.MlsStore.sweep_mls`."""
        keypackages = self.client.collection(KEYPACKAGES)
        events = self.client.collection(EVENTS)
        async with self._translated("sweep"):
            due = await self._ids(keypackages.where(filter=FieldFilter("delete_at", "<=", now)))
            last_resort = await self._delete_events(due)
            expired = await self._ids(
                keypackages.where(filter=FieldFilter("expires_at", "<=", now))
            )
            expired_count = await self._delete_events(expired)
            old = await self._ids(
                events.where(filter=FieldFilter("kind", "in", sorted(kinds.ARCHIVED)))
                .where(filter=FieldFilter("created_at", "<", archive_before))
                .order_by("created_at")
            )
            archived = await self._delete_events(old)
            return MlsSweep(archived, expired_count, last_resort)
        raise AssertionError("unreachable")  # pragma: no cover - for mypy


def _contended(exc: StoreUnavailable) -> bool:
    """True if the transaction failed because another one held or changed its documents."""
    cause = exc.__cause__
    return isinstance(cause, gexc.Aborted) or (
        isinstance(cause, ValueError) and isinstance(cause.__cause__, gexc.Aborted)
    )
