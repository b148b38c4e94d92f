"""The document-count adapter drives the real ``firestore_v1`` client (REST) against the
stand-in: collections listed across pages, one COUNT aggregation each, errors translated."""

from __future__ import annotations

import json
import re

import pytest

from mlsgw import errors
from mlsgw.gcp.clients import Cloud
from mlsgw.gcp.firestore_documents import count_request
from mlsgw.target import Target
from tests.mlsgw.conftest import PROJECT
from tests.stand_ins.google import GoogleStandIn

DOCS = re.escape(f"/v1/projects/{PROJECT}/databases/restored-1/documents")


def cloud_for(google: GoogleStandIn) -> Cloud:
    return Cloud(Target(project=PROJECT, endpoint=google.url, timeout=5))


def test_documents_are_counted_per_top_level_collection_on_the_server(
    google: GoogleStandIn,
) -> None:
    """Every collection gets one COUNT aggregation; empty collections do not exist."""
    google.backups.add_database(
        PROJECT, "restored-1", collections={"events": 40, "groups": 2, "gone": 0}
    )
    counts = (
        cloud_for(google)
        .firestore_documents()
        .count_documents(f"projects/{PROJECT}/databases/restored-1")
    )
    assert counts == {"events": 40, "groups": 2}
    sent = [
        json.loads(c.raw)["structuredAggregationQuery"]
        for c in google.server.calls("POST", DOCS + ":runAggregationQuery")
    ]
    assert [q["structuredQuery"]["from"] for q in sent] == [
        [{"collectionId": "events"}],
        [{"collectionId": "groups"}],
    ]
    assert all("count" in q["aggregations"][0] for q in sent)


def test_many_collections_are_listed_across_pages(google: GoogleStandIn) -> None:
    """The pager follows nextPageToken, so no collection is left uncounted."""
    collections = {f"c{i:03d}": i + 1 for i in range(5)}
    google.backups.add_database(PROJECT, "restored-1", collections=collections)
    google.documents.page_size = 2
    api = cloud_for(google).firestore_documents()
    assert api.count_documents(f"projects/{PROJECT}/databases/restored-1") == collections
    assert len(google.server.calls("POST", DOCS + ":listCollectionIds")) == 3


def test_counting_a_missing_database_is_not_found(google: GoogleStandIn) -> None:
    """The API's 404 becomes our NotFound at the edge."""
    with pytest.raises(errors.NotFound, match="restored-1"):
        cloud_for(google).firestore_documents().count_documents(
            f"projects/{PROJECT}/databases/restored-1"
        )


def test_the_count_request_selects_one_collection_with_a_count() -> None:
    """The request is what the API takes for SELECT COUNT(*) FROM collection."""
    request = count_request("projects/p/databases/d", "events")
    assert request.parent == "projects/p/databases/d/documents"
    query = request.structured_aggregation_query
    assert [s.collection_id for s in query.structured_query.from_] == ["events"]
    assert query.aggregations[0].alias == "documents"
    assert "count" in query.aggregations[0]
