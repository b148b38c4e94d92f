"""A Firestore emulator on a free loopback port, for store, serve and cluster tests.

The official ``cloud_firestore_emulator`` (Java) is used where it is installed; the npm
fallback in ``tests/support/firestore_fallback/`` otherwise. Neither present is a test
failure naming ``scripts/install-test-services``, never a skip. The fallback has no
transaction isolation (two racing transactions both win), so tests that need it are
marked ``official_firestore_only``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.process import free_port

INSTALL_HINT = "no Firestore emulator found: run scripts/install-test-services"
PROJECT = "demo-mlsgw"
FALLBACK_DIR = Path(__file__).resolve().parent / "firestore_fallback"
_SDK_ROOTS = ("/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk", "/opt/google-cloud-sdk")
# Only a failure guard: the official emulator is ready in ~1 s, the fallback in ~0.2 s.
START_TIMEOUT = 60.0
# Keeps the JVM small on a shared machine (measured ~160-210 MB RSS instead of ~230 MB).
_JAVA = "java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1"


class EmulatorMissing(RuntimeError):
    """Neither the official emulator nor the npm fallback is installed."""


def official_emulator_path() -> Path | None:
    """The official emulator's launcher script, if installed."""
    roots = list(_SDK_ROOTS)
    gcloud = shutil.which("gcloud")
    if gcloud:
        roots.append(str(Path(gcloud).resolve().parents[1]))
    for root in roots:
        candidate = Path(root) / "platform/cloud-firestore-emulator/cloud_firestore_emulator"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def fallback_available() -> bool:
    """True if the npm fallback is installed (``npm install`` has run) and node exists."""
    installed = (FALLBACK_DIR / "node_modules/@firestore-emulator/server").is_dir()
    return installed and shutil.which("node") is not None


def pick_kind() -> str:
    """``official`` or ``fallback`` (``MLSGW_TEST_FIRESTORE=fallback`` forces the fallback)."""
    forced = os.environ.get("MLSGW_TEST_FIRESTORE", "")
    if forced not in ("", "official", "fallback"):
        raise EmulatorMissing(f"MLSGW_TEST_FIRESTORE must be official or fallback, not {forced}")
    if forced != "fallback" and official_emulator_path() is not None:
        return "official"
    if forced != "official" and fallback_available():
        return "fallback"
    raise EmulatorMissing(INSTALL_HINT)


def _http(method: str, url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - loopback
        return int(reply.status), bytes(reply.read())


@dataclass
class FirestoreEmulator:
    """One emulator process group: start, reset, pause (SIGSTOP), resume, stop, restart."""

    kind: str
    port: int = field(default_factory=free_port)
    control_port: int = field(default_factory=free_port)
    project: str = PROJECT
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """``host:port`` as ``FIRESTORE_EMULATOR_HOST`` expects it."""
        return f"127.0.0.1:{self.port}"

    @property
    def official(self) -> bool:
        """True for the official emulator (exact transaction isolation)."""
        return self.kind == "official"

    def start(self) -> None:
        """Start on ``port`` and wait until it answers; raises on failure to start."""
        if self.kind == "official":
            launcher = official_emulator_path()
            if launcher is None:
                raise EmulatorMissing(INSTALL_HINT)
            command = [
                str(launcher),
                "start",
                "--host=127.0.0.1",
                f"--port={self.port}",
                f"--project_id={self.project}",
            ]
            env = {**os.environ, "JAVA": os.environ.get("JAVA", _JAVA)}
        else:
            command = ["node", "emulator.js", str(self.port), str(self.control_port)]
            env = dict(os.environ)
        self.process = subprocess.Popen(
            command,
            cwd=FALLBACK_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} Firestore emulator exited at start")
            if self.answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.kind} Firestore emulator not ready in {START_TIMEOUT} s")

    def answers(self) -> bool:
        """True if the emulator answers its readiness URL now."""
        url = (
            f"http://127.0.0.1:{self.port}/"
            if self.official
            else f"http://127.0.0.1:{self.control_port}/healthz"
        )
        try:
            status, _ = _http("GET", url, timeout=1.0)
        except OSError:
            return False
        return status == 200

    def reset(self) -> None:
        """Delete every document (between tests)."""
        if self.official:
            _http(
                "DELETE",
                f"http://127.0.0.1:{self.port}/emulator/v1/projects/{self.project}"
                "/databases/(default)/documents",
            )
        else:
            _http("DELETE", f"http://127.0.0.1:{self.control_port}/reset")

    def pause(self) -> None:
        """SIGSTOP the whole process group: the emulator hangs with sockets open."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        """Kill the process group and wait (the official launcher is bash running java)."""
        if self.process is None:
            return
        for sig in (signal.SIGCONT, signal.SIGKILL):
            self._signal(sig)
        self.process.wait(timeout=START_TIMEOUT)
        self.process = None

    def restart(self) -> None:
        """Start again on the same port (the data is gone: emulators keep nothing)."""
        self.stop()
        self.start()

    def _signal(self, sig: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass


def start_emulator() -> FirestoreEmulator:
    """A started emulator of the best available kind; raises :class:`EmulatorMissing`."""
    emulator = FirestoreEmulator(pick_kind())
    emulator.start()
    return emulator
