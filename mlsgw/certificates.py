"""TLS certificates as the runbook reads them, and how their expiry is graded (R-K7).

Pure: parses DER with ``cryptography`` and grades; :mod:`mlsgw.tls_probe` does the I/O.
WARN under 21 days left, CRIT under 7; an expired, untrusted or unreachable certificate is
CRIT with the reason.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from mlsgw.errors import UsageError
from mlsgw.report import CheckResult, Perf, Status
from mlsgw.urls import has_blank_or_control, port_of, split

WARN_DAYS = 21
CRIT_DAYS = 7
DEFAULT_PORT = 443


@dataclass(frozen=True)
class Certificate:
    """The fields of a server certificate an operator reads."""

    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_before: datetime
    not_after: datetime

    @classmethod
    def from_der(cls, der: bytes) -> Certificate:
        """Parse a DER certificate; :class:`ValueError` when it is not one."""
        cert = x509.load_der_x509_certificate(der)
        try:
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            sans = tuple(names.get_values_for_type(x509.DNSName)) + tuple(
                str(ip) for ip in names.get_values_for_type(x509.IPAddress)
            )
        except x509.ExtensionNotFound:
            sans = ()
        return cls(
            subject=_name(cert.subject),
            issuer=_name(cert.issuer),
            sans=sans,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )


def _name(name: x509.Name) -> str:
    """``CN (O)`` when the name has them, else the RFC 4514 string."""
    cn = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    org = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if cn:
        text = _text(cn[0].value)
        return f"{text} ({_text(org[0].value)})" if org else text
    return name.rfc4514_string() or "(empty)"


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


@dataclass(frozen=True)
class CertProbe:
    """What a TLS handshake with ``host:port`` gave: the certificate and/or what failed."""

    host: str
    port: int
    certificate: Certificate | None
    error: str | None = None
    """Why the connection or the verified handshake failed; ``None`` when it succeeded."""


def parse_endpoint(text: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or an ``https://``/``wss://`` URL -> (host,
    port); anything else (no host, a port that is not 1-65535, spaces, a malformed URL) is a
    :class:`UsageError` saying the expected form."""
    text = text.strip()
    usage = f"{text!r} is not HOST[:PORT] or an https:// URL"
    if has_blank_or_control(text):
        raise UsageError(f"{usage}: it contains spaces or control characters")
    try:
        ipaddress.IPv6Address(text)
        return text, DEFAULT_PORT
    except ValueError:
        pass
    url = "://" in text
    parts = split(text if url else f"//{text}")
    if isinstance(parts, str):
        raise UsageError(f"{usage}: it {parts}")
    if url and parts.scheme not in ("https", "wss"):
        raise UsageError(f"{text}: only https:// and wss:// URLs carry a certificate")
    port = port_of(parts)
    if port == 0:
        raise UsageError(f"{text}: the port must be a number 1-65535")
    if not parts.hostname:
        raise UsageError(usage)
    return parts.hostname, port or DEFAULT_PORT


def days_left(certificate: Certificate, now: datetime) -> float:
    """Days until the certificate expires (negative once expired)."""
    return (certificate.not_after - now).total_seconds() / 86400


def grade(probe: CertProbe, now: datetime, *, require_trust: bool = False) -> CheckResult:
    """The ``certificate`` check: days left, issuer and SANs, graded WARN < 21, CRIT < 7.

    A certificate that does not verify (an unknown CA, another host name) is graded by its
    days left like any other, with the reason in its summary and details; with
    ``require_trust`` (a CA file was given to verify against) it is CRITICAL."""
    where = f"{probe.host}:{probe.port}"
    cert = probe.certificate
    if cert is None:
        return CheckResult(
            "certificate",
            Status.CRITICAL,
            f"{where}: {probe.error or 'no certificate'}",
            data={"host": probe.host, "port": probe.port, "error": probe.error},
        )
    left = days_left(cert, now)
    details: tuple[str, ...] = (
        f"issuer: {cert.issuer}",
        f"subject: {cert.subject}",
        f"SANs: {', '.join(cert.sans) or '(none)'}",
        f"valid {cert.not_before:%Y-%m-%d %H:%M} → {cert.not_after:%Y-%m-%d %H:%M} UTC",
    )
    data: dict[str, object] = {
        "host": probe.host,
        "port": probe.port,
        "days_left": round(left, 2),
        "not_after": cert.not_after.isoformat(),
        "not_before": cert.not_before.isoformat(),
        "issuer": cert.issuer,
        "subject": cert.subject,
        "sans": list(cert.sans),
        "error": probe.error,
        "verified": probe.error is None,
    }
    perf = (Perf("days_left", math.floor(left * 10) / 10, "", f"{WARN_DAYS}:", f"{CRIT_DAYS}:"),)
    expiry = (
        f"expired {-left:.0f} days ago ({cert.not_after:%Y-%m-%d} UTC)"
        if left < 0
        else f"{int(left)} days left (expires {cert.not_after:%Y-%m-%d} UTC)"
    )
    if left < CRIT_DAYS:
        status = Status.CRITICAL
    elif left < WARN_DAYS:
        status = Status.WARNING
    else:
        status = Status.OK
    summary = f"{where}: {expiry}, issuer {cert.issuer}"
    if probe.error:
        details = (*details, f"not verified: {probe.error}")
        summary = f"{where}: {probe.error}; {expiry}"
        if require_trust:
            status = Status.CRITICAL
    return CheckResult("certificate", status, summary, details, perf, data)
