"""``mlsgw schedule``: the crontab lines (pure entries, and the CLI's text and JSON)."""

from __future__ import annotations

import json

from mlsgw.maintenance.crontab import crontab, entries
from mlsgw.maintenance.schedules import SCHEDULES
from mlsgw.maintenance.task import Task
from mlsgw.report import CheckResult, Status
from tests.mlsgw.conftest import Cli


def _ok(name: str) -> Task:
    return Task(name, name, lambda ctx: CheckResult(name, Status.OK, "ok"))


FAKE = {
    "weekly": (
        Task("audit", "audit", _ok("audit").run, hour=2),
        Task("review", "review", _ok("review").run, hour=3),
        Task("images", "images", _ok("images").run, hour=4),
    ),
    "monthly": (Task("certs", "certs", _ok("certs").run, hour=5),),
    "quarterly": (Task("drill", "drill", _ok("drill").run, hour=6, changes=True),),
}


def test_lines_cover_the_daily_check_sunday_slots_first_sunday_and_quarterly_drill() -> None:
    lines = [
        e.line()
        for e in entries(FAKE, mlsgw="/opt/mlsgw", config="/etc/mlsgw.toml", log_dir="/var/log/m")
    ]
    assert lines == [
        "0 9 * * * /opt/mlsgw healthcheck --config /etc/mlsgw.toml"
        " >> /var/log/m/healthcheck.log 2>&1",
        "0 2 * * 0 /opt/mlsgw maintenance weekly --task audit --config /etc/mlsgw.toml"
        " >> /var/log/m/weekly.log 2>&1",
        "0 3 * * 0 /opt/mlsgw maintenance weekly --task review --config /etc/mlsgw.toml"
        " >> /var/log/m/weekly.log 2>&1",
        "0 4 * * 0 /opt/mlsgw maintenance weekly --task images --config /etc/mlsgw.toml"
        " >> /var/log/m/weekly.log 2>&1",
        '0 5 * * 0 [ "$(date -u +\\%d)" -le 7 ] && /opt/mlsgw maintenance monthly'
        " --config /etc/mlsgw.toml >> /var/log/m/monthly.log 2>&1",
        '0 6 * 1,4,7,10 0 [ "$(date -u +\\%d)" -le 7 ] && /opt/mlsgw maintenance quarterly'
        " --yes --config /etc/mlsgw.toml >> /var/log/m/quarterly.log 2>&1",
    ]


def test_paths_with_spaces_are_quoted_and_the_text_sets_utc() -> None:
    text = crontab(entries(FAKE, mlsgw="/opt/my tools/mlsgw", config=None, log_dir="/logs dir"))
    assert "CRON_TZ=UTC" in text.splitlines()
    assert "'/opt/my tools/mlsgw' healthcheck >> '/logs dir/healthcheck.log' 2>&1" in text


def test_the_cli_prints_every_shipped_task_in_a_line(cli: Cli) -> None:
    result = cli("schedule", "--mlsgw", "mlsgw", "--log-dir", "/tmp/logs")
    assert result.exit_code == 0
    assert "0 9 * * * mlsgw healthcheck >> /tmp/logs/healthcheck.log 2>&1" in result.stdout
    for schedule, tasks in SCHEDULES.items():
        for task in tasks:
            assert task.name in result.stdout, (schedule, task.name)
    doc = json.loads(cli("schedule", "--mlsgw", "mlsgw", "--json").stdout)
    # The common --json shape (R-O2), the lines under data.
    assert {"command", "ok", "status", "steps", "run_id"} <= set(doc)
    assert doc["command"] == "schedule" and doc["ok"] is True and doc["run_id"]
    assert doc["data"]["entries"][0]["when"] == "0 9 * * *"
