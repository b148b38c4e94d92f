"""Firestore (data plane) adapter: documents per top-level collection, counted on the server.

Uses the ``firestore_v1`` client of google-cloud-firestore over REST, like the Admin
adapters: ``ListCollectionIds`` for the collections, then one ``RunAggregationQuery`` with
COUNT per collection, so no document is read or transferred. Both take an optional
``read_time``: the database as it was then (within the version retention: an hour, or whole
minutes within 7 days with point-in-time recovery).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from google.cloud.firestore_v1.services.firestore import FirestoreClient
from google.cloud.firestore_v1.types import firestore as requests
from google.cloud.firestore_v1.types import query as queries

from mlsgw.gcp.errors import vendor_errors

_ALIAS = "documents"


def count_request(
    database: str, collection: str, read_time: datetime | None = None
) -> requests.RunAggregationQueryRequest:
    """``SELECT COUNT(*) FROM collection`` on ``database`` (full name), as the API takes it;
    as of ``read_time`` when given, else now."""
    selector = queries.StructuredQuery.CollectionSelector(collection_id=collection)
    aggregation = queries.StructuredAggregationQuery.Aggregation(
        alias=_ALIAS, count=queries.StructuredAggregationQuery.Aggregation.Count()
    )
    return requests.RunAggregationQueryRequest(
        parent=f"{database}/documents",
        structured_aggregation_query=queries.StructuredAggregationQuery(
            structured_query=queries.StructuredQuery(from_=[selector]),
            aggregations=[aggregation],
        ),
        read_time=read_time,
    )


class FirestoreDocumentsAdapter:
    """:class:`mlsgw.gcp.backup_api.FirestoreDocumentsApi` over ``firestore_v1.FirestoreClient``."""

    def __init__(self, client: FirestoreClient, *, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    def collections(self, database: str, read_time: datetime | None = None) -> list[str]:
        """The ids of the database's top-level collections (as of ``read_time``), sorted."""
        what = f"list the collections of {database}"
        request = requests.ListCollectionIdsRequest(
            parent=f"{database}/documents", read_time=read_time
        )
        with vendor_errors(what, "datastore.entities.list"):
            pager = self._client.list_collection_ids(request=request, timeout=self._timeout)
            return sorted(pager)

    def count(self, database: str, collection: str, read_time: datetime | None = None) -> int:
        """The number of documents in ``collection`` (a COUNT aggregation, as of
        ``read_time`` when given)."""
        what = f"count the documents of {collection} in {database}"
        total = 0
        with vendor_errors(what, "datastore.entities.list"):
            stream = self._client.run_aggregation_query(
                request=count_request(database, collection, read_time), timeout=self._timeout
            )
            for response in stream:
                if _ALIAS in response.result.aggregate_fields:
                    total = int(response.result.aggregate_fields[_ALIAS].integer_value)
        return total

    def count_documents(
        self, database: str, read_time: datetime | None = None
    ) -> Mapping[str, int]:
        """Documents per top-level collection, each counted on the server (as of
        ``read_time`` when given, else now)."""
        return {
            name: self.count(database, name, read_time)
            for name in self.collections(database, read_time)
        }
