"""The runbook's primary dashboard as data: four rows of charts, each chart one or more PromQL
queries. Pure; the Dashboards adapter turns it into a Cloud Monitoring dashboard and back.

Google metrics are queried under their Managed Service for Prometheus names
(``run_googleapis_com:request_count``); the relay's own metrics (``nostr_relay_*``,
``mls_gateway_*``) reach Cloud Monitoring through the Managed Service for Prometheus sidecar
on Cloud Run, which scrapes ``/metrics`` (see the README, "Alerts and dashboard")."""

from __future__ import annotations

from dataclasses import dataclass

DASHBOARD_LABEL = "mlsgw_dashboard"
"""The dashboard label that marks the dashboard managed by ``mlsgw dashboard``."""
PRIMARY = "primary"


@dataclass(frozen=True)
class Chart:
    """One chart: a title, its PromQL queries (one line each) and the unit shown."""

    title: str
    queries: tuple[str, ...]
    unit: str = ""


@dataclass(frozen=True)
class Row:
    """One row of the dashboard."""

    title: str
    charts: tuple[Chart, ...]


@dataclass(frozen=True)
class DashboardSpec:
    """A dashboard as wanted: its key (label value), title and rows."""

    key: str
    display_name: str
    rows: tuple[Row, ...]

    def differences(self, other: DashboardSpec) -> list[tuple[str, str, str]]:
        """``(where, self's, other's)`` for the title and every chart that differs."""
        out = []
        if self.display_name != other.display_name:
            out.append(("display_name", self.display_name, other.display_name))
        mine = {f"{r.title} / {c.title}": c for r in self.rows for c in r.charts}
        theirs = {f"{r.title} / {c.title}": c for r in other.rows for c in r.charts}
        for where in list(mine) + [w for w in theirs if w not in mine]:
            a, b = mine.get(where), theirs.get(where)
            if a != b:
                out.append((where, _describe(a), _describe(b)))
        if not out and [r.title for r in self.rows] != [r.title for r in other.rows]:
            out.append(("rows", _titles(self), _titles(other)))
        return out


def _describe(chart: Chart | None) -> str:
    if chart is None:
        return "-"
    return "; ".join(chart.queries) + (f" [{chart.unit}]" if chart.unit else "")


def _titles(spec: DashboardSpec) -> str:
    return ", ".join(r.title for r in spec.rows)


def _run(metric: str, service: str, extra: str = "") -> str:
    labels = f'monitored_resource="cloud_run_revision",service_name="{service}"{extra}'
    return f"run_googleapis_com:{metric}{{{labels}}}"


def _quantile(q: float, series: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({series}[5m])))"


def primary_dashboard(service: str) -> DashboardSpec:
    """The runbook's primary dashboard for ``service``: service health, performance, MLS,
    infrastructure."""
    requests = _run("request_count", service)
    errors = _run("request_count", service, ',response_code_class="5xx"')
    latency = _run("request_latencies_bucket", service)
    mls_kinds = 'kind=~"443|445|446|1059"'
    health = Row(
        "Service health",
        (
            Chart(
                "Up/down (uptime check on /health)",
                (
                    "min(monitoring_googleapis_com:uptime_check_check_passed"
                    '{monitored_resource="uptime_url"})',
                ),
            ),
            Chart("Active connections", ("sum(nostr_relay_connections)",)),
            Chart("Request rate", (f"sum(rate({requests}[5m]))",), "1/s"),
            Chart(
                "Error rate (5xx)",
                (f"sum(rate({errors}[5m])) / sum(rate({requests}[5m]))",),
                "10^2.%",
            ),
        ),
    )
    performance = Row(
        "Performance",
        (
            Chart(
                "Latency p50 / p95 / p99",
                tuple(_quantile(q, latency) for q in (0.5, 0.95, 0.99)),
                "ms",
            ),
            Chart(
                "CPU utilisation",
                (_quantile(0.99, _run("container_cpu_utilizations_bucket", service)),),
                "10^2.%",
            ),
            Chart(
                "Memory utilisation",
                (_quantile(0.99, _run("container_memory_utilizations_bucket", service)),),
                "10^2.%",
            ),
            Chart(
                "Store latency p95",
                (
                    "histogram_quantile(0.95, sum by (le, op) "
                    "(rate(nostr_relay_store_seconds_bucket[5m])))",
                ),
                "s",
            ),
        ),
    )
    mls = Row(
        "MLS",
        (
            Chart(
                "Events by kind (443/445/446/1059)",
                (f"sum by (kind) (rate(mls_gateway_events_processed_total{{{mls_kinds}}}[5m]))",),
                "1/s",
            ),
            Chart(
                "Group operations",
                (
                    "sum(rate(mls_gateway_groups_updated_total[5m]))",
                    "sum(rate(mls_gateway_membership_updates_total[5m]))",
                ),
                "1/s",
            ),
            Chart(
                "Key package operations",
                (
                    "sum(rate(mls_gateway_keypackages_stored_total[5m]))",
                    "sum(rate(mls_gateway_keypackages_consumed_total[5m]))",
                ),
                "1/s",
            ),
            Chart(
                "Archive rate (swept)",
                (
                    "sum(rate(mls_gateway_archive_swept_total[1h]))",
                    "sum by (reason) (rate(mls_gateway_keypackages_swept_total[1h]))",
                ),
                "1/s",
            ),
        ),
    )
    infrastructure = Row(
        "Infrastructure",
        (
            Chart(
                "Instances",
                (f"sum by (state) ({_run('container_instance_count', service)})",),
            ),
            Chart(
                "Firestore operations",
                (
                    "sum by (type) (rate(firestore_googleapis_com:document_read_count"
                    '{monitored_resource="firestore_instance"}[5m]))',
                    "sum by (op) (rate(firestore_googleapis_com:document_write_count"
                    '{monitored_resource="firestore_instance"}[5m]))',
                ),
                "1/s",
            ),
            Chart(
                "Network (bytes sent / received)",
                (
                    f"sum(rate({_run('container_network_sent_bytes_count', service)}[5m]))",
                    f"sum(rate({_run('container_network_received_bytes_count', service)}[5m]))",
                ),
                "By/s",
            ),
            Chart(
                "Log volume",
                (
                    "sum(rate(logging_googleapis_com:byte_count"
                    f'{{monitored_resource="cloud_run_revision",service_name="{service}"}}[5m]))',
                ),
                "By/s",
            ),
        ),
    )
    return DashboardSpec(PRIMARY, f"mlsgw — {service}", (health, performance, mls, infrastructure))
