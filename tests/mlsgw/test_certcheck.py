"""``mlsgw certcheck`` against a local TLS server with certificates generated in the test."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.mlsgw.conftest import Cli
from tests.support.tls import TlsServer, make_pki

ServeCert = Callable[[float], tuple[str, str]]


@pytest.fixture
def serve_cert(tmp_path: Path) -> Iterator[ServeCert]:
    """Factory: ``serve_cert(days_left)`` -> (endpoint, ca_file) of a running TLS server."""
    servers: list[TlsServer] = []

    def start(days_left: float) -> tuple[str, str]:
        pki = make_pki(tmp_path / f"pki{len(servers)}", days_left)
        server = TlsServer(pki).start()
        servers.append(server)
        return f"127.0.0.1:{server.port}", str(pki.ca_file)

    yield start
    for server in servers:
        server.stop()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("days", "code", "status"), [(5, 2, "critical"), (15, 1, "warning"), (90, 0, "ok")]
)
def test_exit_code_follows_the_days_left(
    cli: Cli, serve_cert: ServeCert, days: int, code: int, status: str
) -> None:
    """5 days left -> CRITICAL (2), 15 -> WARNING (1), 90 -> OK (0), with issuer and SANs."""
    endpoint, ca = serve_cert(days)
    result = cli("certcheck", endpoint, "--cafile", ca, "--json")
    assert result.exit_code == code, result.output
    check = json.loads(result.output)["findings"][0]
    assert check["status"] == status
    assert days - 1 <= check["data"]["days_left"] <= days
    assert check["data"]["issuer"] == "mlsgw test CA (mlsgw tests)"
    assert check["data"]["sans"] == ["localhost", "127.0.0.1"]


def test_refused_connection_is_critical_with_the_reason(cli: Cli) -> None:
    """Nothing listening: CRITICAL, and the reason says the connection was refused."""
    result = cli("certcheck", f"127.0.0.1:{_closed_port()}", "--json")
    assert result.exit_code == 2
    check = json.loads(result.output)["findings"][0]
    assert check["status"] == "critical"
    assert "refused" in check["summary"].lower()


@pytest.mark.parametrize(("days", "code"), [(5, 2), (15, 1), (90, 0)])
def test_a_certificate_of_an_unknown_ca_is_graded_by_its_days_with_the_reason(
    cli: Cli, serve_cert: ServeCert, days: int, code: int
) -> None:
    """Without --cafile, a certificate the system CAs do not know still gets the exit code
    of its days left; the summary says it did not verify, and the certificate is described."""
    endpoint, _ = serve_cert(days)
    result = cli("certcheck", endpoint, "--json")
    assert result.exit_code == code, result.output
    check = json.loads(result.output)["findings"][0]
    assert "certificate verification failed" in check["summary"]
    assert check["data"]["verified"] is False
    assert check["data"]["issuer"] == "mlsgw test CA (mlsgw tests)"


def test_with_cafile_a_certificate_that_does_not_verify_is_critical(
    cli: Cli, serve_cert: ServeCert, tmp_path: Path
) -> None:
    """--cafile names the CA to trust: a certificate from another CA is CRITICAL (exit 2)."""
    endpoint, _ = serve_cert(90)
    _, other_ca = serve_cert(90)
    result = cli("certcheck", endpoint, "--cafile", other_ca, "--json")
    assert result.exit_code == 2, result.output
    check = json.loads(result.output)["findings"][0]
    assert check["status"] == "critical" and "verification failed" in check["summary"]


def test_nagios_line_has_the_summary_and_days_left_perfdata(
    cli: Cli, serve_cert: ServeCert
) -> None:
    """``--nagios``: one plugin line, the state word, the summary and ``days_left`` with no
    unit and its thresholds as Nagios ranges (warning below 21, critical below 7)."""
    endpoint, ca = serve_cert(15)
    result = cli("certcheck", endpoint, "--cafile", ca, "--nagios")
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line
    assert line.startswith("MLSGW WARNING - certificate: 127.0.0.1:")
    assert line.endswith(" | 'days_left'=14.9;21:;7:")


def test_report_names_days_issuer_and_sans(cli: Cli, serve_cert: ServeCert) -> None:
    """The human report shows the days left, the issuer and the SANs."""
    endpoint, ca = serve_cert(90)
    result = cli("certcheck", endpoint, "--cafile", ca)
    assert result.exit_code == 0
    assert "89 days left" in result.output
    assert "mlsgw test CA" in result.output and "localhost, 127.0.0.1" in result.output


@pytest.mark.parametrize("args", [["nohost:notaport"], ["http://x"], ["x", "--json", "--nagios"]])
def test_bad_arguments_exit_3(cli: Cli, args: list[str]) -> None:
    """A port that is not a number, a plain-http URL, two output formats: exit 3."""
    assert cli("certcheck", *args).exit_code == 3


def test_a_usage_error_with_nagios_is_one_plugin_line(cli: Cli) -> None:
    """With --nagios, even a bad endpoint answers as one UNKNOWN plugin line, exit 3."""
    result = cli("certcheck", "nohost:notaport", "--nagios")
    assert result.exit_code == 3
    assert result.stdout.startswith("MLSGW UNKNOWN - ")
    assert result.stdout.count("\n") == 1


def test_json_and_nagios_together_answer_as_a_plugin_line(cli: Cli) -> None:
    """Two output formats at once: exit 3 with the same plugin line as healthcheck."""
    result = cli("certcheck", "x", "--json", "--nagios")
    assert result.exit_code == 3
    assert result.stdout == (
        "MLSGW UNKNOWN - --json and --nagios are two output formats: give one of them\n"
    )


@pytest.mark.parametrize(
    ("endpoint", "says"),
    [
        ("https://[::1", "is not HOST[:PORT] or an https:// URL"),
        ("https://x:99999", "the port must be a number 1-65535"),
    ],
)
def test_a_malformed_url_is_a_usage_error_with_the_error_document(
    cli: Cli, endpoint: str, says: str
) -> None:
    """An unparseable URL or a port out of range: exit 3 and one JSON document, no traceback."""
    result = cli("certcheck", endpoint, "--json")
    assert result.exit_code == 3, result.output
    document = json.loads(result.stdout)
    assert document["status"] == "unknown" and says in document["summary"]


@pytest.mark.parametrize("content", [None, "", "not a certificate\n"])
@pytest.mark.parametrize("command", ["certcheck", "audit"])
def test_an_unusable_cafile_is_a_usage_error_naming_the_file(
    cli: Cli, tmp_path: Path, command: str, content: str | None
) -> None:
    """--cafile missing, empty or not PEM: exit 3 naming the file, before any connection
    (certcheck and audit share the check)."""
    cafile = tmp_path / "ca.pem"
    if content is not None:
        cafile.write_text(content)
    args = [f"127.0.0.1:{_closed_port()}"] if command == "certcheck" else []
    result = cli(command, *args, "--cafile", str(cafile), "--nagios")
    assert result.exit_code == 3, result.output
    assert result.stdout.startswith(
        f"MLSGW UNKNOWN - --cafile {cafile}: cannot read CA certificates"
    )
    assert result.stdout.count("\n") == 1
    document = json.loads(cli(command, *args, "--cafile", str(cafile), "--json").stdout)
    assert document["exit_code"] == 3 and str(cafile) in document["summary"]
