"""The adapters drive the real Google client libraries against the local stand-ins."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mlsgw import errors
from mlsgw.gcp.base import (
    Binding,
    IamPolicy,
    ProbeKind,
    ServiceChange,
    StartupProbe,
    TrafficKind,
    TrafficTarget,
    health_probe,
)
from mlsgw.gcp.clients import Cloud
from mlsgw.target import Target
from tests.mlsgw.conftest import PROJECT, REGION, SERVICE
from tests.stand_ins.google import GoogleStandIn
from tests.stand_ins.monitoring import MonitoringStandIn
from tests.stand_ins.rest import ApiError, permission_denied

NAME = f"projects/{PROJECT}/locations/{REGION}/services/{SERVICE}"


def cloud_for(google: GoogleStandIn, monitoring: MonitoringStandIn | None = None) -> Cloud:
    return Cloud(
        Target(
            project=PROJECT,
            region=REGION,
            service=SERVICE,
            endpoint=google.url,
            monitoring_endpoint=monitoring.address if monitoring else None,
            timeout=5,
        )
    )


def test_service_state_is_read_over_rest_with_enums_and_int64(google: GoogleStandIn) -> None:
    """get_service maps conditions, LATEST traffic, revisions and scaling from the wire."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    state = cloud_for(google).run().get_service(NAME)
    assert state.ready.ok
    assert state.latest_ready_revision == google.run.service(SERVICE).revisions[-1].name
    assert state.traffic == (TrafficTarget(TrafficKind.LATEST, 100),)
    assert state.serving() == {state.latest_ready_revision: 100}
    assert state.generation == 1 and state.etag
    assert state.scaling.max_instances == 10 and state.scaling.memory == "512Mi"
    sent = google.server.calls("GET", f"/v2/{NAME}")[0]
    assert sent.query["$alt"] == "json;enum-encoding=int"


def test_the_startup_probe_is_read_from_the_template_and_replaced_by_an_update(
    google: GoogleStandIn,
) -> None:
    """A probe naming no port probes the container's; a change writes the whole probe (TCP
    here, timing kept) and creates a revision; none set reads as ``None``."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    run = cloud_for(google).run()
    assert run.get_service(NAME).startup_probe is None
    container = record.template["containers"][0]
    container["ports"] = [{"name": "http1", "containerPort": 8081}]
    container["startupProbe"] = {"httpGet": {"path": "/health"}, "periodSeconds": 2}
    before = run.get_service(NAME)
    assert before.startup_probe == StartupProbe(ProbeKind.HTTP, 8081, "/health", 2)
    tcp = StartupProbe(ProbeKind.TCP, 8081, period_seconds=2, timeout_seconds=1)
    after = run.update_service(NAME, ServiceChange(startup_probe=tcp), etag=before.etag)
    assert after.startup_probe == tcp and len(record.revisions) == 2
    assert record.template["containers"][0]["startupProbe"] == {
        "tcpSocket": {"port": 8081},
        "periodSeconds": 2,
        "timeoutSeconds": 1,
    }
    back = run.update_service(
        NAME, ServiceChange(startup_probe=health_probe(8081)), etag=after.etag
    )
    assert back.startup_probe == health_probe(8081)


def test_revisions_are_listed_across_pages_newest_first(google: GoogleStandIn) -> None:
    """The pager follows nextPageToken (the stand-in pages by 2)."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2", "img:3", "img:4", "img:5"])
    revisions = cloud_for(google).run().list_revisions(NAME)
    assert [r.name for r in revisions] == [
        r.name for r in reversed(google.run.service(SERVICE).revisions)
    ]
    assert len(google.server.calls("GET", f"/v2/{NAME}/revisions")) == 3


def test_update_with_a_stale_etag_is_a_conflict(google: GoogleStandIn) -> None:
    """A write guarded by an old etag is refused by the server and surfaces as Conflict."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    run = cloud_for(google).run()
    before = run.get_service(NAME)
    google.run.concurrent_change(lambda s: s.labels.update({"team": "other"}))
    first = google.run.service(SERVICE).revisions[0].name
    change = ServiceChange(traffic=(TrafficTarget(TrafficKind.REVISION, 100, first),))
    with pytest.raises(errors.Conflict):
        run.update_service(NAME, change, etag=before.etag)
    assert google.run.service(SERVICE).traffic[0]["type"] == 1  # unchanged


def test_iam_read_modify_write_detects_a_concurrent_policy_change(google: GoogleStandIn) -> None:
    """setIamPolicy with a stale base64 etag is a Conflict; with a fresh one it is applied."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    run = cloud_for(google).run()
    policy = run.get_iam_policy(NAME)
    google.run.concurrent_change(lambda s: None)
    wanted = IamPolicy((Binding("roles/run.invoker", ("allUsers",)),), policy.etag)
    with pytest.raises(errors.Conflict):
        run.set_iam_policy(NAME, wanted)
    fresh = run.get_iam_policy(NAME)
    written = run.set_iam_policy(NAME, IamPolicy(wanted.bindings, fresh.etag))
    assert written.members_of("roles/run.invoker") == ("allUsers",)
    assert written.etag != fresh.etag


def test_permission_denied_names_the_missing_permission(google: GoogleStandIn) -> None:
    """A 403 with an ErrorInfo becomes PermissionDenied carrying the permission."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    google.server.fail("GET", f"/v2/{NAME}", permission_denied("run.services.get", NAME))
    with pytest.raises(errors.PermissionDenied) as caught:
        cloud_for(google).run().get_service(NAME)
    assert caught.value.permission == "run.services.get"
    assert "grant a role with run.services.get" in str(caught.value)


def test_missing_service_is_not_found(google: GoogleStandIn) -> None:
    """A 404 becomes NotFound."""
    google.run.add_service(PROJECT, REGION, "other", ["img:1"])
    with pytest.raises(errors.NotFound):
        cloud_for(google).run().get_service(NAME)


def test_log_entries_are_filtered_and_newest_first(google: GoogleStandIn) -> None:
    """list_entries goes through the high-level Logging client over HTTP."""
    google.logging.add_entry(PROJECT, SERVICE, "older", age=timedelta(minutes=30))
    google.logging.add_entry(PROJECT, SERVICE, "newer", age=timedelta(minutes=1), json_payload=True)
    google.logging.add_entry(PROJECT, SERVICE, "info", severity="INFO")
    entries = cloud_for(google).logs().list_entries(PROJECT, "severity>=ERROR", 10)
    assert [e.message for e in entries] == ["newer", "older"]
    assert entries[0].severity == "ERROR"


def test_firestore_operations_are_decoded_across_pages(google: GoogleStandIn) -> None:
    """Operations' Any metadata is decoded by type; failures carry their error."""
    google.firestore.add_operation(PROJECT)
    google.firestore.add_operation(PROJECT, kind="ImportDocuments")
    google.firestore.add_operation(PROJECT, state="FAILED", error="bucket not found")
    ops = cloud_for(google).firestore_admin().list_operations(PROJECT)
    assert [op.kind for op in ops] == ["ExportDocuments", "ImportDocuments", "ExportDocuments"]
    assert [op.failed for op in ops] == [False, False, True]
    assert ops[2].error == "code 13: bucket not found"
    assert ops[0].started is not None


def test_monitoring_metrics_come_over_an_insecure_grpc_channel(
    google: GoogleStandIn, monitoring: MonitoringStandIn
) -> None:
    """5xx ratio, p95 and memory are computed from ListTimeSeries aggregations."""
    monitoring.seed_cloud_run(PROJECT, SERVICE, error_ratio=0.02, p95_ms=700, memory=0.5)
    metrics = (
        cloud_for(google, monitoring)
        .monitoring()
        .service_metrics(PROJECT, SERVICE, timedelta(hours=1))
    )
    assert metrics.requests == 6000
    assert metrics.error_ratio == pytest.approx(0.02)
    assert metrics.latency_p95_ms == pytest.approx(700)
    assert metrics.memory_utilization == pytest.approx(0.5)
    assert len(monitoring.calls) == 3


def test_monitoring_is_unavailable_with_only_a_rest_endpoint(google: GoogleStandIn) -> None:
    """With --endpoint but no --monitoring-endpoint, Monitoring never falls back to ADC."""
    cloud = cloud_for(google)
    assert "gRPC" in (cloud.skip_reason("monitoring") or "")
    with pytest.raises(errors.UsageError):
        cloud.monitoring()


def test_quota_errors_become_quota_exceeded(google: GoogleStandIn) -> None:
    """A 429 RESOURCE_EXHAUSTED becomes QuotaExceeded with a hint."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    google.server.fail("GET", f"/v2/{NAME}", ApiError(429, "Quota exceeded for run.googleapis.com"))
    with pytest.raises(errors.QuotaExceeded, match="raise the quota"):
        cloud_for(google).run().get_service(NAME)


def test_unreachable_endpoint_is_unavailable() -> None:
    """Nothing listening on the endpoint: Unavailable, not a vendor exception."""
    cloud = Cloud(Target(project=PROJECT, endpoint="http://127.0.0.1:9", timeout=2))
    with pytest.raises(errors.Unavailable):
        cloud.firestore_admin().list_operations(PROJECT)


def test_project_iam_policy_is_read_through_resource_manager_asking_for_version_3(
    google: GoogleStandIn,
) -> None:
    """``POST /v3/projects/P:getIamPolicy`` with ``requestedPolicyVersion`` 3 (conditions)."""
    google.resource_manager.set_policy(PROJECT, {"roles/viewer": ["user:a@example.com"]})
    policy = cloud_for(google).projects().get_iam_policy(PROJECT)
    assert policy.bindings == (Binding("roles/viewer", ("user:a@example.com",)),)
    [sent] = google.server.calls("POST", f"/v3/projects/{PROJECT}:getIamPolicy")
    assert sent.body["options"]["requestedPolicyVersion"] == 3


def test_service_ingress_invoker_flag_and_env_are_read(google: GoogleStandIn) -> None:
    """Ingress, invoker_iam_disabled and env vars (plain and Secret Manager references)."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["img:1"])
    record.ingress, record.invoker_iam_disabled = 2, True
    record.template["containers"][0]["env"] = [
        {"name": "A", "value": "1"},
        {"name": "B", "valueSource": {"secretKeyRef": {"secret": "b", "version": "4"}}},
    ]
    state = cloud_for(google).run().get_service(NAME)
    assert state.ingress == "internal" and state.invoker_iam_disabled
    assert [(v.name, v.value, v.secret) for v in state.env] == [
        ("A", "1", None),
        ("B", None, "b:4"),
    ]


def test_request_log_entries_carry_http_request_and_json_payload(google: GoogleStandIn) -> None:
    """Request logs give ``http``; the relay's JSON lines give ``fields``."""
    google.logging.add_request(PROJECT, SERVICE, 404, ip="203.0.113.7", path="/x")
    google.logging.add_relay_line(PROJECT, SERVICE, {"message": "m", "audit": "access_rejected"})
    entries = (
        cloud_for(google).logs().list_entries(PROJECT, 'resource.type="cloud_run_revision"', 10)
    )
    http = [e.http for e in entries if e.http]
    assert [(h.status, h.remote_ip, h.url.endswith("/x")) for h in http] == [
        (404, "203.0.113.7", True)
    ]
    assert [e.fields["audit"] for e in entries if e.fields.get("audit")] == ["access_rejected"]


def test_every_logging_call_waits_the_target_timeout_not_the_clients_60_s(
    silent_metadata_server: str,
) -> None:
    """An endpoint that never answers: reading entries, exporting them and listing buckets
    each give up after the target's timeout (the message names it)."""
    target = Target(project=PROJECT, endpoint=f"http://{silent_metadata_server}", timeout=1)
    logs = Cloud(target).logs()
    calls = (
        lambda: logs.list_entries(PROJECT, "", 10),
        lambda: logs.export_entries(PROJECT, "", 10),
        lambda: logs.list_buckets(PROJECT),
    )
    for call in calls:
        with pytest.raises(errors.Unavailable, match=r"timeout=1\b"):
            call()
