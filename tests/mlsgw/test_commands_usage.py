"""Usage errors exit 3 everywhere (UNKNOWN to Nagios, never CRITICAL), and with --nagios they
still print one plugin status line on stdout."""

from __future__ import annotations

import json

import pytest

from tests.mlsgw.conftest import Cli, RelayProcess

USAGE_ERRORS = [
    ("healthchek",),
    ("config", "chek"),
    ("ledger", "vrify"),
    ("rollback", "--no-such-option"),
    ("healthcheck", "--timeout"),
    ("healthcheck", "--timeout", "soon"),
    ("scale", "--min", "-1"),
    ("deploy",),
    ("serve", "--no-such-option"),
    ("--no-such-option",),
]


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=[" ".join(a) for a in USAGE_ERRORS])
def test_every_usage_error_exits_3(cli: Cli, args: tuple[str, ...]) -> None:
    """Mistyped subcommands, unknown options, missing or bad values: exit 3, never click's 2."""
    result = cli(*args)
    assert result.exit_code == 3, result.output


def test_url_without_a_scheme_is_a_usage_error_not_an_outage(cli: Cli) -> None:
    """--url 127.0.0.1:8080 is refused with the fix (exit 3), not probed as CRITICAL."""
    result = cli("healthcheck", "--url", "127.0.0.1:8080")
    assert result.exit_code == 3
    assert "has no scheme: give http://127.0.0.1:8080" in result.stderr


def test_url_without_a_scheme_from_the_environment_names_the_variable(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The message says where the bad value came from."""
    monkeypatch.setenv("MLSGW_URL", "relay.example.org")
    result = cli("healthcheck")
    assert result.exit_code == 3
    assert "env MLSGW_URL 'relay.example.org' has no scheme" in result.stderr


def test_nagios_usage_error_prints_one_unknown_line_on_stdout(cli: Cli) -> None:
    """Nagios shows stdout: an argument error is one UNKNOWN status line, exit 3."""
    result = cli("healthcheck", "--nagios", "--no-such-option")
    assert result.exit_code == 3
    assert result.stdout == "MLSGW UNKNOWN - usage: No such option: --no-such-option\n"


def test_nagios_with_a_bad_url_prints_one_unknown_line(cli: Cli) -> None:
    """Errors found after parsing (a URL without a scheme) answer the same way."""
    result = cli("healthcheck", "--nagios", "--url", "127.0.0.1:8080")
    assert result.exit_code == 3
    assert result.stdout.startswith("MLSGW UNKNOWN - --url '127.0.0.1:8080' has no scheme")
    assert result.stdout.count("\n") == 1


def test_json_and_nagios_together_are_refused(cli: Cli, relay: RelayProcess) -> None:
    """Two output formats at once: refused (exit 3), not silently resolved."""
    result = cli("healthcheck", "--url", relay.url, "--json", "--nagios")
    assert result.exit_code == 3
    assert result.stdout == (
        "MLSGW UNKNOWN - --json and --nagios are two output formats: give one of them\n"
    )


def test_nagios_counts_skipped_checks_instead_of_all_passed(cli: Cli, relay: RelayProcess) -> None:
    """A local relay only: 2 checks ran and 5 were skipped, and the status line says so."""
    result = cli("healthcheck", "--url", relay.url, "--nagios")
    assert result.exit_code == 0
    assert result.stdout.startswith("MLSGW OK - 2 passed, 5 skipped")
    assert "all checks passed" not in result.stdout


JSON_USAGE_ERRORS = [
    (("healthcheck", "--url", "http://127.0.0.1:9", "--timeout", "abc", "--json"), "healthcheck"),
    (("incident", "open", "--json"), "incident open"),
    (("rollback", "--bogus", "--json"), "rollback"),
    (("--json", "nosuch"), "mlsgw"),
]


@pytest.mark.parametrize(
    ("args", "command"), JSON_USAGE_ERRORS, ids=[" ".join(a) for a, _ in JSON_USAGE_ERRORS]
)
def test_json_usage_error_prints_the_error_document_on_stdout(
    cli: Cli, args: tuple[str, ...], command: str
) -> None:
    """A usage error click finds (bad value, missing option, unknown option or command) still
    gives one JSON document on stdout with --json: failed, exit code 3, click's message."""
    result = cli(*args)
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    assert document["command"] == command
    assert document["ok"] is False
    assert document["exit_code"] == 3
    assert document["status"] == ("unknown" if command == "healthcheck" else "error")
    assert document["data"]["error_type"] == "UsageError"
    assert document["summary"]


def test_json_usage_error_summary_is_clicks_message(cli: Cli) -> None:
    """The summary says what was wrong, as the box on stderr does."""
    document = json.loads(cli("incident", "open", "--json").stdout)
    assert document["summary"] == "Missing option '--sev'."


def test_nagios_wins_over_json_for_a_usage_error(cli: Cli) -> None:
    """Both flags and a usage error: the one Nagios status line, no JSON after it."""
    result = cli("healthcheck", "--bogus", "--nagios", "--json")
    assert result.exit_code == 3
    assert result.stdout == "MLSGW UNKNOWN - usage: No such option: --bogus\n"
