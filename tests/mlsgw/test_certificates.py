"""Certificate grading and endpoint parsing (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlsgw.certificates import Certificate, CertProbe, grade, parse_endpoint
from mlsgw.errors import UsageError
from mlsgw.report import Status

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def probe(days: float, error: str | None = None) -> CertProbe:
    cert = Certificate(
        "relay", "R11 (Let's Encrypt)", ("relay.example.com",), NOW, NOW + timedelta(days=days)
    )
    return CertProbe("relay.example.com", 443, cert, error)


@pytest.mark.parametrize(
    ("days", "status"),
    [
        (90, Status.OK),
        (21, Status.OK),
        (20.9, Status.WARNING),
        (7, Status.WARNING),
        (6.9, Status.CRITICAL),
        (-1, Status.CRITICAL),
    ],
)
def test_thresholds(days: float, status: Status) -> None:
    """WARN under 21 days, CRIT under 7 (and once expired)."""
    assert grade(probe(days), NOW).status is status


def test_expired_certificate_says_so() -> None:
    """A past notAfter reads "expired N days ago"."""
    assert "expired 3 days ago" in grade(probe(-3), NOW).summary


def test_a_certificate_that_does_not_verify_is_graded_by_its_days_with_the_reason() -> None:
    """An unknown CA: graded by the days left like any other; the reason is shown."""
    error = "certificate verification failed: self-signed certificate"
    for days, status in ((90, Status.OK), (15, Status.WARNING), (5, Status.CRITICAL)):
        result = grade(probe(days, error), NOW)
        assert result.status is status, days
        assert "self-signed" in result.summary and f"{days} days left" in result.summary
        assert f"not verified: {error}" in result.details
        assert result.data["verified"] is False


def test_a_certificate_that_must_verify_and_does_not_is_critical() -> None:
    """require_trust (a CA file was given): not verifying is CRITICAL, whatever the days."""
    result = grade(
        probe(90, "certificate verification failed: self-signed certificate"),
        NOW,
        require_trust=True,
    )
    assert result.status is Status.CRITICAL
    assert "self-signed" in result.summary and "90 days left" in result.summary
    assert grade(probe(90), NOW, require_trust=True).status is Status.OK


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("relay.example.com", ("relay.example.com", 443)),
        ("relay.example.com:8443", ("relay.example.com", 8443)),
        ("https://relay.example.com/path", ("relay.example.com", 443)),
        ("wss://relay.example.com:444", ("relay.example.com", 444)),
        ("[::1]:8443", ("::1", 8443)),
        ("::1", ("::1", 443)),
    ],
)
def test_parse_endpoint(text: str, expected: tuple[str, int]) -> None:
    """HOST, HOST:PORT, URLs and IPv6."""
    assert parse_endpoint(text) == expected


@pytest.mark.parametrize(
    "text",
    ["http://relay.example.com", "host:http", ""]
    + ["https://[::1", "[::1", "https://x:99999", "x:99999", "x:0", "https://:443", "a b"],
)
def test_parse_endpoint_refuses(text: str) -> None:
    """Plain http, a non-numeric port, nothing, an unparseable URL, a port outside 1-65535
    (0 is not silently 443), no host, spaces: UsageError, never ValueError."""
    with pytest.raises(UsageError):
        parse_endpoint(text)
