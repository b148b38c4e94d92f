"""Runs pip-audit on the installed environment, as a subprocess (its own CLI and JSON output)."""

from __future__ import annotations

import subprocess
import sys

from mlsgw.audit.dependencies import ScanRun

SCAN_TIMEOUT = 300.0
"""Seconds a scan may take (it queries the vulnerability service once per package)."""


def scan_command(osv_url: str | None = None) -> list[str]:
    """The pip-audit command line: JSON, no spinner; against an OSV service when given."""
    command = [sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off"]
    if osv_url:
        command += ["--vulnerability-service", "osv", "--osv-url", osv_url]
    return command


def run_scan(osv_url: str | None = None, timeout: float = SCAN_TIMEOUT) -> ScanRun:
    """Run pip-audit on this interpreter's environment; a failure to run is a :class:`ScanRun`
    with ``returncode`` ``None``, never an exception."""
    try:
        done = subprocess.run(
            scan_command(osv_url),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ScanRun(None, "", f"timed out after {timeout:g} s")
    except OSError as exc:
        return ScanRun(None, "", f"cannot start pip-audit: {exc}")
    return ScanRun(done.returncode, done.stdout, done.stderr)
