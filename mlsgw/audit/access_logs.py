"""Access-log reviews: 4xx responses from Cloud Run's request logs, and the relay's own
access refusals (NIP-42 failures, allowlist rejections) from its JSON log lines.

Both are summarised as top IPs, paths and user agents; one source sending many of them is
the pattern worth a warning (scanning, credential stuffing, a misconfigured client).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from urllib.parse import urlsplit

from mlsgw.audit.findings import Finding, describe_top, or_clean, top
from mlsgw.gcp.base import LogEntry
from mlsgw.report import Status
from relay.access_log import AUDIT_TAG

TOP_N = 5
PROBE_THRESHOLD = 100
"""4xx responses from one IP in the window that make the finding a warning."""
REJECTION_THRESHOLD = 20
"""Access refusals for one IP in the window that make the finding a warning."""


def review_4xx(entries: Sequence[LogEntry], hours: float) -> list[Finding]:
    """One ``logs.4xx`` finding summarising the 4xx responses, or a clean one."""
    area = "access-logs"
    requests = [e.http for e in entries if e.http is not None and 400 <= e.http.status < 500]
    if not requests:
        return or_clean(area, [], f"no 4xx responses in {hours:g} h")
    ips = Counter(r.remote_ip for r in requests)
    paths = Counter(urlsplit(r.url).path or "/" for r in requests)
    agents = Counter(r.user_agent for r in requests)
    statuses = Counter(str(r.status) for r in requests)
    loud = {ip: n for ip, n in ips.items() if n >= PROBE_THRESHOLD}
    by_status = ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))
    summary = f"{len(requests)} 4xx responses in {hours:g} h ({by_status})"
    if loud:
        summary += f"; {len(loud)} IP(s) with ≥ {PROBE_THRESHOLD} each"
    return [
        Finding(
            area,
            "logs.4xx",
            Status.WARNING if loud else Status.INFO,
            summary,
            (
                f"top IPs: {describe_top(ips, TOP_N)}",
                f"top paths: {describe_top(paths, TOP_N)}",
                f"top user agents: {describe_top(agents, TOP_N)}",
            ),
            {
                "total": len(requests),
                "by_status": dict(statuses),
                "top_ips": top(ips, TOP_N),
                "top_paths": top(paths, TOP_N),
                "top_user_agents": top(agents, TOP_N),
            },
        )
    ]


def review_rejections(entries: Sequence[LogEntry], hours: float) -> list[Finding]:
    """One ``logs.access-rejections`` finding from the relay's ``access_rejected`` lines."""
    area = "relay-access"
    lines = [e.fields for e in entries if e.fields.get("audit") == AUDIT_TAG]
    if not lines:
        return or_clean(area, [], f"no NIP-42 or allowlist refusals in {hours:g} h")
    ips = Counter(str(f.get("ip") or "") for f in lines)
    kinds = Counter(f"{f.get('stage', '?')} {f.get('reason', '?')}" for f in lines)
    auth = sum(1 for f in lines if f.get("stage") == "auth")
    loud = {ip: n for ip, n in ips.items() if n >= REJECTION_THRESHOLD}
    summary = (
        f"{len(lines)} access refusals in {hours:g} h ({auth} failed NIP-42 AUTH, "
        f"{len(lines) - auth} REQ/EVENT refused by auth or the allowlist)"
    )
    if loud:
        summary += f"; {len(loud)} IP(s) with ≥ {REJECTION_THRESHOLD} each"
    return [
        Finding(
            area,
            "logs.access-rejections",
            Status.WARNING if loud else Status.INFO,
            summary,
            (
                f"by type: {describe_top(kinds, TOP_N)}",
                f"top IPs: {describe_top(ips, TOP_N)}",
            ),
            {"total": len(lines), "by_type": dict(kinds), "top_ips": top(ips, TOP_N)},
        )
    ]
