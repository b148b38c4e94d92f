"""The pieces of URL checking that every option taking a URL or ``HOST:PORT`` shares.

Each caller words its own message: the target names the value, the incident webhook never
repeats it (the URL carries its token), certcheck says the forms it takes.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit


def has_blank_or_control(text: str) -> bool:
    """Whether ``text`` holds whitespace or a control character (never part of a URL)."""
    return any(c.isspace() or not c.isprintable() for c in text)


def port_of(parts: SplitResult) -> int | None:
    """The port ``parts`` names, ``None`` when it names none, ``0`` when it is not a number
    from 1 to 65535 (``urlsplit`` raises only when the port is read)."""
    try:
        return parts.port
    except ValueError:
        return 0


def split(url: str) -> SplitResult | str:
    """``urlsplit(url)``, or the problem when it cannot be split (an unclosed IPv6 bracket)."""
    try:
        return urlsplit(url)
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
