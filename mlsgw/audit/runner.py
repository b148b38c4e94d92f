"""``mlsgw audit``: every review area run concurrently, each turned into findings.

An area whose inputs are not configured is SKIPPED; one that could not be read (permission
denied, API down, pip-audit failed) is UNKNOWN, so an incomplete audit never passes for a
clean one (R-O3: exit 3). Google credentials are looked up once, before the areas and within
the target's timeout: without any, one ``credentials`` finding is UNKNOWN with the fix and
the cloud areas are SKIPPED pointing at it, while the others (config file, dependencies, TLS
of ``--url``) still run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mlsgw.audit import access_logs, config_review, dependencies, firestore, iam, service
from mlsgw.audit.findings import Finding, audit_report, clean, could_not, skipped
from mlsgw.certificates import grade, parse_endpoint
from mlsgw.checks import ServiceFetch
from mlsgw.errors import MlsgwError, NoCredentials, NotFound
from mlsgw.gcp.clients import Cloud
from mlsgw.report import CheckReport, Status
from mlsgw.runbook.context import RunContext
from mlsgw.target import Target
from mlsgw.tls_probe import probe_certificate
from relay.access_log import AUDIT_TAG
from relay.config import ConfigError, load_config

LOG_LIMIT = 2000
"""Log entries read per query: enough for the top lists, bounded in time and memory."""
CREDENTIALS = "credentials"
"""The finding that says once that there are no Google credentials, with the fix."""
NO_CREDENTIALS = "no Google credentials (see above)"
"""Why a cloud area is skipped when there are none."""


def config_under_review(config: Path | None) -> Path | None:
    """``--config``, else ``$MLSGW_CONFIG``: the relay config file the audit reviews (the
    same for ``mlsgw audit`` and the monthly security audit)."""
    if config is not None:
        return config
    named = os.environ.get("MLSGW_CONFIG")
    return Path(named) if named else None


def _no_scanner() -> dependencies.ScanRun:
    return dependencies.ScanRun(None, "", "no scanner configured")


@dataclass(frozen=True)
class AuditSettings:
    """The audit's own options (beside the target): what to review and how."""

    config_path: Path | None = None
    """The relay config file to review (``--config`` / ``MLSGW_CONFIG``); ``None``: not given."""
    trusted_domains: tuple[str, ...] = ()
    """Overrides the target's ``trusted_domains`` (``[ops]``) when given."""
    hours: float = 24.0
    cafile: str | None = None
    scan: Callable[[], dependencies.ScanRun] = _no_scanner
    """Runs pip-audit (injected: the command runs the real one)."""
    only: tuple[str, ...] = ()
    """Areas to review (names from :data:`AREAS`); empty: all of them."""
    credentials_reported: bool = False
    """The caller reports missing credentials itself (a maintenance schedule, once for all
    its tasks): no ``credentials`` finding here, the cloud areas are still skipped."""


@dataclass
class AuditContext:
    """What the areas share: the target, the clients, the settings, one service read."""

    target: Target
    cloud: Cloud
    settings: AuditSettings
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    no_credentials: str | None = None
    """Why there are no Google credentials (looked up before the areas), or ``None``."""
    service: ServiceFetch = field(init=False)

    def __post_init__(self) -> None:
        self.service = ServiceFetch(lambda: self.cloud.run().get_service(self.target.service_name))

    def cloud_skip(self, api: str, needs_service: bool = True) -> str | None:
        """Why a cloud area cannot run, or ``None``."""
        t = self.target
        if needs_service and not t.has_service:
            return "no project/region/service configured"
        if not t.project:
            return "no project configured"
        if reason := self.cloud.skip_reason(api):
            return reason
        return NO_CREDENTIALS if self.no_credentials else None

    def log_filter(self, *terms: str) -> str:
        """A Cloud Logging filter on the service's entries in the audit window."""
        since = (self.now - timedelta(hours=self.settings.hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return " AND ".join(
            (
                'resource.type="cloud_run_revision"',
                f'resource.labels.service_name="{self.target.service}"',
                *terms,
                f'timestamp>="{since}"',
            )
        )


def area_access_logs(ctx: AuditContext) -> list[Finding]:
    """4xx responses of the service: top IPs, paths, user agents."""
    if reason := ctx.cloud_skip("logging"):
        return [skipped("access-logs", reason)]
    assert ctx.target.project is not None
    filter_ = ctx.log_filter("httpRequest.status>=400", "httpRequest.status<500")
    entries = ctx.cloud.logs().list_entries(ctx.target.project, filter_, LOG_LIMIT)
    return access_logs.review_4xx(entries, ctx.settings.hours)


def area_relay_access(ctx: AuditContext) -> list[Finding]:
    """The relay's own NIP-42 and allowlist refusals."""
    if reason := ctx.cloud_skip("logging"):
        return [skipped("relay-access", reason)]
    assert ctx.target.project is not None
    filter_ = ctx.log_filter(f'jsonPayload.audit="{AUDIT_TAG}"')
    entries = ctx.cloud.logs().list_entries(ctx.target.project, filter_, LOG_LIMIT)
    return access_logs.review_rejections(entries, ctx.settings.hours)


def area_project_iam(ctx: AuditContext) -> list[Finding]:
    """The project's IAM policy."""
    if reason := ctx.cloud_skip("resourcemanager", needs_service=False):
        return [skipped(iam.AREA, reason)]
    assert ctx.target.project is not None
    policy = ctx.cloud.projects().get_iam_policy(ctx.target.project)
    trusted = ctx.settings.trusted_domains or ctx.target.trusted_domains
    return iam.review_project_iam(policy, ctx.target.project, trusted)


def area_service(ctx: AuditContext) -> list[Finding]:
    """The Cloud Run service: invoker policy, ingress, environment."""
    if reason := ctx.cloud_skip("run"):
        return [skipped(service.AREA, reason)]
    state = ctx.service.get()
    policy = ctx.cloud.run().get_iam_policy(ctx.target.service_name)
    return service.review_service(state, policy)


def area_config(ctx: AuditContext) -> list[Finding]:
    """The relay config as deployed: the file, under the service's ``MLSGW_*`` variables when
    the target is a Cloud Run service (and SQLite there is a finding). Without credentials
    to read the service, the file alone is reviewed (the service's variables may set another
    backend, so SQLite is not judged)."""
    area = config_review.AREA
    overrides: dict[str, str] = {}
    from_secrets: frozenset[str] = frozenset()
    parts = [str(ctx.settings.config_path)] if ctx.settings.config_path else []
    why_not = ctx.cloud_skip("run")
    if why_not is None:
        state = ctx.service.get()
        overrides, from_secrets = config_review.service_overrides(state.env)
        name = state.name.rsplit("/", 1)[-1]
        parts.append(f"{len(overrides)} MLSGW_* env var(s) of service {name}")
    if not parts:
        if why_not == NO_CREDENTIALS:
            return [skipped(area, NO_CREDENTIALS)]
        return [skipped(area, "no relay config given (--config or MLSGW_CONFIG)")]
    if ctx.settings.config_path is None:
        parts.insert(0, "built-in defaults")
    try:
        # No file: the built-in defaults (MLSGW_CONFIG="" stops the config/mlsgw.toml lookup).
        config = load_config(ctx.settings.config_path, {"MLSGW_CONFIG": "", **overrides})
    except ConfigError as exc:
        return config_review.refused_config(exc.problems, " + ".join(parts))
    return config_review.review_config(
        config,
        on_cloud_run=ctx.target.has_service and why_not != NO_CREDENTIALS,
        source=" + ".join(parts),
        from_secrets=from_secrets,
    )


def area_firestore(ctx: AuditContext) -> list[Finding]:
    """Point-in-time recovery and managed backup schedules of the (default) database."""
    if reason := ctx.cloud_skip("firestore", needs_service=False):
        return [skipped(firestore.AREA, reason)]
    assert ctx.target.project is not None
    admin = ctx.cloud.firestore_backups()
    name = f"projects/{ctx.target.project}/databases/(default)"
    try:
        database = admin.get_database(name)
    except NotFound:
        return [skipped(firestore.AREA, f"project {ctx.target.project} has no (default) database")]
    schedules = admin.list_backup_schedules(name)
    return firestore.review_firestore(database, schedules)


def area_dependencies(ctx: AuditContext) -> list[Finding]:
    """pip-audit on the installed environment."""
    return dependencies.review_scan(ctx.settings.scan())


def area_tls(ctx: AuditContext) -> list[Finding]:
    """The certificate of the relay's https URL."""
    url = ctx.target.url
    if not url and (why_not := ctx.cloud_skip("run")) is None:
        url = ctx.service.get().uri
    elif not url and why_not == NO_CREDENTIALS:
        return [skipped("tls", NO_CREDENTIALS)]
    if not url:
        return [skipped("tls", "no --url (and no Cloud Run service to take it from)")]
    if not url.startswith(("https://", "wss://")):
        return [skipped("tls", f"{url} is not https")]
    host, port = parse_endpoint(url)
    cafile = ctx.settings.cafile
    probe = probe_certificate(host, port, ctx.target.timeout, cafile)
    result = grade(probe, ctx.now, require_trust=cafile is not None)
    if result.status is Status.OK and probe.error is None:
        return [clean("tls", result.summary)]
    if result.status is Status.OK:  # time left, but not verified (no --cafile to require it)
        code, severity = "tls.unverified", Status.INFO
    else:
        code, severity = "tls.certificate", result.status
    return [Finding("tls", code, severity, result.summary, result.details, result.data)]


AREAS: tuple[tuple[str, Callable[[AuditContext], list[Finding]]], ...] = (
    ("access-logs", area_access_logs),
    ("relay-access", area_relay_access),
    ("project-iam", area_project_iam),
    ("service", area_service),
    ("config", area_config),
    ("firestore", area_firestore),
    ("dependencies", area_dependencies),
    ("tls", area_tls),
)
"""Every review area, in report order."""
AREA_NAMES = tuple(name for name, _ in AREAS)


def _guarded(
    area: str, review: Callable[[AuditContext], list[Finding]], ctx: AuditContext
) -> list[Finding]:
    try:
        return review(ctx)
    except MlsgwError as exc:
        return [could_not(area, str(exc))]
    except Exception as exc:  # a bug in one area must not hide the others
        return [could_not(area, f"{type(exc).__name__}: {exc}")]


def calls_cloud(area: str, target: Target) -> bool:
    """Whether ``area`` may call Google Cloud for ``target``: never the dependencies; the
    config and TLS areas only to read the Cloud Run service (TLS not when given ``--url``)."""
    if area == "dependencies":
        return False
    if area == "tls":
        return target.has_service and not target.url
    if area == "config":
        return target.has_service
    return True


def missing_credentials(run_ctx: RunContext, needed: bool) -> str | None:
    """Why there are no Google credentials, or ``None``: looked up once per command, within
    the target's timeout, when ``needed``, a project is given and no endpoint override
    replaces them; never looked up otherwise."""
    if not needed:
        return None
    try:
        run_ctx.look_up_credentials()
    except NoCredentials as exc:
        return str(exc)
    return None


def run(run_ctx: RunContext, settings: AuditSettings) -> CheckReport:
    """Run the chosen areas concurrently; the findings come in :data:`AREAS` order, after
    one ``credentials`` finding (UNKNOWN, with the fix) when there are no credentials."""
    chosen = [(a, review) for a, review in AREAS if not settings.only or a in settings.only]
    needed = any(calls_cloud(area, run_ctx.target) for area, _ in chosen)
    missing = missing_credentials(run_ctx, needed)
    ctx = AuditContext(
        run_ctx.target, run_ctx.cloud, settings, now=run_ctx.clock(), no_credentials=missing
    )
    run_ctx.reporter.step(f"auditing {len(chosen)} areas")
    with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
        futures = [pool.submit(_guarded, area, review, ctx) for area, review in chosen]
        findings = [f for future in futures for f in future.result()]
    if missing and not settings.credentials_reported:
        findings.insert(0, could_not(CREDENTIALS, missing))
    where = run_ctx.target.service or run_ctx.target.url or "local"
    return audit_report(findings, run_ctx.run_id, title=f"mlsgw audit — {where}")
