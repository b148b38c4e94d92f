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


def _not_on_pypi(name: str) -> dict[str, str]:
    """A package pip-audit skipped, with the reason its PyPI service gives (2.10.1)."""
    return {
        "name": name,
        "skip_reason": f"Dependency not found on PyPI and could not be audited: {name} (1.0)",
    }


def test_a_scan_that_audited_no_package_is_unknown_not_clean() -> None:
    """Exit 0 with every package skipped (PyPI unreachable behind a proxy answering 404): not
    "no known vulnerabilities in 0 packages" but UNKNOWN, with the count and the first reason."""
    document = {"dependencies": [_not_on_pypi("aiohttp"), _not_on_pypi("rich")], "fixes": []}
    [finding] = review_scan(ScanRun(0, json.dumps(document), ""))
    assert finding.code == "dependencies.failed" and finding.severity is Status.UNKNOWN
    assert finding.summary == (
        "could not audit: pip-audit audited none of 2 installed package(s), 2 skipped (first: "
        "Dependency not found on PyPI and could not be audited: aiohttp (1.0))"
    )
    assert finding.data["audited"] == 0


def test_a_scan_that_listed_no_package_is_unknown() -> None:
    """An empty dependency list audited nothing either."""
    [finding] = review_scan(ScanRun(0, json.dumps({"dependencies": [], "fixes": []}), ""))
    assert finding.severity is Status.UNKNOWN and "listed no installed packages" in finding.summary


def test_a_scan_that_skipped_most_packages_is_unknown_and_still_lists_its_vulnerabilities() -> None:
    """More skipped than audited is a failed scan; what it did find is reported beside it."""
    document = {
        "dependencies": [
            {"name": "requests", "version": "2.0", "vulns": [{"id": "PYSEC-1"}]},
            _not_on_pypi("aiohttp"),
            _not_on_pypi("rich"),
        ]
    }
    failed, vulnerable = review_scan(ScanRun(1, json.dumps(document), ""))
    assert failed.severity is Status.UNKNOWN
    assert "audited only 1 of 3 installed package(s), 2 skipped" in failed.summary
    assert vulnerable.code == "deps.vulnerable" and vulnerable.severity is Status.WARNING


def test_the_editable_project_not_on_pypi_is_a_normal_skip() -> None:
    """The usual case: everything audited but mlsgw itself (installed from its checkout, not
    on PyPI): clean, with the skip named once in the evidence."""
    document = {
        "dependencies": [
            *({"name": f"pkg{i}", "version": "1.0", "vulns": []} for i in range(5)),
            _not_on_pypi("mlsgw"),
        ]
    }
    [finding] = review_scan(ScanRun(0, json.dumps(document), ""))
    assert finding.severity is Status.OK and finding.data["audited"] == 5
    assert finding.evidence == (
        "not audited: Dependency not found on PyPI and could not be audited: mlsgw (1.0)",
    )
