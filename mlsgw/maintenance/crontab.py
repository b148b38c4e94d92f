"""``mlsgw schedule``: the runbook's schedule as crontab lines (pure: builds text, runs nothing).

Daily 09:00 UTC health check; weekly tasks on Sunday at the hour each task names (02:00,
03:00, 04:00); monthly tasks on the first Sunday; quarterly tasks on the first Sunday of
January, April, July and October. cron cannot say "first Sunday" (day of month and day of
week are ORed), so those lines run every Sunday and a ``date`` test lets only days 1-7 pass."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from mlsgw.maintenance.task import Task

FIRST_WEEK = '[ "$(date -u +\\%d)" -le 7 ] && '
"""``%`` is special in crontab lines (it starts stdin): escaped."""


@dataclass(frozen=True)
class CronEntry:
    """One crontab line: when, what, and where its output goes."""

    when: str
    """The five cron fields."""
    guard: str
    command: str
    log: str
    comment: str

    def line(self) -> str:
        """The line to paste."""
        return f"{self.when} {self.guard}{self.command} >> {shlex.quote(self.log)} 2>&1"


def _by_hour(tasks: tuple[Task, ...]) -> dict[int, list[Task]]:
    hours: dict[int, list[Task]] = {}
    for task in tasks:
        hours.setdefault(task.hour, []).append(task)
    return dict(sorted(hours.items()))


def entries(
    schedules: Mapping[str, tuple[Task, ...]],
    *,
    mlsgw: str,
    config: str | None,
    log_dir: str,
) -> list[CronEntry]:
    """The crontab entries for ``schedules`` (a schedule without tasks gets no line)."""
    base = [mlsgw] + (["--config", config] if config else [])

    def command(*words: str) -> str:
        head = [base[0], *words, *base[1:]]
        return " ".join(shlex.quote(w) for w in head)

    log = str(PurePosixPath(log_dir))
    out = [
        CronEntry(
            "0 9 * * *",
            "",
            command("healthcheck"),
            f"{log}/healthcheck.log",
            "morning health check, daily 09:00 UTC",
        )
    ]
    timing = {
        "weekly": ("* * 0", "", "Sunday"),
        "monthly": ("* * 0", FIRST_WEEK, "first Sunday of the month"),
        "quarterly": ("* 1,4,7,10 0", FIRST_WEEK, "first Sunday of the quarter"),
    }
    for schedule, (days, guard, when) in timing.items():
        for hour, tasks in _by_hour(schedules.get(schedule, ())).items():
            names = [t.name for t in tasks]
            words = ["maintenance", schedule]
            if len(tasks) < len(schedules[schedule]):
                for name in names:
                    words += ["--task", name]
            if any(t.changes for t in tasks):
                words.append("--yes")
            out.append(
                CronEntry(
                    f"0 {hour} {days}",
                    guard,
                    command(*words),
                    f"{log}/{schedule}.log",
                    f"{schedule}: {', '.join(names)} — {when} {hour:02d}:00 UTC",
                )
            )
    return out


def crontab(lines: list[CronEntry]) -> str:
    """The text to paste into ``crontab -e``: a header, then each entry under its comment."""
    text = [
        "# mlsgw runbook schedule (mlsgw schedule). Times are UTC: CRON_TZ works with cronie;",
        "# with Debian's cron, run this on a machine whose clock is UTC.",
        "CRON_TZ=UTC",
    ]
    for entry in lines:
        text += ["", f"# {entry.comment}", entry.line()]
    return "\n".join(text) + "\n"
