"""4xx and access-refusal log analysis (pure)."""

from __future__ import annotations

from mlsgw.audit.access_logs import (
    PROBE_THRESHOLD,
    REJECTION_THRESHOLD,
    review_4xx,
    review_rejections,
)
from mlsgw.gcp.base import HttpRequestInfo, LogEntry
from mlsgw.report import Status


def request(status: int, ip: str, path: str = "/", agent: str = "curl/8") -> LogEntry:
    http = HttpRequestInfo(status, "GET", f"https://relay.example.com{path}", ip, agent)
    return LogEntry(None, "WARNING", "", http=http)


def refusal(stage: str, reason: str, ip: str) -> LogEntry:
    fields = {"audit": "access_rejected", "stage": stage, "reason": reason, "ip": ip}
    return LogEntry(None, "INFO", "", fields=fields)


def test_4xx_summary_ranks_ips_paths_and_user_agents() -> None:
    """Top lists are largest first; 2xx/5xx entries are ignored."""
    entries = [
        request(404, "203.0.113.7", "/wp-login.php", "zgrab/0.x"),
        request(404, "203.0.113.7", "/.env", "zgrab/0.x"),
        request(401, "198.51.100.2", "/metrics"),
        request(500, "198.51.100.9"),
        request(200, "198.51.100.9"),
    ]
    [finding] = review_4xx(entries, 24)
    assert finding.code == "logs.4xx" and finding.severity is Status.INFO
    assert finding.summary == "3 4xx responses in 24 h (401: 1, 404: 2)"
    assert finding.data["top_ips"] == [("203.0.113.7", 2), ("198.51.100.2", 1)]
    assert finding.evidence[2] == "top user agents: zgrab/0.x (2), curl/8 (1)"


def test_one_ip_past_the_probe_threshold_makes_a_warning() -> None:
    """A scanner: ≥ PROBE_THRESHOLD 4xx from one IP."""
    entries = [request(404, "203.0.113.7", f"/p{i}") for i in range(PROBE_THRESHOLD)]
    [finding] = review_4xx(entries, 24)
    assert finding.severity is Status.WARNING
    assert "1 IP(s) with ≥ 100 each" in finding.summary


def test_no_4xx_is_clean() -> None:
    """Nothing to report: one OK finding."""
    [finding] = review_4xx([request(200, "x")], 6)
    assert finding.severity is Status.OK and finding.summary == "no 4xx responses in 6 h"


def test_refusals_are_counted_by_type_and_ip() -> None:
    """AUTH failures and allowlist refusals are told apart."""
    entries = [
        refusal("auth", "bad-challenge", "203.0.113.7"),
        refusal("req", "auth-required", "203.0.113.7"),
        refusal("event", "restricted", "198.51.100.2"),
    ]
    [finding] = review_rejections(entries, 24)
    assert finding.code == "logs.access-rejections" and finding.severity is Status.INFO
    assert "1 failed NIP-42 AUTH, 2 REQ/EVENT refused" in finding.summary
    assert finding.data["top_ips"] == [("203.0.113.7", 2), ("198.51.100.2", 1)]


def test_many_refusals_from_one_ip_are_a_warning() -> None:
    """Credential stuffing or a misconfigured client: ≥ REJECTION_THRESHOLD from one IP."""
    entries = [refusal("auth", "invalid", "203.0.113.7")] * REJECTION_THRESHOLD
    [finding] = review_rejections(entries, 24)
    assert finding.severity is Status.WARNING
