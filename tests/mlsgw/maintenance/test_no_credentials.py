"""``mlsgw maintenance weekly`` without Google credentials (a metadata server that never
answers): looked up once within --timeout, said once with the fix, exit 3 (a task could not
run); the tasks that need Google Cloud are skipped pointing at it, the others run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mlsgw.test_gcp_credentials import run_without_credentials
from tests.stand_ins.osv import OsvStandIn

FIX = "gcloud auth application-default login"
SEE_ABOVE = "skipped: no Google credentials (see above)"
TARGET = ("--project", "x", "--region", "y", "--service", "z", "--timeout", "1")
CLOUD_TASKS = ("performance_review", "sweep_report", "registry_images", "log_retention")


@pytest.fixture
def osv(monkeypatch: pytest.MonkeyPatch) -> Iterator[OsvStandIn]:
    """The OSV stand-in for the dependency audit's real pip-audit run, reached directly."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    stand_in = OsvStandIn().start()
    yield stand_in
    stand_in.stop()


def test_weekly_without_credentials_names_the_fix_once_and_still_audits_dependencies(
    silent_metadata_server: str, osv: OsvStandIn, tmp_path: Path
) -> None:
    """--json: one ``credentials`` result (unknown, with the fix), the four cloud tasks
    skipped pointing at it (not the fix three times), the dependency audit clean; exit 3."""
    result = run_without_credentials(
        silent_metadata_server,
        tmp_path,
        *("maintenance", "weekly", *TARGET, "--metrics-key", "k", "--json"),
        MLSGW_OSV_URL=osv.url,
    )
    assert result.returncode == 3, result.stderr
    document = json.loads(result.stdout)
    assert json.dumps(document["findings"]).count(FIX) == 1  # ("checks" repeats the list)
    assert FIX not in document["summary"]
    results = {f["name"]: f for f in document["findings"]}
    assert list(results)[0] == "credentials"
    assert results["credentials"]["status"] == "unknown"
    assert FIX in results["credentials"]["summary"]
    assert {name: results[name]["summary"] for name in CLOUD_TASKS} == dict.fromkeys(
        CLOUD_TASKS, SEE_ABOVE
    )
    assert results["dependency_audit"]["status"] == "ok"
    assert document["exit_code"] == 3


def test_weekly_without_credentials_in_the_human_report_names_the_fix_once(
    silent_metadata_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Rich view (wide enough not to wrap the line): the fix once, exit 3."""
    monkeypatch.setenv("COLUMNS", "300")
    tasks = [arg for task in CLOUD_TASKS for arg in ("--task", task)]
    result = run_without_credentials(
        silent_metadata_server,
        tmp_path,
        *("maintenance", "weekly", *TARGET, "--metrics-key", "k", *tasks),
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.count(FIX) == 1
    assert result.stdout.count(SEE_ABOVE) == len(CLOUD_TASKS)


def test_weekly_tasks_that_need_no_cloud_do_not_ask_for_credentials(
    silent_metadata_server: str, tmp_path: Path
) -> None:
    """Only the sweep report of --url (a closed port): no credentials lookup and no
    ``credentials`` result, the task's own outcome decides."""
    result = run_without_credentials(
        silent_metadata_server,
        tmp_path,
        *("maintenance", "weekly", *TARGET, "--metrics-key", "k", "--url", "http://127.0.0.1:9"),
        *("--task", "sweep_report", "--json"),
    )
    [finding] = json.loads(result.stdout)["findings"]
    assert finding["name"] == "sweep_report" and "cannot read" in finding["summary"]
