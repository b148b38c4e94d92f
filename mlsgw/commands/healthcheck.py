"""``mlsgw healthcheck``: the morning check (R-K1), six checks run concurrently."""

from __future__ import annotations

import threading
import time
from typing import Annotated

import typer

from mlsgw import output
from mlsgw.checks import CHECKS, CheckContext
from mlsgw.commands.common import (
    ConfigOpt,
    EndpointOpt,
    JsonOpt,
    MonitoringEndpointOpt,
    ProjectOpt,
    RegionOpt,
    ServiceOpt,
    TimeoutOpt,
    UrlOpt,
    new_run_id,
)
from mlsgw.errors import MlsgwError
from mlsgw.gcp.clients import Cloud
from mlsgw.probes import parse_secret_key
from mlsgw.report import CheckReport, CheckResult, Reporter, Status
from mlsgw.target import Target, resolve_target

GRACE = 1.0
"""Seconds a check may overrun its timeout before it is reported as timed out."""


def run(target: Target, cloud: Cloud, reporter: Reporter, run_id: str) -> CheckReport:
    """Run every check concurrently, each bounded by ``target.timeout``."""
    ctx = CheckContext(target, cloud)
    results: dict[int, CheckResult] = {}
    done = threading.Condition()

    def work(index: int) -> None:
        check, _ = CHECKS[index]
        try:
            result = check(ctx)
        except MlsgwError as exc:
            result = CheckResult(check.__name__.removeprefix("check_"), Status.UNKNOWN, str(exc))
        except Exception as exc:  # a bug in one check must not hide the others
            result = CheckResult(
                check.__name__.removeprefix("check_"),
                Status.UNKNOWN,
                f"check failed: {type(exc).__name__}: {exc}",
            )
        with done:
            results[index] = result
            done.notify_all()

    # Daemon threads: a call stuck past its own timeout must not keep the process alive.
    for index in range(len(CHECKS)):
        threading.Thread(target=work, args=(index,), daemon=True).start()
    reporter.step(f"running {len(CHECKS)} checks")
    deadline = time.monotonic() + target.timeout + GRACE
    with done:
        while len(results) < len(CHECKS):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not done.wait(remaining):
                break
        final = dict(results)
    checks = []
    for index, (check, on_timeout) in enumerate(CHECKS):
        name = check.__name__.removeprefix("check_")
        checks.append(
            final.get(index)
            or CheckResult(name, on_timeout, f"timed out after {target.timeout:g} s")
        )
    return CheckReport("healthcheck", tuple(checks), run_id)


def healthcheck(
    url: UrlOpt = None,
    project: ProjectOpt = None,
    region: RegionOpt = None,
    service: ServiceOpt = None,
    endpoint: EndpointOpt = None,
    monitoring_endpoint: MonitoringEndpointOpt = None,
    probe_key: Annotated[
        str | None,
        typer.Option(
            help="Secret key (hex or nsec) for a NIP-42 AUTH probe (env MLSGW_PROBE_KEY)."
        ),
    ] = None,
    metrics_key: Annotated[
        str | None,
        typer.Option(
            help="Key for the relay's /metrics when Cloud Monitoring is not used "
            "(env MLSGW_METRICS_KEY)."
        ),
    ] = None,
    timeout: TimeoutOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    nagios: Annotated[
        bool, typer.Option("--nagios", help="Print one Nagios plugin line with perfdata.")
    ] = False,
) -> None:
    """Morning health check: service Ready and traffic, /health, WebSocket, error logs,
    Firestore operations, key metrics. Exit 0 green, 1 yellow, 2 red, 3 unknown.

    Checks whose inputs are not configured are skipped, so this works against a local relay:

        mlsgw healthcheck --url http://127.0.0.1:8080

    Example: mlsgw healthcheck --project my-proj --region europe-west1 --service mlsgw
    """
    run_id = new_run_id()
    try:
        target = resolve_target(
            config=config,
            timeout=timeout,
            url=url,
            project=project,
            region=region,
            service=service,
            endpoint=endpoint,
            monitoring_endpoint=monitoring_endpoint,
            probe_key=probe_key,
            metrics_key=metrics_key,
        )
        if target.probe_key:
            parse_secret_key(target.probe_key)
    except MlsgwError as exc:
        output.fail(exc, 3, command="healthcheck", as_json=as_json, run_id=run_id)
    with output.progress(enabled=not (as_json or nagios)) as reporter:
        report = run(target, Cloud(target), reporter, run_id)
    if nagios:
        typer.echo(output.nagios_line(report))
    elif as_json:
        output.emit_json(output.check_document(report, target.redacted()))
    else:
        where = target.service or target.url or "relay"
        output.render_checks(report, output.stdout_console(), f"mlsgw healthcheck — {where}")
    raise typer.Exit(report.exit_code)
