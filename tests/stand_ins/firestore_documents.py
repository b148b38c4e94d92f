"""A stand-in of the Firestore data plane (v1, REST) for document counts.

Serves what ``firestore_v1.FirestoreClient(transport="rest")`` sends to count a database:
``POST …/databases/{db}/documents:listCollectionIds`` (paged by ``pageSize``) and
``POST …/databases/{db}/documents:runAggregationQuery`` with one COUNT aggregation on one
collection, answered as the JSON array of a server-streaming REST call. The documents are
those of :class:`~tests.stand_ins.firestore_backups.FirestoreBackupsStandIn`'s databases
(collection -> document count), so a database restored there can be counted here.

Both take ``readTime`` as the API does: it must not be in the future nor older than the
database's version retention (400). The stand-in keeps no history,
so a valid ``readTime`` is answered with the current counts and echoed in the reply.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from tests.stand_ins.firestore_backups import FirestoreBackupsStandIn, parse_ts, ts
from tests.stand_ins.rest import ApiError, Json, Media, Reply, Request, RestServer

_DOCS = r"/v1/projects/(?P<project>[^/]+)/databases/(?P<db>[^/:]+)/documents"


class FirestoreDocumentsStandIn:
    """Collection ids and COUNT aggregations over the backups stand-in's databases."""

    def __init__(self, server: RestServer, backups: FirestoreBackupsStandIn) -> None:
        self.backups = backups
        self.page_size = 300
        """Collection ids per page when the client asks for no page size (the API pages)."""
        server.route("POST", _DOCS + ":listCollectionIds", self._list_collection_ids)
        server.media_route("POST", _DOCS + ":runAggregationQuery", self._run_aggregation_query)

    def _collections(self, m: re.Match[str], read_time: str | None = None) -> dict[str, int]:
        record = self.backups.database(m["project"], m["db"])
        if record is None:
            raise ApiError(404, f"The database {m['db']} does not exist for project {m['project']}")
        if read_time:
            at, now = parse_ts(read_time), datetime.now(UTC)
            if at > now or at < now - record.retention:
                raise ApiError(
                    400, "read_time must be in the past and within the version retention period."
                )
        return {name: n for name, n in record.collections.items() if n > 0}

    def _list_collection_ids(
        self, m: re.Match[str], query: dict[str, str], body: Json
    ) -> tuple[int, Json]:
        names = sorted(self._collections(m, body.get("readTime")))
        start = int(body.get("pageToken") or 0)
        size = int(body.get("pageSize") or 0) or self.page_size
        page: Json = {"collectionIds": names[start : start + size]}
        if start + size < len(names):
            page["nextPageToken"] = str(start + size)
        return 200, page

    def _run_aggregation_query(self, m: re.Match[str], request: Request) -> Reply:
        body = json.loads(request.raw or b"{}")
        aggregation = body.get("structuredAggregationQuery", {})
        selectors = aggregation.get("structuredQuery", {}).get("from", [])
        counts = aggregation.get("aggregations", [])
        if len(selectors) != 1 or selectors[0].get("allDescendants"):
            raise ApiError(400, "the stand-in counts one top-level collection")
        if len(counts) != 1 or "count" not in counts[0]:
            raise ApiError(400, "the stand-in serves one COUNT aggregation")
        read_time = body.get("readTime")
        documents = self._collections(m, read_time).get(selectors[0].get("collectionId", ""), 0)
        alias = counts[0].get("alias") or "field_1"
        reply = [
            {
                "result": {"aggregateFields": {alias: {"integerValue": str(documents)}}},
                "readTime": read_time or ts(datetime.now(UTC)),
            }
        ]
        return 200, Media(json.dumps(reply).encode(), "application/json")
