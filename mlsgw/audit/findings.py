"""A finding of the security audit, and how findings become a check report.

A finding's severity is a :class:`~mlsgw.report.Status`: ``critical``, ``warning`` and
``unknown`` set the exit code (R-O3); ``info`` is reported and leaves the verdict alone;
``ok`` says an area was reviewed and nothing was found; ``skipped`` says why it was not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mlsgw.report import CheckReport, CheckResult, Perf, Status


@dataclass(frozen=True)
class Finding:
    """One result of the audit, with the evidence behind it."""

    area: str
    """What was reviewed: ``access-logs``, ``project-iam``, ``service``, ``config``, ..."""
    code: str
    """Stable id of the finding type, e.g. ``iam.public-member``."""
    severity: Status
    summary: str
    evidence: tuple[str, ...] = ()
    data: Mapping[str, object] = field(default_factory=dict)


def clean(area: str, summary: str) -> Finding:
    """The area was reviewed and nothing was found."""
    return Finding(area, f"{area}.clean", Status.OK, summary)


def skipped(area: str, reason: str) -> Finding:
    """The area was not reviewed because its inputs are not configured."""
    return Finding(area, f"{area}.skipped", Status.SKIPPED, f"skipped: {reason}")


def could_not(
    area: str,
    reason: str,
    evidence: tuple[str, ...] = (),
    data: Mapping[str, object] | None = None,
) -> Finding:
    """The area could not be reviewed (no credentials, API error): the audit is incomplete."""
    summary = f"could not audit: {reason}"
    return Finding(area, f"{area}.failed", Status.UNKNOWN, summary, evidence, dict(data or {}))


def or_clean(area: str, findings: list[Finding], summary: str) -> list[Finding]:
    """``findings``, or one :func:`clean` finding when there are none."""
    return findings or [clean(area, summary)]


def counts_perf(findings: Iterable[Finding]) -> tuple[Perf, ...]:
    """Nagios perfdata of how many findings are critical, warning and unknown; the
    thresholds say that any critical (or warning) finding is CRITICAL (or WARNING)."""
    severities = [f.severity for f in findings]
    return (
        Perf("critical", severities.count(Status.CRITICAL), crit=0),
        Perf("warning", severities.count(Status.WARNING), warn=0),
        Perf("unknown", severities.count(Status.UNKNOWN)),
    )


def audit_report(findings: Iterable[Finding], run_id: str, title: str = "") -> CheckReport:
    """The findings as a :class:`CheckReport` (one result per finding, area in its data),
    with the counts by severity as its perfdata (:func:`counts_perf`)."""
    listed = list(findings)
    return CheckReport(
        "audit",
        tuple(
            CheckResult(
                f.code,
                f.severity,
                f.summary,
                f.evidence,
                data={"area": f.area, **dict(f.data)},
            )
            for f in listed
        ),
        run_id,
        title=title,
        perf=counts_perf(listed),
    )


def top(counts: Mapping[str, int], n: int) -> list[tuple[str, int]]:
    """The ``n`` largest counts, largest first, ties by name."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def describe_top(counts: Mapping[str, int], n: int) -> str:
    """``a (3), b (1)``."""
    return ", ".join(f"{name or '(none)'} ({count})" for name, count in top(counts, n))
