"""Dependency vulnerabilities from pip-audit's JSON: "vulnerable", "clean" and "scan failed"
are three different results, and a scan that failed, or audited (almost) nothing, is never
reported as clean."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlsgw.audit.findings import Finding, could_not
from mlsgw.report import Status

AREA = "dependencies"
SHOWN = 20


@dataclass(frozen=True)
class ScanRun:
    """How a pip-audit run ended: its exit code (``None``: it did not run) and output."""

    returncode: int | None
    stdout: str
    stderr: str


def _reason(run: ScanRun) -> str:
    lines = [line.strip() for line in run.stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else "no output"
    code = "did not run" if run.returncode is None else f"exit {run.returncode}"
    return f"pip-audit {code}: {last[:300]}"


def _document(stdout: str) -> dict[str, Any] | None:
    try:
        document = json.loads(stdout)
    except ValueError:
        return None
    if isinstance(document, dict) and isinstance(document.get("dependencies"), list):
        return document
    return None


def _unaudited(dep: dict[str, Any]) -> str:
    """``name: reason`` for a package pip-audit skipped (just the reason when it names it)."""
    name, reason = str(dep.get("name")), str(dep["skip_reason"])
    return reason if name.lower() in reason.lower() else f"{name}: {reason}"


def _capped(lines: list[str]) -> tuple[str, ...]:
    if len(lines) > SHOWN:
        lines = [*lines[:SHOWN], f"… and {len(lines) - SHOWN} more (see --json)"]
    return tuple(lines)


def incomplete(audited: int, unaudited: list[str]) -> str | None:
    """Why a scan that ran is still no result, or ``None``: it listed no packages, audited
    none, or skipped more than it audited (the vulnerability service did not know most of
    them: a proxy or mirror answering "not found"). A few skips are normal: a package that is
    not on PyPI (the editable ``mlsgw`` itself, a private one) cannot be looked up."""
    total = audited + len(unaudited)
    if total == 0:
        return "pip-audit listed no installed packages"
    if len(unaudited) <= audited:
        return None
    scope = "none" if audited == 0 else f"only {audited}"
    return (
        f"pip-audit audited {scope} of {total} installed package(s), {len(unaudited)} "
        f"skipped (first: {unaudited[0]})"
    )


def review_scan(run: ScanRun) -> list[Finding]:
    """``deps.vulnerable``, a clean result, or UNKNOWN when the scan did not complete: it
    failed, or it audited none or fewer than half of the packages (see :func:`incomplete`).
    Vulnerabilities found by an incomplete scan are still reported, beside the UNKNOWN."""
    document = _document(run.stdout) if run.returncode in (0, 1) else None
    if document is None:
        return [could_not(AREA, _reason(run))]
    deps = [d for d in document["dependencies"] if isinstance(d, dict)]
    vulnerable = [d for d in deps if d.get("vulns")]
    unaudited = [_unaudited(d) for d in deps if d.get("skip_reason")]
    audited = len(deps) - len(unaudited)
    if run.returncode == 1 and not vulnerable:
        return [could_not(AREA, _reason(run))]
    figures = {"audited": audited, "not_audited": unaudited}
    skips = _capped([f"not audited: {u}" for u in unaudited])
    failure = incomplete(audited, unaudited)
    findings = [] if failure is None else [could_not(AREA, failure, skips, figures)]
    if not vulnerable:
        return findings or [
            Finding(
                AREA,
                f"{AREA}.clean",
                Status.OK,
                f"pip-audit: no known vulnerabilities in {audited} installed package(s)",
                skips,
                figures,
            )
        ]
    evidence = []
    listing = []
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "none yet"
            evidence.append(
                f"{dep.get('name')} {dep.get('version')}: {vuln.get('id')} (fix: {fixes})"
            )
            listing.append(
                {
                    "package": dep.get("name"),
                    "version": dep.get("version"),
                    "id": vuln.get("id"),
                    "aliases": vuln.get("aliases") or [],
                    "fix_versions": vuln.get("fix_versions") or [],
                }
            )
    return [
        *findings,
        Finding(
            AREA,
            "deps.vulnerable",
            Status.WARNING,
            f"pip-audit: {len(listing)} known vulnerabilit(ies) in {len(vulnerable)} "
            f"installed package(s); upgrade to the fix versions",
            _capped(evidence),
            {"vulnerabilities": listing, **figures},
        ),
    ]
