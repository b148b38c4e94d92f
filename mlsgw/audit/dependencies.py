"""Dependency vulnerabilities from pip-audit's JSON: "vulnerable", "clean" and "scan failed"
are three different results, and a scan that failed is never reported as clean."""

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


def review_scan(run: ScanRun) -> list[Finding]:
    """``deps.vulnerable``, a clean result, or UNKNOWN when the scan did not complete."""
    document = _document(run.stdout) if run.returncode in (0, 1) else None
    if document is None:
        return [could_not(AREA, _reason(run))]
    deps = [d for d in document["dependencies"] if isinstance(d, dict)]
    vulnerable = [d for d in deps if d.get("vulns")]
    unaudited = sorted(f"{d.get('name')}: {d['skip_reason']}" for d in deps if d.get("skip_reason"))
    audited = len(deps) - len(unaudited)
    if run.returncode == 1 and not vulnerable:
        return [could_not(AREA, _reason(run))]
    if not vulnerable:
        return [
            Finding(
                AREA,
                f"{AREA}.clean",
                Status.OK,
                f"pip-audit: no known vulnerabilities in {audited} installed package(s)",
                tuple(f"not audited: {u}" for u in unaudited),
                {"audited": audited, "not_audited": unaudited},
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
    if len(evidence) > SHOWN:
        evidence = [*evidence[:SHOWN], f"… and {len(evidence) - SHOWN} more (see --json)"]
    return [
        Finding(
            AREA,
            "deps.vulnerable",
            Status.WARNING,
            f"pip-audit: {len(listing)} known vulnerabilit(ies) in {len(vulnerable)} "
            f"installed package(s); upgrade to the fix versions",
            tuple(evidence),
            {"vulnerabilities": listing, "audited": audited, "not_audited": unaudited},
        )
    ]
