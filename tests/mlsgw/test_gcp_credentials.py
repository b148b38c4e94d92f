"""Credentials are looked up once, within a bound: with none and a metadata server that
never answers, the health check says so in one line and exits 3 (UNKNOWN)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mlsgw.gcp.credentials import without_urls

ROOT = Path(__file__).resolve().parents[2]
RUN_LIMIT = 120.0  # seconds; only reached if the command hangs


def run_without_credentials(
    metadata: str, tmp_path: Path, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    """``mlsgw`` with no credentials anywhere and the metadata server at ``metadata``
    (``extra``: more environment variables, e.g. ``MLSGW_OSV_URL``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLSGW_", "CLOUDSDK_"))}
    env.pop("NO_GCE_CHECK", None)  # only in this subprocess: let google-auth try the server
    gcloud = tmp_path / "gcloud-empty"
    gcloud.mkdir()
    config = tmp_path / "empty.toml"
    config.write_text("")
    env.update(
        GCE_METADATA_HOST=metadata,
        GCE_METADATA_IP=metadata,
        GOOGLE_APPLICATION_CREDENTIALS="",
        CLOUDSDK_CONFIG=str(gcloud),
        MLSGW_CONFIG=str(config),
        XDG_STATE_HOME=str(tmp_path / "state"),
        **extra,
    )
    return subprocess.run(
        [sys.executable, "-m", "mlsgw", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT,
    )


TARGET = ("--project", "x", "--region", "y", "--service", "z", "--timeout", "2")


def test_no_credentials_is_one_unknown_line_with_the_fix(
    silent_metadata_server: str, tmp_path: Path
) -> None:
    """--nagios: one UNKNOWN line naming `gcloud auth application-default login`, exit 3;
    not six checks 'timed out' (which made the verdict red)."""
    result = run_without_credentials(
        silent_metadata_server, tmp_path, "healthcheck", *TARGET, "--nagios"
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith("MLSGW UNKNOWN - no Google credentials")
    assert "gcloud auth application-default login" in result.stdout
    assert result.stdout.count("\n") == 1
    assert "timed out" not in result.stdout and "http" not in result.stdout


def test_no_credentials_in_json_is_reported_once_before_any_check(
    silent_metadata_server: str, tmp_path: Path
) -> None:
    """--json: the error document, no findings (nothing was checked), the message once."""
    result = run_without_credentials(
        silent_metadata_server, tmp_path, "healthcheck", *TARGET, "--json"
    )
    assert result.returncode == 3, result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "unknown" and document["exit_code"] == 3
    assert document["findings"] == []
    assert document["summary"].count("gcloud auth application-default login") == 1


def test_no_credentials_for_an_action_is_refused_with_the_fix(
    silent_metadata_server: str, tmp_path: Path
) -> None:
    """An action without credentials is refused (exit 3) with the same one-line fix."""
    result = run_without_credentials(
        silent_metadata_server, tmp_path, "rollback", *TARGET, "--yes", "--json"
    )
    assert result.returncode == 3, result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "refused"
    assert "gcloud auth application-default login" in document["summary"]


def test_urls_are_removed_from_vendor_messages() -> None:
    """google-auth's messages carry documentation and metadata URLs; users get the text."""
    message = (
        "Your default credentials were not found. To set up Application Default Credentials, "
        "see https://cloud.google.com/docs/authentication/external/set-up-adc for more "
        "information."
    )
    assert without_urls(message) == (
        "Your default credentials were not found. To set up Application Default Credentials, "
        "see for more information."
    )
