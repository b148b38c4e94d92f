"""Tasks that read the running relay: the weekly sweep report from its ``/metrics``."""

from __future__ import annotations

from mlsgw.maintenance.task import need
from mlsgw.probes import scrape_sweeps
from mlsgw.report import CheckResult, Perf, Status
from mlsgw.runbook.context import RunContext

SWEPT = {
    "archive": "archived messages",
    "keypackage_expired": "expired key packages",
    "keypackage_last_resort": "last-resort key packages",
}


def relay_url(ctx: RunContext) -> str:
    """``--url``, else the Cloud Run service's URL."""
    if ctx.target.url:
        return ctx.target.url
    return need(ctx.run.get_service(ctx.target.service_name).uri, "--url", "reading the relay")


def sweep_report(ctx: RunContext) -> CheckResult:
    """How many expired archive messages and key packages the relay's sweeper removed (the
    ``mls_gateway_archive_swept_total`` and ``mls_gateway_keypackages_swept_total``
    counters of the instance that answers, since it
    started); a relay without ``/metrics`` cannot report them."""
    key = need(ctx.target.metrics_key, "--metrics-key", "the sweep report")
    url = relay_url(ctx)
    try:
        swept = scrape_sweeps(url, key, ctx.target.timeout)
    except OSError as exc:
        return CheckResult(
            "sweep_report",
            Status.UNKNOWN,
            f"cannot read {url}/metrics: {exc} (is [metrics] enabled with this key?)",
        )
    counts = {what: swept.get(what, 0) for what in SWEPT}
    summary = ", ".join(f"{counts[what]} {label}" for what, label in SWEPT.items())
    return CheckResult(
        "sweep_report",
        Status.OK,
        f"swept {summary} (since the answering instance started)",
        perf=tuple(Perf(f"swept_{what}", n) for what, n in counts.items()),
        data={"url": url, "swept": counts},
    )
