"""Builds the adapters for a :class:`~mlsgw.target.Target` (R-O1).

- No endpoint override: every client uses Application Default Credentials, looked up once,
  only when a client is first needed (so commands that need no cloud never ask for it).
- ``endpoint``: Cloud Run, Logging, Firestore Admin and data (document counts), Cloud
  Storage and Resource Manager go over REST to that base URL with anonymous credentials.
- ``monitoring_endpoint``: Cloud Monitoring (gRPC only) over a plaintext channel, anonymous.
- With any override set, a client without its own override is *unavailable* (see
  :meth:`Cloud.skip_reason`): nothing falls back to ADC or the metadata server.
"""

from __future__ import annotations

import threading
from typing import Any

from mlsgw.errors import NoCredentials, NoEndpointOverride
from mlsgw.gcp.artifacts import RegistryApi, VulnerabilityApi
from mlsgw.gcp.backup_api import FirestoreBackupsApi, FirestoreDocumentsApi, ObjectStoreApi
from mlsgw.gcp.base import CloudRunApi, FirestoreAdminApi, LogsApi, MonitoringApi, ProjectsApi
from mlsgw.gcp.credentials import find_credentials
from mlsgw.gcp.errors import vendor_errors
from mlsgw.gcp.monitoring_config import MonitoringConfigApi
from mlsgw.target import Target

REST_APIS = ("run", "logging", "firestore", "storage", "resourcemanager", "registry", "analysis")
_API_OF = {
    "firestore_backups": "firestore",
    "firestore_documents": "firestore",
    "objects": "storage",
}


class Cloud:
    """Lazily built adapters for one target; thread-safe."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._lock = threading.RLock()  # builders may build the clients they wrap
        self._credentials: Any = None
        self._credentials_error: NoCredentials | None = None
        self._credentials_lock = threading.Lock()
        self._built: dict[str, Any] = {}

    def skip_reason(self, api: str) -> str | None:
        """Why ``api`` (``run``, ``logging``, ``firestore``, ``storage``, ``resourcemanager``,
        ``monitoring``) cannot be used."""
        t = self.target
        if api in ("monitoring", "monitoring_config") and t.endpoint and not t.monitoring_endpoint:
            return (
                "Cloud Monitoring speaks only gRPC and --endpoint is REST; "
                "give --monitoring-endpoint HOST:PORT"
            )
        if api in REST_APIS and t.monitoring_endpoint and not t.endpoint:
            return "only --monitoring-endpoint is set; give --endpoint for the REST APIs"
        return None

    def _require(self, api: str) -> None:
        """:class:`NoEndpointOverride` with :meth:`skip_reason` when ``api`` cannot be used."""
        reason = self.skip_reason(_API_OF.get(api, api))
        if reason:
            raise NoEndpointOverride(reason)

    @property
    def needs_credentials(self) -> bool:
        """Whether the clients use Application Default Credentials (no endpoint override)."""
        return not (self.target.endpoint or self.target.monitoring_endpoint)

    def credentials(self, bound: float | None = None) -> Any:
        """The Application Default Credentials, looked up once for every client, within
        ``bound`` seconds (default: the target's timeout); the same :class:`NoCredentials`
        for every caller when there are none."""
        with self._credentials_lock:
            if self._credentials is None and self._credentials_error is None:
                try:
                    self._credentials = find_credentials(bound or self.target.timeout)
                except NoCredentials as exc:
                    self._credentials_error = exc
            if self._credentials_error is not None:
                raise self._credentials_error
            return self._credentials

    def _adc(self) -> Any:
        return self.credentials()

    def _rest_kwargs(self) -> dict[str, Any]:
        if self.target.endpoint:
            from google.auth.credentials import AnonymousCredentials

            return {
                "credentials": AnonymousCredentials(),  # type: ignore[no-untyped-call]
                "transport": "rest",
                "client_options": {"api_endpoint": self.target.endpoint},
            }
        return {"credentials": self._adc(), "transport": "rest"}

    def _get(self, api: str) -> Any:
        self._require(api)
        with self._lock:
            if api not in self._built:
                self._built[api] = getattr(self, f"_build_{api}")()
            return self._built[api]

    def run(self) -> CloudRunApi:
        """The Cloud Run Admin v2 adapter."""
        adapter: CloudRunApi = self._get("run")
        return adapter

    def logs(self) -> LogsApi:
        """The Cloud Logging v2 adapter."""
        adapter: LogsApi = self._get("logging")
        return adapter

    def firestore_admin(self) -> FirestoreAdminApi:
        """The Firestore Admin v1 adapter."""
        adapter: FirestoreAdminApi = self._get("firestore")
        return adapter

    def monitoring(self) -> MonitoringApi:
        """The Cloud Monitoring v3 adapter."""
        adapter: MonitoringApi = self._get("monitoring")
        return adapter

    def projects(self) -> ProjectsApi:
        """The Resource Manager v3 projects adapter (project IAM policy)."""
        adapter: ProjectsApi = self._get("resourcemanager")
        return adapter

    def monitoring_config(self) -> MonitoringConfigApi:
        """Alert policies, uptime checks and dashboards (Cloud Monitoring, gRPC)."""
        adapter: MonitoringConfigApi = self._get("monitoring_config")
        return adapter

    def registry(self) -> RegistryApi:
        """The Artifact Registry adapter."""
        adapter: RegistryApi = self._get("registry")
        return adapter

    def analysis(self) -> VulnerabilityApi:
        """The Artifact Analysis (Grafeas) adapter."""
        adapter: VulnerabilityApi = self._get("analysis")
        return adapter

    def storage(self) -> Any:
        """A ``google.cloud.storage.Client`` (the ``gs://`` ledger wraps it at its own edge)."""
        return self._get("storage")

    def firestore_backups(self) -> FirestoreBackupsApi:
        """The Firestore Admin v1 adapter for exports, imports, backups and restores."""
        adapter: FirestoreBackupsApi = self._get("firestore_backups")
        return adapter

    def firestore_documents(self) -> FirestoreDocumentsApi:
        """The Firestore (data plane) adapter that counts a database's documents."""
        adapter: FirestoreDocumentsApi = self._get("firestore_documents")
        return adapter

    def objects(self) -> ObjectStoreApi:
        """The Cloud Storage adapter for listing, reading and writing objects."""
        adapter: ObjectStoreApi = self._get("objects")
        return adapter

    def _build_firestore_backups(self) -> FirestoreBackupsApi:
        from google.cloud import firestore_admin_v1

        from mlsgw.gcp.firestore_backups import FirestoreBackupsAdapter

        client = firestore_admin_v1.FirestoreAdminClient(**self._rest_kwargs())
        return FirestoreBackupsAdapter(client, timeout=self.target.timeout)

    def _build_firestore_documents(self) -> FirestoreDocumentsApi:
        from google.cloud.firestore_v1.services.firestore import FirestoreClient

        from mlsgw.gcp.firestore_documents import FirestoreDocumentsAdapter

        client = FirestoreClient(**self._rest_kwargs())
        return FirestoreDocumentsAdapter(client, timeout=self.target.timeout)

    def _build_objects(self) -> ObjectStoreApi:
        from mlsgw.gcp.objects import ObjectStoreAdapter

        return ObjectStoreAdapter(self.storage(), timeout=self.target.timeout)

    def _build_run(self) -> CloudRunApi:
        from google.cloud import run_v2

        from mlsgw.gcp.run import CloudRunAdapter

        kwargs = self._rest_kwargs()
        return CloudRunAdapter(
            run_v2.ServicesClient(**kwargs),
            run_v2.RevisionsClient(**kwargs),
            timeout=self.target.timeout,
        )

    def _build_logging(self) -> LogsApi:
        from google.cloud import logging as gcl

        from mlsgw.gcp.logs import LogsAdapter

        kwargs = self._rest_kwargs()
        kwargs.pop("transport")
        client = gcl.Client(  # type: ignore[no-untyped-call]
            project=self.target.project, _use_grpc=False, **kwargs
        )
        return LogsAdapter(client, timeout=self.target.timeout)

    def _build_resourcemanager(self) -> ProjectsApi:
        from google.cloud import resourcemanager_v3

        from mlsgw.gcp.resource_manager import ProjectsAdapter

        client = resourcemanager_v3.ProjectsClient(**self._rest_kwargs())
        return ProjectsAdapter(client, timeout=self.target.timeout)

    def _build_storage(self) -> Any:
        from google.cloud.storage import Client

        kwargs = self._rest_kwargs()
        kwargs.pop("transport")  # storage.Client speaks only JSON over HTTP
        with vendor_errors("set up the Cloud Storage client"):
            return Client(project=self.target.project, **kwargs)

    def _build_firestore(self) -> FirestoreAdminApi:
        from google.cloud import firestore_admin_v1

        from mlsgw.gcp.firestore_admin import FirestoreAdminAdapter

        client = firestore_admin_v1.FirestoreAdminClient(**self._rest_kwargs())
        return FirestoreAdminAdapter(client, timeout=self.target.timeout)

    def _build_monitoring(self) -> MonitoringApi:
        from google.cloud import monitoring_v3

        from mlsgw.gcp.monitoring import MonitoringAdapter

        if self.target.monitoring_endpoint:
            from google.cloud.monitoring_v3.services.metric_service.transports import (
                MetricServiceGrpcTransport,
            )

            client = monitoring_v3.MetricServiceClient(
                transport=MetricServiceGrpcTransport(channel=self._monitoring_channel())
            )
        else:
            client = monitoring_v3.MetricServiceClient(credentials=self._adc())
        return MonitoringAdapter(client, timeout=self.target.timeout)

    def _monitoring_channel(self) -> Any:
        """A plaintext channel to ``monitoring_endpoint`` (stand-ins), proxies ignored."""
        import grpc

        assert self.target.monitoring_endpoint
        return grpc.insecure_channel(
            self.target.monitoring_endpoint, options=[("grpc.enable_http_proxy", 0)]
        )

    def _build_monitoring_config(self) -> MonitoringConfigApi:
        from google.cloud import monitoring_dashboard_v1, monitoring_v3

        from mlsgw.gcp.monitoring_config_grpc import MonitoringConfigAdapter

        timeout = self.target.timeout
        if self.target.monitoring_endpoint:
            from google.cloud.monitoring_dashboard_v1.services.dashboards_service import (
                transports as dashboards_transports,
            )
            from google.cloud.monitoring_v3.services.alert_policy_service.transports import (
                AlertPolicyServiceGrpcTransport,
            )
            from google.cloud.monitoring_v3.services.uptime_check_service.transports import (
                UptimeCheckServiceGrpcTransport,
            )

            channel = self._monitoring_channel()
            return MonitoringConfigAdapter(
                monitoring_v3.AlertPolicyServiceClient(
                    transport=AlertPolicyServiceGrpcTransport(channel=channel)
                ),
                monitoring_v3.UptimeCheckServiceClient(
                    transport=UptimeCheckServiceGrpcTransport(channel=channel)
                ),
                monitoring_dashboard_v1.DashboardsServiceClient(
                    transport=dashboards_transports.DashboardsServiceGrpcTransport(channel=channel)
                ),
                timeout=timeout,
            )
        credentials = self._adc()
        return MonitoringConfigAdapter(
            monitoring_v3.AlertPolicyServiceClient(credentials=credentials),
            monitoring_v3.UptimeCheckServiceClient(credentials=credentials),
            monitoring_dashboard_v1.DashboardsServiceClient(
                credentials=credentials, transport="grpc"
            ),
            timeout=timeout,
        )

    def _build_registry(self) -> RegistryApi:
        from google.cloud import artifactregistry_v1

        from mlsgw.gcp.artifact_registry import ArtifactRegistryAdapter

        client = artifactregistry_v1.ArtifactRegistryClient(**self._rest_kwargs())
        return ArtifactRegistryAdapter(client, timeout=self.target.timeout)

    def _build_analysis(self) -> VulnerabilityApi:
        from grafeas import grafeas_v1
        from grafeas.grafeas_v1.services.grafeas.transports.rest import GrafeasRestTransport

        from mlsgw.gcp.artifact_analysis import ArtifactAnalysisAdapter

        # The Grafeas client takes no endpoint option: Artifact Analysis serves it, so the
        # transport is built with that host (or the stand-in's).
        kwargs = self._rest_kwargs()
        transport = GrafeasRestTransport(
            host=self.target.endpoint or "containeranalysis.googleapis.com",
            credentials=kwargs["credentials"],
        )
        client = grafeas_v1.GrafeasClient(transport=transport)
        return ArtifactAnalysisAdapter(client, timeout=self.target.timeout)
