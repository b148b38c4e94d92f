"""bench/compare.py: what a run reports, not how fast it was.

A benchmark's figures are never asserted. This checks that a short run of every mode
against a real ``mlsgw serve`` has no errors, and that the report and the JSON carry the
relay's CPU split by thread (issue 13, point 3).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.process import REPO, base_env

BENCH = REPO / "bench"
# Only a failure guard: the short runs below take seconds.
RUN_TIMEOUT = 180.0
SHORT_LOAD = [
    "--loadgen-arg=--events=3000",
    "--loadgen-arg=--authors=4",
    "--loadgen-arg=--seed-per-author=10",
    "--loadgen-arg=--fanout-events=10",
    "--loadgen-arg=--rate=50",
    "--loadgen-arg=--sign-workers=1",
]


def test_a_short_run_measures_every_mode_and_splits_the_relay_cpu_by_thread(
    tmp_path: Path,
) -> None:
    report, results = tmp_path / "report.md", tmp_path / "results.json"
    command = [
        sys.executable,
        str(BENCH / "compare.py"),
        "--relays=mlsgw",
        f"--mlsgw-cmd={sys.executable} -m mlsgw",
        "--modes=publish,req,fanout",
        "--publish-windows=1,4",
        "--connections=2",
        "--subscribers=3",
        "--duration=1",
        "--warmup=0.2",
        "--rounds=1",
        "--quiet-wait=0",
        *SHORT_LOAD,
        f"--out={report}",
        f"--json-out={results}",
    ]
    run = subprocess.run(
        command,
        cwd=tmp_path,
        env=base_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    cells = json.loads(results.read_text())
    assert set(cells) == {"publish@1", "publish@4", "req@1", "fanout@1"}
    for cell, by_relay in cells.items():
        result = by_relay["mlsgw"]
        assert result["errors"] == 0, (cell, result["error_kinds"])
        assert result["operations"] > 0, cell
        assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"] <= result["max_ms"]
        assert result["relay_cpu_s"] is not None, cell  # measured (a short fan-out may be 0.0)
    publish = cells["publish@4"]["mlsgw"]
    assert publish["relay_cpu_s"] > 0
    assert {"main", "sqlite-writer"} <= set(publish["relay_threads"])
    row = "| publish 2×4: relay CPU by thread (cores) | "
    split = next(line for line in report.read_text().splitlines() if line.startswith(row))
    assert "main " in split and "sqlite-writer " in split  # e.g. "main 0.40, sqlite-writer 0.30"
