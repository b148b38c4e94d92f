"""Fixtures for the runbook tests: Google stand-ins, real relays as subprocesses, the CLI.

Every Google client runs for real against the stand-ins on 127.0.0.1 with anonymous
credentials; ``GOOGLE_APPLICATION_CREDENTIALS`` points nowhere, so an accidental fallback to
Application Default Credentials fails at once instead of probing the metadata server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mlsgw.cli import app
from relay.core.event import pubkey_of
from tests.stand_ins.google import GoogleStandIn
from tests.stand_ins.monitoring import MonitoringStandIn

PROJECT, REGION, SERVICE = "demo-proj", "europe-west1", "mlsgw"
METRICS_KEY = "metrics-secret-key"
PROBE_SECRET = bytes(range(1, 33))
STARTUP_LIMIT = 30.0  # seconds; only reached when the relay fails to start


@dataclass(frozen=True)
class RelayProcess:
    """A ``mlsgw serve`` subprocess."""

    url: str
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_relay(data: Path, **env: str) -> RelayProcess:
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLSGW_") and k != "PORT"}
    environ.update({"PORT": str(port), "MLSGW_DATA__PATH": str(data), "MLSGW_CONFIG": ""}, **env)
    process = subprocess.Popen(
        [sys.executable, "-m", "mlsgw", "serve", "--host", "127.0.0.1", "--log-level", "ERROR"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_LIMIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlsgw serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as response:
                if json.loads(response.read())["status"] == "healthy":
                    return RelayProcess(url, process)
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("mlsgw serve did not become healthy")


def _stop(relay: RelayProcess) -> None:
    relay.process.terminate()
    try:
        relay.process.wait(10)
    except subprocess.TimeoutExpired:
        relay.process.kill()
        relay.process.wait()


@pytest.fixture(scope="session")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """An open relay (default config) with /metrics enabled behind :data:`METRICS_KEY`."""
    started = _start_relay(
        tmp_path_factory.mktemp("relay"),
        MLSGW_METRICS__ENABLED="true",
        MLSGW_METRICS__AUTH=METRICS_KEY,
    )
    yield started
    _stop(started)


@pytest.fixture(scope="session")
def locked_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """A relay whose allowlist holds only the probe key's pubkey."""
    started = _start_relay(
        tmp_path_factory.mktemp("locked"),
        MLSGW_AUTH__PUBKEY_WHITELIST=pubkey_of(PROBE_SECRET),
    )
    yield started
    _stop(started)


@pytest.fixture
def google() -> Iterator[GoogleStandIn]:
    """The REST stand-in, empty; tests add services, log entries and operations."""
    stand_in = GoogleStandIn().start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def monitoring() -> Iterator[MonitoringStandIn]:
    """The gRPC Cloud Monitoring stand-in, empty."""
    stand_in = MonitoringStandIn()
    stand_in.start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def silent_metadata_server() -> Iterator[str]:
    """HOST:PORT on loopback that accepts connections (the kernel's backlog) and never
    answers, like a metadata address whose packets are swallowed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No MLSGW_* or gcloud settings from the developer's shell; an empty config and an empty
    gcloud configuration directory; the ledger in tmp."""
    for name in list(os.environ):
        if name.startswith(("MLSGW_", "CLOUDSDK_")) or name == "GOOGLE_CLOUD_PROJECT":
            monkeypatch.delenv(name)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no developer defaults
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    monkeypatch.setenv("MLSGW_CONFIG", str(empty))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/mlsgw-tests-use-no-adc")
    return tmp_path


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    """Where the commands write the ledger by default in tests."""
    return tmp_path / "state" / "mlsgw" / "ledger.jsonl"


Cli = Callable[..., Result]


@pytest.fixture
def cli() -> Cli:
    """``cli("healthcheck", "--url", url)`` runs the real CLI in-process (stdin not a TTY)."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def target_args(google: GoogleStandIn) -> list[str]:
    """``--project/--region/--service/--endpoint`` for the demo service on the stand-in."""
    return [
        "--project",
        PROJECT,
        "--region",
        REGION,
        "--service",
        SERVICE,
        "--endpoint",
        google.url,
    ]
