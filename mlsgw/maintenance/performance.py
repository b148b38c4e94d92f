"""Tasks over Cloud Monitoring: the weekly performance review and the monthly capacity review."""

from __future__ import annotations

from datetime import timedelta

from mlsgw.maintenance.task import need, percent
from mlsgw.report import CheckResult, Perf, Status
from mlsgw.runbook.context import RunContext

REVIEW_WINDOW = timedelta(days=7)
CAPACITY_WINDOW = timedelta(days=30)
ERROR_CRITICAL = 0.05
"""The runbook's error-rate alert: above 5 % is critical."""
ERROR_WARNING = 0.01
P95_WARNING_MS = 1000.0
MEMORY_WARNING = 0.85
HEADROOM = 0.8
"""Capacity used above this fraction of what is configured is a warning: raise the limit."""


def performance_review(ctx: RunContext) -> CheckResult:
    """Request rate, error rate, p95 latency and memory over the last 7 days, judged by the
    thresholds of the runbook's alerts (5 % errors critical; 1 % errors, p95 over 1000 ms,
    memory over 85 % warnings)."""
    t = ctx.target
    project = need(t.project, "--project", "the performance review")
    service = need(t.service, "--service", "the performance review")
    m = ctx.cloud.monitoring().service_metrics(project, service, REVIEW_WINDOW)
    per_minute = m.requests / (REVIEW_WINDOW.total_seconds() / 60)
    ratio = m.error_ratio
    problems: list[str] = []
    status = Status.OK
    if ratio is not None and ratio > ERROR_CRITICAL:
        status = Status.CRITICAL
        problems.append(f"error rate {percent(ratio)} is above the 5 % alert")
    elif ratio is not None and ratio > ERROR_WARNING:
        status = Status.WARNING
        problems.append(f"error rate {percent(ratio)} is above 1 %")
    if m.latency_p95_ms is not None and m.latency_p95_ms > P95_WARNING_MS:
        status = max(status, Status.WARNING, key=_rank)
        problems.append(f"p95 {m.latency_p95_ms:.0f} ms is above 1000 ms")
    if m.memory_utilization is not None and m.memory_utilization > MEMORY_WARNING:
        status = max(status, Status.WARNING, key=_rank)
        problems.append(f"memory {percent(m.memory_utilization)} is above 85 %")
    p95 = "no data" if m.latency_p95_ms is None else f"{m.latency_p95_ms:.0f} ms"
    figures = (
        f"{per_minute:.1f} requests/min, errors {percent(ratio)}, p95 {p95}, "
        f"memory {percent(m.memory_utilization)} (7 days)"
    )
    perf = [Perf("requests_per_min", round(per_minute, 2))]
    if ratio is not None:
        perf.append(Perf("error_rate", round(ratio * 100, 3), "%", 1, 5))
    if m.latency_p95_ms is not None:
        perf.append(Perf("p95", round(m.latency_p95_ms, 1), "ms", P95_WARNING_MS))
    return CheckResult(
        "performance_review",
        status,
        "; ".join(problems) + f" — {figures}" if problems else figures,
        perf=tuple(perf),
        data={
            "window_days": 7,
            "requests": m.requests,
            "requests_per_minute": round(per_minute, 3),
            "errors_5xx": m.errors_5xx,
            "error_ratio": ratio,
            "latency_p95_ms": m.latency_p95_ms,
            "memory_utilization": m.memory_utilization,
        },
    )


_ORDER = (Status.OK, Status.SKIPPED, Status.WARNING, Status.UNKNOWN, Status.CRITICAL)


def _rank(status: Status) -> int:
    return _ORDER.index(status)


def capacity_review(ctx: RunContext) -> CheckResult:
    """Peak instances against ``max_instances``, per-instance concurrency against the
    configured ``concurrency``, and CPU, over 30 days; a warning above 80 % of a limit."""
    t = ctx.target
    project = need(t.project, "--project", "the capacity review")
    monitoring = ctx.cloud.monitoring()  # before reading the service: skipped without it
    scaling = ctx.run.get_service(t.service_name).scaling
    figures = monitoring.capacity(project, need(t.service, "--service", ""), CAPACITY_WINDOW)
    problems: list[str] = []
    lines: list[str] = []
    instances = "no data" if figures.peak_instances is None else str(figures.peak_instances)
    if scaling.max_instances:
        lines.append(f"peak {instances} of max {scaling.max_instances} instances")
        if (
            figures.peak_instances is not None
            and figures.peak_instances >= HEADROOM * scaling.max_instances
        ):
            problems.append(
                f"peak instances {instances} reach {HEADROOM:.0%} of max "
                f"{scaling.max_instances}: raise max instances (mlsgw scale)"
            )
    else:
        lines.append(f"peak {instances} instances (no max instances set)")
    if scaling.concurrency and figures.concurrency is not None:
        lines.append(f"p99 concurrency {figures.concurrency:.0f} of {scaling.concurrency}")
        if figures.concurrency >= HEADROOM * scaling.concurrency:
            problems.append(
                f"concurrency {figures.concurrency:.0f} reaches {HEADROOM:.0%} of "
                f"{scaling.concurrency} per instance"
            )
    lines.append(f"p99 CPU {percent(figures.cpu_utilization)}")
    if figures.cpu_utilization is not None and figures.cpu_utilization >= HEADROOM:
        problems.append(
            f"CPU {percent(figures.cpu_utilization)} is above 80 %: more CPU or instances"
        )
    lines.append(f"min instances {scaling.min_instances}")
    summary = ", ".join(lines) + " (30 days)"
    return CheckResult(
        "capacity_review",
        Status.WARNING if problems else Status.OK,
        "; ".join(problems) + f" — {summary}" if problems else summary,
        details=tuple(problems),
        data={
            "window_days": 30,
            "peak_instances": figures.peak_instances,
            "max_instances": scaling.max_instances,
            "min_instances": scaling.min_instances,
            "concurrency_p99": figures.concurrency,
            "concurrency_limit": scaling.concurrency,
            "cpu_utilization_p99": figures.cpu_utilization,
        },
    )
