"""The checks of the morning health check (R-K1, plus the backup RPO of R-K4) and the
runbook's thresholds.

Each check takes a :class:`CheckContext` and returns a :class:`~mlsgw.report.CheckResult`;
a check whose inputs are not configured returns ``SKIPPED``, one that could not be done
(no credentials, API error) returns ``UNKNOWN``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mlsgw.errors import MlsgwError
from mlsgw.gcp.base import ServiceState
from mlsgw.gcp.clients import Cloud
from mlsgw.probes import parse_secret_key, probe_health, probe_websocket, scrape_metrics
from mlsgw.report import CheckResult, Perf, Status
from mlsgw.target import Target

# The runbook's thresholds: error rate < 1 %, p95 < 500 ms, memory < 80 %. A 5xx ratio at
# or above the alerting threshold (5 %, CRITICAL alert) makes the verdict red.
ERROR_RATIO_WARN = 0.01
ERROR_RATIO_CRIT = 0.05
P95_WARN_MS = 500.0
MEMORY_WARN = 0.80
LOG_WINDOW = timedelta(hours=1)
METRICS_WINDOW = timedelta(hours=1)
FIRESTORE_WINDOW = timedelta(hours=24)
LOG_LIMIT = 100
SHOWN_MESSAGES = 3


class ServiceFetch:
    """The Cloud Run service, read at most once and shared by the checks that need it."""

    def __init__(self, fetch: Callable[[], ServiceState]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._result: ServiceState | MlsgwError | None = None

    def get(self) -> ServiceState:
        """The service, or the :class:`MlsgwError` the read raised (raised again)."""
        with self._lock:
            if self._result is None:
                try:
                    self._result = self._fetch()
                except MlsgwError as exc:
                    self._result = exc
            if isinstance(self._result, MlsgwError):
                raise self._result
            return self._result


@dataclass
class CheckContext:
    """What the checks share."""

    target: Target
    cloud: Cloud
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    service: ServiceFetch = field(init=False)

    def __post_init__(self) -> None:
        self.service = ServiceFetch(lambda: self.cloud.run().get_service(self.target.service_name))

    def cloud_skip(self, api: str, needs_service: bool = True) -> str | None:
        """Why a cloud check cannot run, or ``None``."""
        t = self.target
        if needs_service and not t.has_service:
            return "no project/region/service configured"
        if not needs_service and not t.project:
            return "no project configured"
        return self.cloud.skip_reason(api)

    def relay_url(self) -> str | None:
        """``--url``, else the Cloud Run service's URL when the service is configured."""
        if self.target.url:
            return self.target.url
        if self.cloud_skip("run") is None:
            return self.service.get().uri or None
        return None


def skipped(name: str, reason: str) -> CheckResult:
    """A check that did not run because its inputs are not configured."""
    return CheckResult(name, Status.SKIPPED, f"skipped: {reason}")


def check_service(ctx: CheckContext) -> CheckResult:
    """Cloud Run Ready condition, and whether the latest ready revision gets the traffic."""
    name = "service"
    if reason := ctx.cloud_skip("run"):
        return skipped(name, reason)
    service = ctx.service.get()
    split = service.serving()
    details = tuple(f"{rev}: {pct}%" for rev, pct in sorted(split.items()))
    data = {"latest_ready_revision": service.latest_ready_revision, "traffic": split}
    if not service.ready.ok:
        why = service.ready.message or service.ready.reason or service.ready.state
        return CheckResult(name, Status.CRITICAL, f"not Ready: {why}", details, data=data)
    others = [rev for rev in split if rev != service.latest_ready_revision]
    if others:
        main = max(others, key=lambda rev: split[rev])
        return CheckResult(
            name,
            Status.WARNING,
            f"Ready, but traffic pinned to {main} (latest ready is "
            f"{service.latest_ready_revision}); `mlsgw traffic --to-latest` to release",
            details,
            data=data,
        )
    return CheckResult(
        name, Status.OK, f"Ready, {service.latest_ready_revision} serves 100%", details, data=data
    )


def check_health(ctx: CheckContext) -> CheckResult:
    """``GET <url>/health``: status, version, latency."""
    name = "health"
    url = ctx.relay_url()
    if not url:
        return skipped(name, "no --url (and no Cloud Run service to take it from)")
    probe = probe_health(url, ctx.target.timeout)
    perf = (Perf("health_latency", round(probe.latency_ms, 1), "ms"),)
    data = {"url": url, "version": probe.version, "latency_ms": round(probe.latency_ms, 1)}
    if not probe.ok:
        return CheckResult(
            name, Status.CRITICAL, f"{url}/health: {probe.detail}", perf=perf, data=data
        )
    summary = f"healthy, version {probe.version}, {probe.latency_ms:.0f} ms"
    return CheckResult(name, Status.OK, summary, perf=perf, data=data)


def check_websocket(ctx: CheckContext) -> CheckResult:
    """WebSocket: connect, optional NIP-42 AUTH with the probe key, REQ -> EOSE."""
    name = "websocket"
    url = ctx.relay_url()
    if not url:
        return skipped(name, "no --url (and no Cloud Run service to take it from)")
    key = parse_secret_key(ctx.target.probe_key) if ctx.target.probe_key else None
    probe = probe_websocket(url, ctx.target.timeout, key)
    if probe.ok:
        return CheckResult(name, Status.OK, probe.detail)
    if probe.auth_required and key is None:
        return CheckResult(
            name,
            Status.WARNING,
            f"connected, but {probe.detail}; give --probe-key to check REQ on an allowlisted relay",
        )
    return CheckResult(name, Status.CRITICAL, probe.detail)


def check_logs(ctx: CheckContext) -> CheckResult:
    """ERROR-severity log entries of the service in the last hour."""
    name = "logs"
    if reason := ctx.cloud_skip("logging"):
        return skipped(name, reason)
    since = (ctx.now - LOG_WINDOW).strftime("%Y-%m-%dT%H:%M:%SZ")
    filter_ = (
        'resource.type="cloud_run_revision" '
        f'AND resource.labels.service_name="{ctx.target.service}" '
        f'AND severity>=ERROR AND timestamp>="{since}"'
    )
    assert ctx.target.project is not None
    entries = ctx.cloud.logs().list_entries(ctx.target.project, filter_, LOG_LIMIT)
    count = len(entries)
    shown = f"{count}+" if count >= LOG_LIMIT else str(count)
    perf = (Perf("error_logs", count, "", 1),)
    if not entries:
        return CheckResult(name, Status.OK, "no ERROR entries in the last hour", perf=perf)
    details = tuple(
        f"{e.time.astimezone(UTC):%H:%M:%S} UTC {e.severity}: {e.message[:160]}"
        if e.time
        else e.message[:160]
        for e in entries[:SHOWN_MESSAGES]
    )
    return CheckResult(
        name,
        Status.WARNING,
        f"{shown} ERROR entries in the last hour",
        details,
        perf,
        {"error_entries": count},
    )


def check_firestore(ctx: CheckContext) -> CheckResult:
    """Failed Firestore Admin operations (exports, imports, index builds) in the last 24 h."""
    name = "firestore"
    if reason := ctx.cloud_skip("firestore", needs_service=False):
        return skipped(name, reason)
    assert ctx.target.project is not None
    operations = ctx.cloud.firestore_admin().list_operations(ctx.target.project)
    since = ctx.now - FIRESTORE_WINDOW
    failed = [op for op in operations if op.failed and (op.started is None or op.started >= since)]
    perf = (Perf("failed_operations", len(failed), "", 1),)
    if failed:
        details = tuple(
            f"{op.kind} {op.name.rsplit('/', 1)[-1]}: {op.error or op.state}" for op in failed
        )
        return CheckResult(
            name,
            Status.WARNING,
            f"{len(failed)} failed operation(s) in the last 24 h",
            details,
            perf,
        )
    return CheckResult(
        name, Status.OK, f"{len(operations)} operation(s) listed, none failed in 24 h", perf=perf
    )


def check_backups(ctx: CheckContext) -> CheckResult:
    """The newest backup (export or managed) is younger than the RPO (``[ops] rpo_hours``)."""
    from mlsgw.backups.backup import collect_entries, never_set_up, not_set_up
    from mlsgw.backups.inventory import rpo_result
    from mlsgw.backups.naming import backup_bucket

    name = "backups"
    if reason := ctx.cloud_skip("storage", needs_service=False):
        return skipped(name, reason)
    assert ctx.target.project is not None
    bucket = backup_bucket(ctx.target.project, None, ctx.target.backup_bucket)
    managed = ctx.cloud.skip_reason("firestore") is None
    entries, problems = collect_entries(ctx.cloud, ctx.target.project, bucket, managed=managed)
    if not entries and never_set_up(ctx.target.backup_bucket, bucket, problems):
        # The audit reports that; a named bucket that is missing is a problem, below.
        return skipped(name, not_set_up(bucket))
    result = rpo_result(entries, ctx.now, ctx.target.rpo_hours)
    unread = [p for p in problems if not p.endswith("(no exports)")]
    if unread and result.status is not Status.OK:  # a fresh backup may be where we cannot look
        return CheckResult(name, Status.UNKNOWN, "; ".join(unread), perf=result.perf)
    return dataclasses.replace(result, details=(*result.details, *problems))


def _grade(value: float | None, warn: float, crit: float | None = None) -> Status:
    if value is None:
        return Status.OK
    if crit is not None and value >= crit:
        return Status.CRITICAL
    return Status.WARNING if value >= warn else Status.OK


def check_metrics(ctx: CheckContext) -> CheckResult:
    """5xx ratio, p95 latency, memory (Cloud Monitoring), or the relay's own /metrics."""
    name = "metrics"
    reason = ctx.cloud_skip("monitoring")
    if reason is None:
        return _monitoring_metrics(ctx)
    if ctx.target.metrics_key and (url := ctx.relay_url()):
        return _relay_metrics(ctx, url, ctx.target.metrics_key)
    return skipped(name, f"{reason}; or give --metrics-key for the relay's /metrics")


def _worst(statuses: list[Status]) -> Status:
    for status in (Status.CRITICAL, Status.WARNING):
        if status in statuses:
            return status
    return Status.OK


def _monitoring_metrics(ctx: CheckContext) -> CheckResult:
    assert ctx.target.project is not None and ctx.target.service is not None
    m = ctx.cloud.monitoring().service_metrics(
        ctx.target.project, ctx.target.service, METRICS_WINDOW
    )
    ratio = m.error_ratio
    parts, perf, statuses = [f"{m.requests} requests in 1 h"], [], []
    statuses.append(_grade(ratio, ERROR_RATIO_WARN, ERROR_RATIO_CRIT))
    if ratio is not None:
        parts.append(f"5xx {ratio:.2%}")
        perf.append(Perf("error_ratio", round(ratio, 4), "", ERROR_RATIO_WARN, ERROR_RATIO_CRIT))
    statuses.append(_grade(m.latency_p95_ms, P95_WARN_MS))
    if m.latency_p95_ms is not None:
        parts.append(f"p95 {m.latency_p95_ms:.0f} ms")
        perf.append(Perf("latency_p95", round(m.latency_p95_ms, 1), "ms", P95_WARN_MS))
    statuses.append(_grade(m.memory_utilization, MEMORY_WARN))
    if m.memory_utilization is not None:
        parts.append(f"memory {m.memory_utilization:.0%}")
        perf.append(Perf("memory", round(m.memory_utilization * 100, 1), "%", MEMORY_WARN * 100))
    status = _worst(statuses)
    limits = "thresholds: 5xx < 1 % (red at 5 %), p95 < 500 ms, memory < 80 %"
    details = (limits,) if status is not Status.OK else ()
    data = {
        "requests": m.requests,
        "error_ratio": ratio,
        "latency_p95_ms": m.latency_p95_ms,
        "memory_utilization": m.memory_utilization,
    }
    return CheckResult("metrics", status, ", ".join(parts), details, tuple(perf), data)


def _relay_metrics(ctx: CheckContext, url: str, key: str) -> CheckResult:
    try:
        m = scrape_metrics(url, key, ctx.target.timeout)
    except OSError as exc:
        return CheckResult("metrics", Status.UNKNOWN, f"{url}/metrics: {exc}")
    ratio = m.error_ratio
    statuses = [
        _grade(ratio, ERROR_RATIO_WARN, ERROR_RATIO_CRIT),
        _grade(m.store_p95_ms, P95_WARN_MS),
    ]
    parts = [f"relay /metrics: {m.events} events"]
    perf = []
    if ratio is not None:
        parts.append(f"store errors {ratio:.2%}")
        perf.append(Perf("error_ratio", round(ratio, 4), "", ERROR_RATIO_WARN, ERROR_RATIO_CRIT))
    if m.store_p95_ms is not None:
        parts.append(f"store p95 ≤ {m.store_p95_ms:g} ms")
        perf.append(Perf("store_p95", m.store_p95_ms, "ms", P95_WARN_MS))
    if m.connections is not None:
        parts.append(f"{m.connections:g} connections")
    return CheckResult("metrics", _worst(statuses), ", ".join(parts), perf=tuple(perf))


CHECKS: tuple[tuple[Callable[[CheckContext], CheckResult], Status], ...] = (
    (check_service, Status.UNKNOWN),
    (check_health, Status.CRITICAL),
    (check_websocket, Status.CRITICAL),
    (check_logs, Status.UNKNOWN),
    (check_firestore, Status.UNKNOWN),
    (check_metrics, Status.UNKNOWN),
    (check_backups, Status.UNKNOWN),
)
"""Each check with the status it gets when it does not finish within the timeout."""
