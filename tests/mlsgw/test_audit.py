"""``mlsgw audit`` end to end: the real Google clients against the stand-ins, one planted
finding per test, a clean set-up, and real pip-audit runs over loopback only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.access_log import AUDIT_TAG
from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli
from tests.mlsgw.test_gcp_credentials import run_without_credentials
from tests.stand_ins.google import GoogleStandIn
from tests.stand_ins.osv import OsvStandIn
from tests.stand_ins.rest import permission_denied
from tests.support.tls import TlsServer, make_pki

LISTED = "ab" * 32
ALLOWLIST = f'[auth]\npubkey_whitelist = ["{LISTED}"]\n'
CLEAN_CONFIG = f"""
[auth]
pubkey_whitelist = ["{LISTED}"]
[data]
backend = "firestore"
[metrics]
enabled = true
auth = "k3y-0f-a-dec3nt-l3ngth"
[ops]
trusted_domains = ["example.com"]
"""


def audit(cli: Cli, *args: str) -> tuple[int, dict[str, dict[str, Any]], dict[str, Any]]:
    """Run ``mlsgw audit --json``: exit code, findings by code, the whole document."""
    result = cli("audit", "--json", *args)
    document = json.loads(result.output)
    return result.exit_code, {f["name"]: f for f in document["findings"]}, document


@pytest.fixture
def service(google: GoogleStandIn) -> Any:
    """The demo service: one revision, private, behind a load balancer, no env."""
    record = google.run.add_service(PROJECT, REGION, SERVICE, ["europe-docker.pkg.dev/p/r/mlsgw:1"])
    record.ingress = 3
    return record


@pytest.fixture
def clean_config(tmp_path: Path) -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(CLEAN_CONFIG)
    return path


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip-audit (requests) must not send the loopback queries through a proxy."""
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def osv(loopback_only: None) -> Iterator[OsvStandIn]:
    stand_in = OsvStandIn().start()
    yield stand_in
    stand_in.stop()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- access logs --------------------------------------------------------------------------


def test_4xx_responses_are_summarised_by_ip_path_and_user_agent(
    cli: Cli, google: GoogleStandIn, target_args: list[str], service: Any
) -> None:
    """Cloud Run request logs with 4xx: an INFO finding with the top lists; 2xx ignored."""
    logs = google.logging
    for path in ("/wp-login.php", "/.env", "/.git/config"):
        logs.add_request(PROJECT, SERVICE, 404, ip="203.0.113.7", path=path, user_agent="zgrab/0.x")
    logs.add_request(PROJECT, SERVICE, 401, ip="198.51.100.2", path="/metrics")
    logs.add_request(PROJECT, SERVICE, 101, ip="198.51.100.3")
    code, findings, _ = audit(cli, *target_args, "--only", "access-logs")
    finding = findings["logs.4xx"]
    assert finding["status"] == "info" and code == 0
    assert finding["summary"] == "4 4xx responses in 24 h (401: 1, 404: 3)"
    assert finding["data"]["top_ips"] == [["203.0.113.7", 3], ["198.51.100.2", 1]]
    assert finding["data"]["top_user_agents"][0] == ["zgrab/0.x", 3]
    [call] = google.server.calls("POST", "/v2/entries:list")
    assert "httpRequest.status>=400 AND httpRequest.status<500" in call.body["filter"]


def test_relay_access_refusals_are_read_from_its_json_log_lines(
    cli: Cli, google: GoogleStandIn, target_args: list[str], service: Any
) -> None:
    """The relay's ``access_rejected`` lines: counted by type and IP; other lines ignored."""
    # The field names the relay writes (tests/relay/test_access_log.py checks the relay side).
    line = {"message": "auth refused: invalid", "audit": AUDIT_TAG, "ip": "203.0.113.7"}
    for _ in range(20):
        google.logging.add_relay_line(
            PROJECT, SERVICE, {**line, "stage": "auth", "reason": "invalid"}
        )
    google.logging.add_relay_line(
        PROJECT, SERVICE, {**line, "stage": "req", "reason": "auth-required", "ip": "10.0.0.9"}
    )
    google.logging.add_relay_line(PROJECT, SERVICE, {"message": "store write failed"})
    code, findings, _ = audit(cli, *target_args, "--only", "relay-access")
    finding = findings["logs.access-rejections"]
    assert finding["status"] == "warning" and code == 1
    assert finding["data"]["total"] == 21
    assert finding["data"]["top_ips"][0] == ["203.0.113.7", 20]


# --- project IAM ----------------------------------------------------------------------------


def test_public_member_on_the_project_is_critical(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """allUsers on a project role: CRITICAL, exit 2; the request went to Resource Manager."""
    google.resource_manager.set_policy(PROJECT, {"roles/storage.objectViewer": ["allUsers"]})
    code, findings, _ = audit(cli, *target_args, "--only", "project-iam")
    assert code == 2
    assert findings["iam.public-member"]["details"] == ["roles/storage.objectViewer: allUsers"]
    assert google.server.calls("POST", f"/v3/projects/{PROJECT}:getIamPolicy")


def test_owner_and_editor_grants_are_warnings(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """roles/owner and roles/editor members are listed."""
    google.resource_manager.set_policy(
        PROJECT,
        {"roles/owner": ["user:ops@example.com"], "roles/editor": ["group:dev@example.com"]},
    )
    code, findings, _ = audit(cli, *target_args, "--only", "project-iam")
    assert code == 1
    assert findings["iam.primitive-role"]["details"] == [
        "roles/owner: user:ops@example.com",
        "roles/editor: group:dev@example.com",
    ]


def test_members_outside_trusted_domains_from_ops_config(
    cli: Cli, google: GoogleStandIn, target_args: list[str], tmp_path: Path
) -> None:
    """``[ops] trusted_domains`` (or --trusted-domain): other domains are reported."""
    google.resource_manager.set_policy(
        PROJECT, {"roles/run.admin": ["user:ops@example.com", "user:eve@gmail.com"]}
    )
    config = tmp_path / "ops.toml"
    config.write_text('[ops]\ntrusted_domains = ["example.com"]\n')
    code, findings, _ = audit(cli, *target_args, "-c", str(config), "--only", "project-iam")
    assert findings["iam.external-member"]["details"] == ["roles/run.admin: user:eve@gmail.com"]
    _, flagged, _ = audit(
        cli, *target_args, "--trusted-domain", "gmail.com", "--only", "project-iam"
    )
    assert flagged["iam.external-member"]["details"] == ["roles/run.admin: user:ops@example.com"]


def test_project_iam_permission_denied_is_unknown_naming_the_permission(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """The audit could not read the policy: UNKNOWN, exit 3, never clean."""
    google.server.fail(
        "POST",
        r"/v3/projects/.*",
        permission_denied("resourcemanager.projects.getIamPolicy", PROJECT),
    )
    code, findings, _ = audit(cli, *target_args, "--only", "project-iam")
    assert code == 3
    finding = findings["project-iam.failed"]
    assert finding["status"] == "unknown"
    assert "resourcemanager.projects.getIamPolicy" in finding["summary"]


# --- Cloud Run service --------------------------------------------------------------------


def test_public_invoker_is_a_warning(
    cli: Cli, google: GoogleStandIn, target_args: list[str], service: Any
) -> None:
    """allUsers in roles/run.invoker on the service."""
    service.iam["bindings"] = [{"role": "roles/run.invoker", "members": ["allUsers"]}]
    code, findings, _ = audit(cli, *target_args, "--only", "service")
    assert code == 1
    assert findings["service.public-invoker"]["details"] == ["roles/run.invoker: allUsers"]


def test_invoker_iam_disabled_is_a_public_invoker(
    cli: Cli, target_args: list[str], service: Any
) -> None:
    """The flag the runbook forgets: Cloud Run skips the invoker check altogether."""
    service.invoker_iam_disabled = True
    _, findings, _ = audit(cli, *target_args, "--only", "service")
    assert findings["service.public-invoker"]["data"]["invoker_iam_disabled"] is True


def test_ingress_all_is_reported_as_information(
    cli: Cli, target_args: list[str], service: Any
) -> None:
    """Ingress all: an info finding, exit 0."""
    service.ingress = 1
    code, findings, _ = audit(cli, *target_args, "--only", "service")
    assert code == 0
    assert findings["service.ingress"]["status"] == "info"
    assert findings["service.ingress"]["data"]["ingress"] == "all"


def test_plain_text_secret_in_env_is_critical_secret_manager_refs_are_not(
    cli: Cli, target_args: list[str], service: Any
) -> None:
    """A metrics key in plain text: CRITICAL, named but never shown; a secretKeyRef is fine."""
    service.template["containers"][0]["env"] = [
        {"name": "MLSGW_METRICS__AUTH", "value": "plain-text-metrics-key"},
        {
            "name": "MLSGW_PROBE_KEY",
            "valueSource": {"secretKeyRef": {"secret": "probe-key", "version": "3"}},
        },
        {"name": "MLSGW_AUTH__ENABLED", "value": "true"},
    ]
    code, findings, document = audit(cli, *target_args, "--only", "service")
    assert code == 2
    finding = findings["service.plaintext-secret"]
    assert finding["data"]["variables"] == ["MLSGW_METRICS__AUTH"]
    assert "plain-text-metrics-key" not in json.dumps(document)


# --- relay config -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "code"),
    [
        ("[auth]\nenabled = false\n", "config.auth-disabled"),
        ("[auth]\npubkey_whitelist = []\n", "config.empty-allowlist"),
        (
            ALLOWLIST + '[metrics]\nenabled = true\nauth = "changeme"\n',
            "config.metrics-key",
        ),
        (
            ALLOWLIST + "[metrics]\nenabled = true\n",
            "config.metrics-key",
        ),
    ],
)
def test_config_finding_planted_in_the_file(cli: Cli, tmp_path: Path, toml: str, code: str) -> None:
    """Each weak setting of the file given by --config is a WARNING naming the file."""
    path = tmp_path / "relay.toml"
    path.write_text(toml)
    exit_code, findings, _ = audit(cli, "-c", str(path), "--only", "config")
    assert exit_code == 1
    assert findings[code]["status"] == "warning"
    assert str(path) in findings[code]["details"][0]


def test_nagios_line_has_the_counts_by_severity_as_perfdata(cli: Cli, tmp_path: Path) -> None:
    """``--nagios``: after the ``|``, how many findings are critical (critical above 0),
    warning (warning above 0) and unknown, the same counts as the ``--json`` findings."""
    path = tmp_path / "relay.toml"
    path.write_text("[auth]\nenabled = false\n")
    _, findings, _ = audit(cli, "-c", str(path), "--only", "config")
    warnings = sum(1 for f in findings.values() if f["status"] == "warning")
    assert warnings >= 1
    result = cli("audit", "-c", str(path), "--only", "config", "--nagios")
    assert result.exit_code == 1
    line = result.output.strip()
    assert line.startswith("MLSGW WARNING - config.auth-disabled: ")
    assert line.endswith(f" | 'critical'=0;;0 'warning'={warnings};0 'unknown'=0")


def test_config_comes_from_mlsgw_config_when_no_flag(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``MLSGW_CONFIG`` names the file reviewed when --config is not given."""
    path = tmp_path / "env.toml"
    path.write_text("[auth]\nenabled = false\n")
    monkeypatch.setenv("MLSGW_CONFIG", str(path))
    _, findings, _ = audit(cli, "--only", "config")
    assert "config.auth-disabled" in findings


def test_sqlite_on_a_cloud_run_target_is_critical(
    cli: Cli, target_args: list[str], service: Any, tmp_path: Path
) -> None:
    """data.backend sqlite (the default) while the target is a Cloud Run service: CRITICAL."""
    path = tmp_path / "relay.toml"
    path.write_text(CLEAN_CONFIG.replace('backend = "firestore"', 'backend = "sqlite"'))
    code, findings, _ = audit(cli, *target_args, "-c", str(path), "--only", "config")
    assert code == 2
    assert findings["config.sqlite-on-cloud-run"]["status"] == "critical"
    _, local, _ = audit(cli, "-c", str(path), "--only", "config")
    assert "config.sqlite-on-cloud-run" not in local, "no Cloud Run target: SQLite is fine"


def test_config_review_applies_the_service_env_over_the_file(
    cli: Cli, target_args: list[str], service: Any, clean_config: Path
) -> None:
    """What runs is the file under the service's MLSGW_* variables: auth turned off there is
    a finding; a metrics key from Secret Manager is not."""
    service.template["containers"][0]["env"] = [
        {"name": "MLSGW_AUTH__ENABLED", "value": "false"},
        {
            "name": "MLSGW_METRICS__AUTH",
            "valueSource": {"secretKeyRef": {"secret": "metrics-key", "version": "latest"}},
        },
    ]
    _, findings, _ = audit(cli, *target_args, "-c", str(clean_config), "--only", "config")
    assert set(findings) == {"config.auth-disabled"}
    evidence = findings["config.auth-disabled"]["details"][0]
    assert str(clean_config) in evidence and "2 MLSGW_* env var(s) of service mlsgw" in evidence


def test_without_a_file_the_service_env_over_defaults_is_reviewed(
    cli: Cli, target_args: list[str], service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --config and no MLSGW_CONFIG: the defaults (SQLite) under the service's variables."""
    monkeypatch.delenv("MLSGW_CONFIG")
    code, findings, _ = audit(cli, *target_args, "--only", "config")
    assert code == 2 and findings["config.sqlite-on-cloud-run"]["status"] == "critical"
    service.template["containers"][0]["env"] = [
        {"name": "MLSGW_DATA__BACKEND", "value": "firestore"},
        {"name": "MLSGW_AUTH__PUBKEY_WHITELIST", "value": LISTED},
    ]
    code, findings, _ = audit(cli, *target_args, "--only", "config")
    assert code == 0 and set(findings) == {"config.clean"}
    assert "built-in defaults + 2 MLSGW_* env var(s)" in findings["config.clean"]["summary"]


def test_service_env_the_relay_refuses_is_critical(
    cli: Cli, target_args: list[str], service: Any, clean_config: Path
) -> None:
    """A bad MLSGW_* variable on the service: the relay would not start with it (exit 2)."""
    service.template["containers"][0]["env"] = [{"name": "MLSGW_AUTH__NOPE", "value": "1"}]
    code, findings, _ = audit(cli, *target_args, "-c", str(clean_config), "--only", "config")
    assert code == 2
    finding = findings["config.invalid"]
    assert any("MLSGW_AUTH__NOPE" in problem for problem in finding["details"])


def test_rest_api_without_relay_url_is_a_config_the_relay_refuses(cli: Cli, tmp_path: Path) -> None:
    """enable_api without information.relay_url: the loader refuses it, so the audit reports
    the refusal (critical) with the loader's reason."""
    path = tmp_path / "relay.toml"
    path.write_text(ALLOWLIST + "[extensions.mls_gateway]\nenable_api = true\n")
    code, findings, _ = audit(cli, "-c", str(path), "--only", "config")
    assert code == 2
    assert "information.relay_url" in findings["config.invalid"]["details"][0]


# --- Firestore ----------------------------------------------------------------------------


def test_pitr_off_is_a_finding(cli: Cli, google: GoogleStandIn, target_args: list[str]) -> None:
    """Point-in-time recovery disabled on the (default) database."""
    google.backups.add_database(PROJECT, pitr=False)
    google.backups.add_schedule(PROJECT)
    code, findings, _ = audit(cli, *target_args, "--only", "firestore")
    assert code == 1 and set(findings) == {"firestore.pitr-off"}


def test_no_backup_schedule_is_a_finding(
    cli: Cli, google: GoogleStandIn, target_args: list[str]
) -> None:
    """No managed backup schedule on the (default) database."""
    google.backups.add_database(PROJECT, pitr=True)
    code, findings, _ = audit(cli, *target_args, "--only", "firestore")
    assert code == 1 and set(findings) == {"firestore.no-backup-schedule"}


def test_project_without_a_firestore_database_skips_the_area(
    cli: Cli, target_args: list[str]
) -> None:
    """No (default) database (the relay runs on SQLite): skipped, not a failure."""
    code, findings, _ = audit(cli, *target_args, "--only", "firestore")
    assert code == 0 and findings["firestore.skipped"]["status"] == "skipped"


# --- TLS ----------------------------------------------------------------------------------


def test_certificate_of_the_service_url_close_to_expiry(cli: Cli, tmp_path: Path) -> None:
    """The https URL's certificate with 5 days left: CRITICAL with issuer and days left."""
    pki = make_pki(tmp_path / "pki", 5)
    server = TlsServer(pki).start()
    try:
        url = f"https://127.0.0.1:{server.port}"
        code, findings, _ = audit(cli, "--url", url, "--cafile", str(pki.ca_file), "--only", "tls")
    finally:
        server.stop()
    assert code == 2
    finding = findings["tls.certificate"]
    assert (
        4 <= finding["data"]["days_left"] <= 5
        and finding["data"]["issuer"] == "mlsgw test CA (mlsgw tests)"
    )


def test_a_certificate_that_does_not_verify_without_cafile_is_an_info_finding(
    cli: Cli, tmp_path: Path
) -> None:
    """90 days left from a CA the system does not know, no --cafile: reported as worth
    knowing (info, exit 0) with the reason; with --cafile of another CA it is CRITICAL."""
    pki, other = make_pki(tmp_path / "pki", 90), make_pki(tmp_path / "other", 90)
    server = TlsServer(pki).start()
    try:
        url = f"https://127.0.0.1:{server.port}"
        code, findings, _ = audit(cli, "--url", url, "--only", "tls")
        strict, strict_findings, _ = audit(
            cli, "--url", url, "--cafile", str(other.ca_file), "--only", "tls"
        )
    finally:
        server.stop()
    assert code == 0
    unverified = findings["tls.unverified"]
    assert unverified["status"] == "info" and "verification failed" in unverified["summary"]
    assert strict == 2 and strict_findings["tls.certificate"]["status"] == "critical"


# --- dependencies (real pip-audit, loopback only) -------------------------------------------


def test_pip_audit_that_cannot_reach_its_database_is_unknown_not_clean(
    cli: Cli, loopback_only: None
) -> None:
    """Real pip-audit pointed at an OSV URL on a closed loopback port: UNKNOWN, exit 3."""
    osv_url = f"http://127.0.0.1:{_closed_port()}/v1/query"
    code, findings, _ = audit(cli, "--osv-url", osv_url, "--only", "dependencies")
    assert code == 3
    finding = findings["dependencies.failed"]
    assert finding["status"] == "unknown"
    assert "pip-audit exit 1" in finding["summary"] and "refused" in finding["summary"].lower()


# --- no Google credentials ------------------------------------------------------------------

FIX = "gcloud auth application-default login"
NO_CREDENTIALS_TARGET = ("--project", "x", "--region", "y", "--service", "z", "--timeout", "1")
SEE_ABOVE = "no Google credentials (see above)"
CLOUD_AREAS = ("access-logs", "relay-access", "project-iam", "service", "firestore", "tls")


def test_no_credentials_is_one_could_not_audit_finding_and_the_local_areas_still_run(
    silent_metadata_server: str, osv: OsvStandIn, clean_config: Path, tmp_path: Path
) -> None:
    """Issue 10: the fix is named once (not in seven findings), the cloud areas are skipped
    pointing at it, the config file and the dependencies are reviewed; exit 3."""
    result = run_without_credentials(
        silent_metadata_server,
        tmp_path,
        "audit",
        *NO_CREDENTIALS_TARGET,
        "-c",
        str(clean_config),
        "--osv-url",
        osv.url,
        "--json",
    )
    assert result.returncode == 3, result.stderr
    document = json.loads(result.stdout)
    assert json.dumps(document["findings"]).count(FIX) == 1  # ("checks" repeats the list)
    assert FIX not in document["summary"]
    findings = {f["name"]: f for f in document["findings"]}
    assert list(findings)[0] == "credentials.failed"
    assert findings["credentials.failed"]["status"] == "unknown"
    assert FIX in findings["credentials.failed"]["summary"]
    for area in CLOUD_AREAS:
        assert (
            findings[f"{area}.skipped"]["summary"] == "skipped: no Google credentials (see above)"
        )
    assert findings["config.clean"]["status"] == "ok"
    assert findings["dependencies.clean"]["status"] == "ok"
    assert document["status"] == "unknown" and document["exit_code"] == 3


def test_no_credentials_in_the_human_report_names_the_fix_once(
    silent_metadata_server: str, clean_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Rich view (wide enough not to wrap the line): the fix once, exit 3."""
    monkeypatch.setenv("COLUMNS", "300")
    areas = [arg for area in (*CLOUD_AREAS, "config") for arg in ("--only", area)]
    result = run_without_credentials(
        silent_metadata_server,
        tmp_path,
        "audit",
        *NO_CREDENTIALS_TARGET,
        "-c",
        str(clean_config),
        *areas,
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.count(FIX) == 1
    assert result.stdout.count(SEE_ABOVE) == len(CLOUD_AREAS)


def test_an_audit_that_needs_no_cloud_does_not_ask_for_credentials(
    silent_metadata_server: str, tmp_path: Path
) -> None:
    """A project in the environment but only the TLS of --url to review: no credentials
    lookup, no credentials finding, the area's own result decides (exit 0)."""
    result = run_without_credentials(
        silent_metadata_server,
        tmp_path,
        "audit",
        *NO_CREDENTIALS_TARGET,
        "--url",
        "http://127.0.0.1:9",
        "--only",
        "tls",
        "--json",
    )
    assert result.returncode == 0, result.stdout
    [finding] = json.loads(result.stdout)["findings"]
    assert finding["name"] == "tls.skipped" and "not https" in finding["summary"]


# --- a clean set-up -------------------------------------------------------------------------


def test_clean_set_up_reports_clean(
    cli: Cli,
    google: GoogleStandIn,
    target_args: list[str],
    service: Any,
    clean_config: Path,
    osv: OsvStandIn,
    tmp_path: Path,
) -> None:
    """Every area reviewed and nothing found: exit 0, every finding OK. pip-audit runs for real
    against the OSV stand-in (every package clean) and the URL has a 90-day certificate."""
    google.resource_manager.set_policy(
        PROJECT,
        {
            "roles/run.admin": ["group:ops@example.com"],
            "roles/run.serviceAgent": [
                "serviceAccount:service-1@gcp-sa-run.iam.gserviceaccount.com"
            ],
        },
    )
    google.backups.add_database(PROJECT, pitr=True)
    google.backups.add_schedule(PROJECT)
    google.logging.add_request(PROJECT, SERVICE, 200)
    pki = make_pki(tmp_path / "pki", 90)
    server = TlsServer(pki).start()
    try:
        url = f"https://127.0.0.1:{server.port}"
        code, findings, document = audit(
            cli,
            *target_args,
            "-c",
            str(clean_config),
            "--url",
            url,
            "--cafile",
            str(pki.ca_file),
            "--osv-url",
            osv.url,
        )
    finally:
        server.stop()
    assert {name: f["status"] for name, f in findings.items()} == {
        f"{area}.clean": "ok"
        for area in (
            "access-logs",
            "relay-access",
            "project-iam",
            "service",
            "config",
            "firestore",
            "dependencies",
            "tls",
        )
    }
    assert code == 0 and document["status"] == "green" and document["ok"] is True
    assert osv.server.calls("POST", "/v1/query"), "pip-audit asked the OSV stand-in"


def test_unknown_area_and_two_output_formats_exit_3(cli: Cli) -> None:
    """Usage errors exit 3 (UNKNOWN), never 2 (CRITICAL)."""
    assert cli("audit", "--only", "nope").exit_code == 3
    assert cli("audit", "--json", "--nagios").exit_code == 3


@pytest.mark.parametrize("hours", ["1e308", "inf", "0", "2161"])
def test_hours_out_of_range_is_a_usage_error(cli: Cli, hours: str) -> None:
    """``--hours`` beyond 90 days (or not positive) is a usage error, not an overflow."""
    result = cli("audit", "--only", "access-logs", "--hours", hours)
    assert result.exit_code == 3 and "--hours" in result.output


# --- an endpoint that never answers ---------------------------------------------------------

SILENT_RUN_LIMIT = 30.0
"""Seconds the audit subprocess may take; with the Logging client's own 60 s it took more."""


def test_logs_from_a_silent_endpoint_time_out_after_the_target_timeout(
    silent_metadata_server: str, tmp_path: Path
) -> None:
    """An endpoint that accepts and never answers, ``--timeout 2``: the Logging areas wait
    the target's timeout (not the client's own 60 s) and say they timed out; exit 3."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLSGW_", "CLOUDSDK_"))}
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    env.update(
        NO_GCE_CHECK="true",
        CLOUDSDK_CONFIG=str(tmp_path / "gcloud"),
        MLSGW_CONFIG=str(empty),
        XDG_STATE_HOME=str(tmp_path / "state"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "mlsgw", "audit", "--project", PROJECT, "--region", REGION]
        + ["--service", SERVICE, "--endpoint", f"http://{silent_metadata_server}"]
        + ["--timeout", "2", "--only", "access-logs", "--only", "relay-access", "--json"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=SILENT_RUN_LIMIT,
    )
    assert result.returncode == 3, result.stderr
    findings = {f["name"]: f for f in json.loads(result.stdout)["findings"]}
    for area in ("access-logs", "relay-access"):
        finding = findings[f"{area}.failed"]
        assert finding["status"] == "unknown"
        assert "timed out" in finding["summary"] and "timeout=2" in finding["summary"]
