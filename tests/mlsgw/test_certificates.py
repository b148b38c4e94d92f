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


def test_verification_error_is_critical_even_with_time_left() -> None:
    """An untrusted certificate is CRITICAL, with the reason and the days left."""
    result = grade(probe(90, "certificate verification failed: self-signed certificate"), NOW)
    assert result.status is Status.CRITICAL
    assert "self-signed" in result.summary and "90 days left" in result.summary


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


@pytest.mark.parametrize("text", ["http://relay.example.com", "host:http", ""])
def test_parse_endpoint_refuses(text: str) -> None:
    """Plain http, a non-numeric port, nothing: UsageError."""
    with pytest.raises(UsageError):
        parse_endpoint(text)
