"""Validation of restored data through the relay itself: ``/health`` and a WebSocket REQ at
an internal or tagged URL, and the healthcheck once traffic is back."""

from __future__ import annotations

from mlsgw.checks import CheckContext, check_health, check_service, check_websocket
from mlsgw.errors import MlsgwError
from mlsgw.gcp.base import ServiceState
from mlsgw.probes import parse_secret_key, probe_health, probe_websocket
from mlsgw.report import Status, Step
from mlsgw.runbook.context import RunContext


def validation_url(service: ServiceState, given: str | None) -> str | None:
    """``--validate-url`` (an internal URL), else a tag URL of the service, else ``None``."""
    if given:
        return given
    return next((t.uri for t in service.traffic_statuses if t.tag and t.uri), None)


COLLECTION_COUNTS = "collection counts"


def collection_counts_step(ctx: RunContext, database: str) -> tuple[Step, dict[str, int]]:
    """The documents of each top-level collection of ``database``, counted on the server
    after the import or restore; a warning (and no counts) when they cannot be counted.
    Comparing them is the caller's (:func:`plan.compare_collections` after an import,
    :mod:`restore_new`'s for a new database)."""
    try:
        counts = dict(ctx.cloud.firestore_documents().count_documents(database))
    except MlsgwError as exc:
        return Step(COLLECTION_COUNTS, Status.WARNING, f"could not count: {exc}"), {}
    listed = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
    return Step(COLLECTION_COUNTS, Status.OK, listed or "no collections"), counts


def probe_steps(ctx: RunContext, url: str | None) -> list[Step]:
    """``/health`` and a WebSocket REQ at ``url`` (skipped when there is none)."""
    if url is None:
        reason = "no internal or tagged URL (ingress blocks the public one); give --validate-url"
        return [Step("validate /health", Status.SKIPPED, reason)]
    timeout = ctx.target.timeout
    health = probe_health(url, timeout)
    if health.ok:
        steps = [Step("validate /health", Status.OK, f"{url}: healthy, version {health.version}")]
    else:
        steps = [Step("validate /health", Status.CRITICAL, f"{url}/health: {health.detail}")]
    key = parse_secret_key(ctx.target.probe_key) if ctx.target.probe_key else None
    ws = probe_websocket(url, timeout, key)
    if ws.ok:
        steps.append(Step("validate REQ", Status.OK, ws.detail))
    elif ws.auth_required and key is None:
        steps.append(Step("validate REQ", Status.WARNING, f"{ws.detail}; give --probe-key"))
    else:
        steps.append(Step("validate REQ", Status.CRITICAL, ws.detail))
    return steps


def healthcheck_steps(ctx: RunContext) -> list[Step]:
    """The service Ready, ``/health`` and a WebSocket REQ over the public URL."""
    checks = CheckContext(ctx.target, ctx.cloud, now=ctx.clock())
    steps = []
    for check in (check_service, check_health, check_websocket):
        try:
            result = check(checks)
        except MlsgwError as exc:
            steps.append(Step(f"healthcheck {check.__name__[6:]}", Status.UNKNOWN, str(exc)))
            continue
        steps.append(Step(f"healthcheck {result.name}", result.status, result.summary))
    return steps
