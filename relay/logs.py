"""Logs: one JSON object per line with ``severity`` (Cloud Logging), or readable lines on a TTY.

Never log event content. Pubkeys are logged only at DEBUG (callers pass them in
``extra={"pubkey": ...}`` on debug records only).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}


class JsonFormatter(logging.Formatter):
    """Format records as ``{"severity", "message", "time", "logger", ...extra}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": record.getMessage(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("auto", "text", "json")


class TextFormatter(logging.Formatter):
    """``12:04:05 INFO  relay listening … key=value …`` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        extras = " ".join(
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        )
        line = f"{clock} {record.levelname:<7} {record.getMessage()}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def check_level(level: str) -> str:
    """The upper-cased level; :class:`ValueError` naming the valid ones otherwise."""
    upper = level.strip().upper()
    if upper not in LEVELS:
        raise ValueError(f"invalid log level {level!r}: expected one of {', '.join(LEVELS)}")
    return upper


def configure_logging(level: str = "INFO", log_format: str = "json") -> None:
    """Send every log record to stderr (idempotent).

    ``log_format``: ``json`` (one object per line), ``text``, or ``auto`` (text when stderr is
    a terminal, JSON otherwise, as on Cloud Run).
    """
    if log_format not in FORMATS:
        raise ValueError(f"invalid log format {log_format!r}: expected auto, text or json")
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if log_format == "text" else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(check_level(level))
    logging.getLogger("websockets").setLevel(logging.WARNING)
