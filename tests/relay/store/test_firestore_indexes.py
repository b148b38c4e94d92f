"""config/firestore.indexes.json: every composite index the Firestore store's queries
need is declared (and none is stale), and the TTL policies cover expiry and the archive."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from relay.core.filters import Filter
from relay.store.firestore_docs import QueryPlan, archive_plans, plan_query

INDEXES = Path(__file__).resolve().parents[3] / "config" / "firestore.indexes.json"
KEY = "a" * 64


def declared() -> tuple[set[tuple[tuple[str, str], ...]], list[dict[str, Any]]]:
    document = json.loads(INDEXES.read_text())
    indexes = set()
    for index in document["indexes"]:
        assert index["collectionGroup"] == "events" and index["queryScope"] == "COLLECTION"
        indexes.add(
            tuple((f["fieldPath"], f.get("order") or f["arrayConfig"]) for f in index["fields"])
        )
    return indexes, document["fieldOverrides"]


def every_filter_shape() -> list[Filter]:
    """Each combination of the fields a filter can constrain (values do not matter to
    the plan, only which fields are present and how many values they hold)."""
    shapes = []
    options: list[list[dict[str, Any]]] = [
        [{}, {"authors": frozenset({KEY})}, {"authors": frozenset({KEY, "b" * 64})}],
        [{}, {"kinds": frozenset({1})}, {"kinds": frozenset({1, 7})}],
        [
            {},
            {"tags": (("e", frozenset({KEY})),)},
            {"tags": (("p", frozenset({KEY})), ("t", frozenset({"x"})))},
        ],
        [{}, {"since": 1}],
        [{}, {"until": 2}],
        [{}, {"limit": 10}],
    ]
    for combo in itertools.product(*options):
        fields: dict[str, Any] = {}
        for part in combo:
            fields.update(part)
        shapes.append(Filter(**fields))
    return shapes


def every_plan() -> list[QueryPlan]:
    plans = [plan_query(f, oldest_first=o) for f in every_filter_shape() for o in (False, True)]
    return plans + list(archive_plans())


def needed_indexes() -> set[tuple[tuple[str, str], ...]]:
    """The indexes of every query plan and of the aggregation counts of exact plans."""
    needed = set()
    for plan in every_plan():
        needed.add(plan.index_fields())
        if plan.exact:
            needed.update(plan.count_index_fields())
    return needed - {()}


def test_every_query_of_the_store_has_its_composite_index() -> None:
    """Each plan's index (equality/in fields, then created_at in its order) and each
    count's index (then expires_at) is declared."""
    indexes, _ = declared()
    needed = needed_indexes()
    missing = needed - indexes
    assert not missing, f"add to {INDEXES.name}: {sorted(missing)}"


def test_no_declared_index_is_unused() -> None:
    """Every declared index serves some query (stale indexes cost writes)."""
    indexes, _ = declared()
    assert indexes <= needed_indexes(), sorted(indexes - needed_indexes())


def test_ttl_policies_cover_event_expiry_the_archive_and_keypackages() -> None:
    """TTL on events.expire_at (NIP-40 and archive deadline) and keypackages.expire_at;
    the raw event bytes are exempt from indexing."""
    _, overrides = declared()
    ttl = {(o["collectionGroup"], o["fieldPath"]) for o in overrides if o.get("ttl")}
    assert ttl == {("events", "expire_at"), ("keypackages", "expire_at")}
    assert {"collectionGroup": "events", "fieldPath": "raw", "indexes": []} in overrides


def test_plans_never_put_more_than_30_values_in_one_clause() -> None:
    """A filter with 1000 authors is split into chunks Firestore accepts."""
    plan = plan_query(Filter(authors=frozenset(f"{i:064x}" for i in range(1000))))
    assert plan.field == "pubkey" and all(len(chunk) <= 30 for chunk in plan.chunks)
    assert sum(len(chunk) for chunk in plan.chunks) == 1000
