"""A TLS handshake with a server, to read its certificate (socket I/O; grading is pure, in
:mod:`mlsgw.certificates`)."""

from __future__ import annotations

import socket
import ssl

from mlsgw.certificates import Certificate, CertProbe
from mlsgw.errors import UsageError


def verifying_context(cafile: str | None) -> ssl.SSLContext:
    """A verifying client context: the system CAs, or only those in the PEM file ``cafile``.

    A ``cafile`` that is missing, unreadable, empty or holds no PEM certificate is a
    :class:`UsageError` naming it (``--cafile`` is how both certcheck and audit take it)."""
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        reason: object
        if isinstance(exc, ssl.SSLError):
            reason = exc.reason or exc
        else:
            reason = getattr(exc, "strerror", None) or exc
        raise UsageError(
            f"--cafile {cafile}: cannot read CA certificates from it ({reason}); "
            "give a PEM file of CA certificates"
        ) from None


def _connect(host: str, port: int, timeout: float) -> socket.socket | str:
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        return f"connection timed out after {timeout:g} s"
    except OSError as exc:
        return f"cannot connect: {exc.strerror or exc}"


def _peer_der(sock: socket.socket, context: ssl.SSLContext, host: str) -> bytes:
    with context.wrap_socket(sock, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError("the server sent no certificate")
    return der


def probe_certificate(host: str, port: int, timeout: float, cafile: str | None = None) -> CertProbe:
    """Handshake with verification (system CAs, or only ``cafile``); when verification fails,
    handshake again without it so the report can still show the certificate. Never raises
    for network or TLS failures: they are the probe's ``error``; an unusable ``cafile`` is a
    :class:`UsageError` (:func:`verifying_context`), raised before any connection."""
    verified = verifying_context(cafile)
    sock = _connect(host, port, timeout)
    if isinstance(sock, str):
        return CertProbe(host, port, None, sock)
    try:
        der = _peer_der(sock, verified, host)
        return CertProbe(host, port, Certificate.from_der(der))
    except ssl.SSLCertVerificationError as exc:
        error = f"certificate verification failed: {exc.verify_message or exc.reason}"
    except (ssl.SSLError, OSError) as exc:
        return CertProbe(host, port, None, f"TLS handshake failed: {exc}")
    except ValueError as exc:
        return CertProbe(host, port, None, f"unreadable certificate: {exc}")
    finally:
        sock.close()
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE  # only to show what was presented; graded CRIT
    again = _connect(host, port, timeout)
    if isinstance(again, str):
        return CertProbe(host, port, None, error)
    try:
        return CertProbe(
            host, port, Certificate.from_der(_peer_der(again, unverified, host)), error
        )
    except (ssl.SSLError, OSError, ValueError):
        return CertProbe(host, port, None, error)
    finally:
        again.close()
