"""relay.store.sqlite_writer: how the writer runs a batch of jobs (no threads here)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from relay.store.sqlite_writer import run_jobs


@dataclass(frozen=True)
class Together:
    """A job that may run together with its neighbours of the same kind."""

    name: str
    calls: list[str]

    def __call__(self, conn: sqlite3.Connection) -> str:
        self.calls.append(f"alone {self.name}")
        return self.name.upper()

    @staticmethod
    def combine(conn: sqlite3.Connection, jobs: Sequence[Together]) -> list[str]:
        jobs[0].calls.append("together " + "+".join(job.name for job in jobs))
        return [job.name.upper() for job in jobs]


def test_neighbouring_combinable_jobs_run_as_one_call_and_keep_their_values_in_order() -> None:
    """Consecutive jobs with the same combine function run in one call; a plain job
    between them splits the run; every job's value comes back in its place."""
    calls: list[str] = []
    conn = sqlite3.connect(":memory:")

    def plain(conn: sqlite3.Connection) -> str:
        calls.append("plain")
        return "plain"

    jobs: list[Callable[[sqlite3.Connection], str]] = [
        Together("a", calls),
        Together("b", calls),
        plain,
        Together("c", calls),
    ]
    assert run_jobs(conn, jobs) == ["A", "B", "plain", "C"]
    assert calls == ["together a+b", "plain", "together c"]
