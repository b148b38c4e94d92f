"""pip-audit results -> findings (pure). "Vulnerable", "clean" and "scan failed" differ."""

from __future__ import annotations

import json
from pathlib import Path

from mlsgw.audit.dependencies import ScanRun, review_scan
from mlsgw.report import Status

# Recorded: the real pip-audit 2.10.1 JSON (``--format json``), from a run against the OSV
# stand-in (tests/stand_ins/osv.py) with vulnerabilities planted for typer and requests,
# trimmed to five packages. Fed through the same parser the command uses.
RECORDED = (Path(__file__).parent / "pip_audit_vulnerable.json").read_text()


def test_recorded_vulnerable_scan_is_a_warning_naming_each_vulnerability_and_fix() -> None:
    """pip-audit exits 1 with vulnerabilities: one ``deps.vulnerable`` finding, not UNKNOWN."""
    [finding] = review_scan(ScanRun(1, RECORDED, "Found 2 known vulnerabilities in 2 packages"))
    assert finding.code == "deps.vulnerable" and finding.severity is Status.WARNING
    assert finding.evidence == (
        "requests 2.34.2: PYSEC-test-0002 (fix: 9.0)",
        "typer 0.29.2: CVE-2026-0001 (fix: 99.0)",
    )
    assert finding.data["audited"] == 5


def test_clean_scan_is_ok_and_lists_what_was_not_audited() -> None:
    """Exit 0, no vulnerabilities: OK; skipped packages are named, not hidden."""
    document = {
        "dependencies": [
            {"name": "rich", "version": "15.0.0", "vulns": []},
            {"name": "mlsgw", "skip_reason": "Dependency not found on PyPI"},
        ],
        "fixes": [],
    }
    [finding] = review_scan(ScanRun(0, json.dumps(document), ""))
    assert finding.severity is Status.OK
    assert finding.evidence == ("not audited: mlsgw: Dependency not found on PyPI",)


def test_a_scan_that_could_not_reach_its_database_is_unknown() -> None:
    """Exit 1 with a traceback and no JSON (the real failure shape): UNKNOWN, with the reason."""
    stderr = "Traceback ...\nrequests.exceptions.ConnectionError: Connection refused\n"
    [finding] = review_scan(ScanRun(1, "", stderr))
    assert finding.severity is Status.UNKNOWN
    assert "ConnectionError: Connection refused" in finding.summary


def test_exit_1_with_json_but_no_vulnerability_is_unknown_not_clean() -> None:
    """pip-audit failing after printing a clean-looking document is still not a pass."""
    [finding] = review_scan(ScanRun(1, json.dumps({"dependencies": []}), "error: boom"))
    assert finding.severity is Status.UNKNOWN


def test_scan_that_did_not_run_is_unknown() -> None:
    """Timed out or not installed: UNKNOWN."""
    [finding] = review_scan(ScanRun(None, "", "timed out after 300 s"))
    assert finding.severity is Status.UNKNOWN and "did not run" in finding.summary


def test_garbage_on_stdout_is_unknown() -> None:
    """Exit 0 but no pip-audit document: UNKNOWN."""
    [finding] = review_scan(ScanRun(0, "not json", ""))
    assert finding.severity is Status.UNKNOWN
