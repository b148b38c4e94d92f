"""One local REST server standing in for Cloud Run v2, Logging v2, Firestore Admin v1,
Firestore v1 document counts, Cloud Storage (JSON API, object routes) and Resource Manager v3
(project IAM).

The real client libraries reach it with ``transport="rest"``, anonymous credentials and
``api_endpoint=<url>`` (``mlsgw --endpoint <url>``).
"""

from __future__ import annotations

from tests.stand_ins.artifacts import ArtifactsStandIn
from tests.stand_ins.cloud_run import CloudRunStandIn
from tests.stand_ins.firestore_admin import FirestoreAdminStandIn
from tests.stand_ins.firestore_backups import FirestoreBackupsStandIn
from tests.stand_ins.firestore_documents import FirestoreDocumentsStandIn
from tests.stand_ins.logging_api import LoggingStandIn
from tests.stand_ins.resource_manager import ResourceManagerStandIn
from tests.stand_ins.rest import RestServer
from tests.stand_ins.storage import StorageStandIn


class GoogleStandIn:
    """The REST stand-ins on one server: :attr:`run`, :attr:`logging`, :attr:`firestore`,
    :attr:`storage`, :attr:`resource_manager`, :attr:`backups` (Firestore exports, imports,
    managed backups, restores, deleting databases), :attr:`documents` (document counts of those
    databases), :attr:`artifacts` (Artifact Registry and Analysis)."""

    def __init__(self) -> None:
        self.server = RestServer()
        self.run = CloudRunStandIn(self.server)
        self.logging = LoggingStandIn(self.server)
        self.firestore = FirestoreAdminStandIn(self.server)
        self.storage = StorageStandIn(self.server)
        self.resource_manager = ResourceManagerStandIn(self.server)
        self.backups = FirestoreBackupsStandIn(self.server, self.firestore, self.storage)
        self.documents = FirestoreDocumentsStandIn(self.server, self.backups)
        self.artifacts = ArtifactsStandIn(self.server)

    @property
    def url(self) -> str:
        """The base URL to pass as ``--endpoint``."""
        return self.server.url

    def start(self) -> GoogleStandIn:
        """Start listening on 127.0.0.1."""
        self.server.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        self.server.stop()
