"""Target resolution: flags over MLSGW_* over [ops] over gcloud's defaults, with sources;
[ops] read alone and leniently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlsgw.errors import UsageError
from mlsgw.target import ENV_NAMES, OPS_FIELDS, resolve_target
from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli
from tests.stand_ins.google import GoogleStandIn


def gcloud_config(root: Path, name: str, body: str, *, active: bool = True) -> Path:
    """A gcloud configuration directory with configuration ``name`` (active by default)."""
    (root / "configurations").mkdir(parents=True, exist_ok=True)
    (root / "configurations" / f"config_{name}").write_text(body)
    if active:
        (root / "active_config").write_text(name + "\n")
    return root


def test_every_ops_field_has_a_flag_variable_and_key_derived_from_its_name() -> None:
    """One definition: [ops] field -> MLSGW_<NAME> (endpoint keeps MLSGW_GCP_ENDPOINT)."""
    assert "backup_bucket" in OPS_FIELDS and "timeout" in OPS_FIELDS
    assert ENV_NAMES["region"] == "MLSGW_REGION"
    assert ENV_NAMES["backup_bucket"] == "MLSGW_BACKUP_BUCKET"
    assert ENV_NAMES["endpoint"] == "MLSGW_GCP_ENDPOINT"


def test_project_and_region_come_from_the_active_gcloud_configuration(tmp_path: Path) -> None:
    """With nothing else set, core/project and run/region of the active configuration."""
    root = gcloud_config(
        tmp_path / "gcloud", "prod", "[core]\nproject = from-gcloud\n[run]\nregion = asia-east1\n"
    )
    target = resolve_target(config=None, environ={"CLOUDSDK_CONFIG": str(root)})
    assert (target.project, target.region) == ("from-gcloud", "asia-east1")
    assert target.source_of("project") == "gcloud configuration 'prod' (core/project)"
    assert target.source_of("region") == "gcloud configuration 'prod' (run/region)"


def test_gcloud_precedence_env_before_configuration_and_mlsgw_before_gcloud(
    tmp_path: Path,
) -> None:
    """CLOUDSDK_CORE_PROJECT > GOOGLE_CLOUD_PROJECT > core/project; MLSGW_* and flags above."""
    root = gcloud_config(tmp_path / "gcloud", "default", "[core]\nproject = conf\n")
    env = {"CLOUDSDK_CONFIG": str(root), "GOOGLE_CLOUD_PROJECT": "gcp-env"}
    assert resolve_target(environ=env).project == "gcp-env"
    env["CLOUDSDK_CORE_PROJECT"] = "sdk-env"
    target = resolve_target(environ=env)
    assert (
        target.project == "sdk-env" and target.source_of("project") == "env CLOUDSDK_CORE_PROJECT"
    )
    env["MLSGW_PROJECT"] = "mlsgw-env"
    assert resolve_target(environ=env).project == "mlsgw-env"
    flagged = resolve_target(environ=env, project="flag")
    assert flagged.project == "flag" and flagged.source_of("project") == "--project"


def test_ops_in_the_config_file_comes_before_gcloud(tmp_path: Path) -> None:
    """[ops] region beats CLOUDSDK_RUN_REGION; the source names the file."""
    config = tmp_path / "ops.toml"
    config.write_text('[ops]\nregion = "europe-west4"\n')
    target = resolve_target(config=config, environ={"CLOUDSDK_RUN_REGION": "us-central1"})
    assert target.region == "europe-west4"
    assert target.source_of("region") == f"[ops] in {config}"
    assert resolve_target(environ={"CLOUDSDK_RUN_REGION": "us-central1"}).region == "us-central1"


def test_the_active_configuration_can_be_chosen_by_environment(tmp_path: Path) -> None:
    """CLOUDSDK_ACTIVE_CONFIG_NAME overrides the active_config file."""
    root = gcloud_config(tmp_path / "gcloud", "prod", "[core]\nproject = prod-proj\n")
    gcloud_config(root, "staging", "[core]\nproject = staging-proj\n", active=False)
    env = {"CLOUDSDK_CONFIG": str(root), "CLOUDSDK_ACTIVE_CONFIG_NAME": "staging"}
    assert resolve_target(environ=env).project == "staging-proj"


def test_a_malformed_gcloud_configuration_is_ignored(tmp_path: Path) -> None:
    """gcloud's defaults are a convenience: an unreadable file never stops a command."""
    root = gcloud_config(tmp_path / "gcloud", "default", "not an ini file [")
    assert resolve_target(environ={"CLOUDSDK_CONFIG": str(root)}).project is None


def test_other_sections_and_their_variables_are_not_read(tmp_path: Path) -> None:
    """A bad [auth] key, a bad [network] value and a stray MLSGW_AUTH__ variable: ignored."""
    config = tmp_path / "mixed.toml"
    config.write_text(
        '[auth]\nno_such_key = 1\n[network]\nport = "eighty"\n[ops]\nservice = "relay"\n'
    )
    env = {"MLSGW_AUTH__NOPE": "x", "MLSGW_NETWORK__PORT": "abc"}
    assert resolve_target(config=config, environ=env).service == "relay"


def test_ops_overrides_from_the_environment_and_unknown_keys_warn(tmp_path: Path) -> None:
    """MLSGW_OPS__TIMEOUT is read as a duration; an unknown [ops] key is a warning."""
    config = tmp_path / "ops.toml"
    config.write_text('[ops]\nservice = "relay"\nfuture_setting = true\n')
    target = resolve_target(config=config, environ={"MLSGW_OPS__TIMEOUT": "30s"})
    assert target.timeout == 30.0 and target.source_of("timeout") == "env MLSGW_OPS__TIMEOUT"
    assert any("ops.future_setting" in w for w in target.warnings)


@pytest.mark.parametrize(
    ("body", "named"),
    [('[ops]\ntimeout = "soon"\n', "ops.timeout"), ("[ops]\nproject = 7\n", "ops.project")],
)
def test_a_bad_ops_value_is_a_usage_error_naming_the_key(
    tmp_path: Path, body: str, named: str
) -> None:
    """A wrong type in [ops] stops the command: guessing a target is worse."""
    config = tmp_path / "bad.toml"
    config.write_text(body)
    with pytest.raises(UsageError, match=named):
        resolve_target(config=config, environ={})


def test_a_missing_or_invalid_config_file_is_a_usage_error(tmp_path: Path) -> None:
    """--config naming nothing, or not TOML: exit 3 material, never silently no [ops]."""
    with pytest.raises(UsageError, match="not found"):
        resolve_target(config=tmp_path / "nope.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[ops\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        resolve_target(config=broken, environ={})


def test_rollback_runs_despite_a_bad_auth_section_and_stray_variables(
    cli: Cli,
    google: GoogleStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In an incident, a relay-config mistake never blocks the runbook."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    config = tmp_path / "relay.toml"
    config.write_text(
        f'[auth]\nenabled = "maybe"\n[ops]\nproject = "{PROJECT}"\nregion = "{REGION}"\n'
        f'service = "{SERVICE}"\n'
    )
    monkeypatch.setenv("MLSGW_AUTH__PUBKEY_WHITELIST", "not-a-pubkey")
    result = cli(
        "rollback", "--config", str(config), "--endpoint", google.url, "--dry-run", "--json"
    )
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["status"] == "planned"


def test_the_report_names_where_each_value_came_from(
    cli: Cli, google: GoogleStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Project from gcloud's configuration, region from CLOUDSDK_RUN_REGION, service flag:
    each named in --json's target.sources and on the human report's target line."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    root = gcloud_config(tmp_path / "gcloud", "ops", f"[core]\nproject = {PROJECT}\n")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(root))
    monkeypatch.setenv("CLOUDSDK_RUN_REGION", REGION)
    args = ("rollback", "--service", SERVICE, "--endpoint", google.url, "--dry-run")
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.stdout
    sources = json.loads(result.stdout)["target"]["sources"]
    assert sources["project"] == "gcloud configuration 'ops' (core/project)"
    assert sources["region"] == "env CLOUDSDK_RUN_REGION"
    assert sources["service"] == "--service"
    backup = cli(
        "backup", "list", "--project", PROJECT, "--bucket", "b", "--endpoint", google.url, "--json"
    )
    assert json.loads(backup.stdout)["target"]["sources"]["backup_bucket"] == "--bucket"
    human = cli(*args)
    assert "gcloud configuration 'ops'" in human.stdout
    assert "CLOUDSDK_RUN_REGION" in human.stdout


BAD_URLS = [
    ("http://[::1", "is not a valid URL"),
    ("http://x:99999", "the port must be a number 1-65535"),
    ("http://x:0", "the port must be a number 1-65535"),
    ("https://:80", "has no host"),
    ("http://a b", "contains spaces"),
]


@pytest.mark.parametrize(("url", "says"), BAD_URLS)
@pytest.mark.parametrize("name", ["url", "endpoint"])
def test_a_malformed_url_is_a_usage_error_from_every_source(
    tmp_path: Path, name: str, url: str, says: str
) -> None:
    """Unparseable, a bad port, no host, spaces: refused where the target is resolved, the
    message naming the flag, the variable or the file's key (a typo, never an outage)."""
    with pytest.raises(UsageError, match=f"--{name} .*{says}"):
        resolve_target(environ={}, flags={name: url})
    with pytest.raises(UsageError, match=f"env {ENV_NAMES[name]} .*{says}"):
        resolve_target(environ={ENV_NAMES[name]: url})
    config = tmp_path / "ops.toml"
    config.write_text(f"[ops]\n{name} = {json.dumps(url)}\n")
    with pytest.raises(UsageError, match=f"ops.{name} .*{says}"):
        resolve_target(config=config, environ={})


@pytest.mark.parametrize(
    ("name", "value"),
    [("timeout", "0"), ("timeout", "3601"), ("timeout", "1e308"), ("timeout", "nan")]
    + [("rpo_hours", "0"), ("rpo_hours", "8761"), ("rpo_hours", "nan")],
)
def test_timeout_and_rpo_out_of_bounds_are_refused_from_every_source(
    tmp_path: Path, name: str, value: str
) -> None:
    """The flag's bounds (0.1 to 3600 s, 0.1 to 8760 h) hold for the flag, MLSGW_<NAME>,
    MLSGW_OPS__<NAME> and [ops]: a zero timeout would be a false outage, a huge one a crash."""
    expected = "expected a (duration|number) from 0.1"
    with pytest.raises(UsageError, match=f"--{name.replace('_', '-')}: {expected}"):
        resolve_target(environ={}, flags={name: float(value)})
    with pytest.raises(UsageError, match=f"{ENV_NAMES[name]}: {expected}"):
        resolve_target(environ={ENV_NAMES[name]: value})
    with pytest.raises(UsageError, match=f"MLSGW_OPS__{name.upper()}: {expected}"):
        resolve_target(environ={f"MLSGW_OPS__{name.upper()}": value})
    config = tmp_path / "ops.toml"
    config.write_text(f"[ops]\n{name} = {value}\n")
    with pytest.raises(UsageError, match=f"ops.{name}: {expected}"):
        resolve_target(config=config, environ={})


def test_timeout_and_rpo_at_their_bounds_are_accepted() -> None:
    """The bounds themselves are valid values."""
    env = {"MLSGW_TIMEOUT": "1h", "MLSGW_RPO_HOURS": "0.1"}
    target = resolve_target(environ=env)
    assert (target.timeout, target.rpo_hours) == (3600.0, 0.1)
    assert resolve_target(environ={}, timeout=0.1, rpo_hours=8760.0).rpo_hours == 8760.0


@pytest.mark.parametrize(
    "value",
    ["127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1", "http://127.0.0.1:9", "garbage"]
    + ["[::1:9", ":8085", "a b:1", "host:1/path"],
)
def test_a_monitoring_endpoint_that_is_not_host_port_is_a_usage_error(
    tmp_path: Path, value: str
) -> None:
    """HOST:PORT with a port 1-65535 and no scheme, from any source: 99999 would otherwise
    wrap to port 34463, and a URL or a bare word become a DNS failure."""
    with pytest.raises(UsageError, match="--monitoring-endpoint .*give HOST:PORT"):
        resolve_target(environ={}, monitoring_endpoint=value)
    env = {"MLSGW_MONITORING_ENDPOINT": value}
    with pytest.raises(UsageError, match="env MLSGW_MONITORING_ENDPOINT .*give HOST:PORT"):
        resolve_target(environ=env)
    config = tmp_path / "ops.toml"
    config.write_text(f"[ops]\nmonitoring_endpoint = {json.dumps(value)}\n")
    with pytest.raises(UsageError, match="ops.monitoring_endpoint .*give HOST:PORT"):
        resolve_target(config=config, environ={})


@pytest.mark.parametrize("value", ["127.0.0.1:8085", "[::1]:8085", "monitoring.local:1"])
def test_a_monitoring_endpoint_host_port_is_accepted(value: str) -> None:
    """IPv4, bracketed IPv6 and names, with a port."""
    assert resolve_target(environ={}, monitoring_endpoint=value).monitoring_endpoint == value


def test_cli_a_malformed_url_answers_with_the_error_document_or_the_nagios_line(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--json: one failure document, exit 3; --nagios: one UNKNOWN line; never a traceback."""
    result = cli("healthcheck", "--url", "http://[::1", "--json")
    assert result.exit_code == 3, result.output
    document = json.loads(result.stdout)
    assert (document["status"], document["exit_code"]) == ("unknown", 3)
    assert document["summary"].startswith("--url 'http://[::1' is not a valid URL")
    monkeypatch.setenv("MLSGW_URL", "http://[::1")
    result = cli("healthcheck", "--nagios")
    assert result.exit_code == 3
    assert result.stdout.startswith("MLSGW UNKNOWN - env MLSGW_URL 'http://[::1' is not a valid")
    assert result.stdout.count("\n") == 1


def test_cli_a_huge_timeout_is_a_usage_error_before_any_call(
    cli: Cli, google: GoogleStandIn, target_args: list[str], tmp_path: Path
) -> None:
    """--timeout 1e12 used to crash an action with OverflowError: now exit 3 naming the
    flag and its range, with nothing changed."""
    google.run.add_service(PROJECT, REGION, SERVICE, ["img:1", "img:2"])
    ledger = str(tmp_path / "ledger.jsonl")
    args = ("rollback", *target_args, "--yes", "--ledger", ledger, "--json")
    result = cli(*args, "--timeout", "1e12")
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["summary"] == (
        "--timeout: expected a number from 0.1 s to 3600 s, got 1e+12"
    )
    assert not Path(ledger).exists()


def test_cli_a_zero_timeout_from_the_environment_is_unknown_not_critical(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLSGW_TIMEOUT=0 was accepted and every probe failed (exit 2): now exit 3, as --timeout 0."""
    monkeypatch.setenv("MLSGW_TIMEOUT", "0")
    result = cli("healthcheck", "--url", "http://127.0.0.1:9", "--nagios")
    assert result.exit_code == 3
    assert result.stdout.startswith("MLSGW UNKNOWN - MLSGW_TIMEOUT: expected a duration from 0.1")


def test_cli_a_monitoring_endpoint_port_out_of_range_is_a_usage_error(
    cli: Cli, target_args: list[str]
) -> None:
    """--monitoring-endpoint 127.0.0.1:99999 is refused (exit 3), not dialled as port 34463."""
    result = cli("healthcheck", *target_args, "--monitoring-endpoint", "127.0.0.1:99999", "--json")
    assert result.exit_code == 3, result.output
    assert "--monitoring-endpoint '127.0.0.1:99999': give HOST:PORT" in result.stdout
