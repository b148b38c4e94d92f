"""``mlsgw certcheck HOST[:PORT]``: the TLS certificate's days left, issuer and SANs (R-K7)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from mlsgw import output
from mlsgw.certificates import grade, parse_endpoint
from mlsgw.commands.common import JsonOpt, NagiosOpt, new_run_id
from mlsgw.errors import MlsgwError, UsageError
from mlsgw.report import CheckReport
from mlsgw.tls_probe import probe_certificate

DEFAULT_TIMEOUT = 10.0

TimeoutOpt = Annotated[
    float,
    typer.Option(help="Seconds for the connection and for the handshake.", min=0.1),
]
CafileOpt = Annotated[
    str | None,
    typer.Option(
        "--cafile",
        help="Trust only the CA certificates in this PEM file (a private CA) instead of the "
        "system's.",
    ),
]


def certcheck(
    endpoint: Annotated[
        str, typer.Argument(metavar="HOST[:PORT]", help="Server to check; port 443 by default.")
    ],
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    cafile: CafileOpt = None,
    as_json: JsonOpt = False,
    nagios: NagiosOpt = False,
) -> None:
    """Check a server's TLS certificate: days left, issuer, SANs. WARNING under 21 days,
    CRITICAL under 7, and CRITICAL with the reason when the connection is refused, the
    handshake fails or the certificate is not trusted.

    Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad arguments).

    Example: mlsgw certcheck relay.example.com --nagios
    """
    run_id = new_run_id()
    try:
        if as_json and nagios:
            raise UsageError("--json and --nagios are two output formats: choose one")
        host, port = parse_endpoint(endpoint)
    except MlsgwError as exc:
        output.fail(exc, 3, command="certcheck", as_json=as_json, run_id=run_id)
    with output.progress(enabled=not (as_json or nagios)) as reporter:
        reporter.step(f"TLS handshake with {host}:{port}")
        result = grade(probe_certificate(host, port, timeout, cafile), datetime.now(UTC))
    report = CheckReport("certcheck", (result,), run_id)
    if nagios:
        typer.echo(output.nagios_line(report, "MLSGW CERT"))
    elif as_json:
        output.emit_json(output.check_document(report, {"host": host, "port": port}))
    else:
        output.render_checks(report, output.stdout_console(), f"mlsgw certcheck — {host}:{port}")
    raise typer.Exit(report.exit_code)
