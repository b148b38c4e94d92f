"""``mlsgw serve`` as a subprocess: a free port, a clean environment, readiness, signals."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from tests.support.http import http_request

REPO = Path(__file__).resolve().parents[2]
# Only a failure guard: a healthy relay starts and stops far sooner.
PROCESS_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSGW_") and k != "PORT"}
    env.update(
        {
            "MLSGW_DATA__PATH": str(tmp_path / "data"),
            "MLSGW_NETWORK__HOST": "127.0.0.1",
            "PYTHONPATH": str(REPO),
        }
    )
    return env


class ServeProcess:
    """One ``mlsgw serve`` subprocess, its port and its stderr log file."""

    def __init__(self, process: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def wait_ready(self) -> None:
        async def poll() -> None:
            while True:
                if self.process.returncode is not None:
                    raise AssertionError(f"serve exited early:\n{self.log.read_text()}")
                try:
                    reply = await http_request(f"http://127.0.0.1:{self.port}/health")
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                if reply.status == 200:
                    return

        await asyncio.wait_for(poll(), PROCESS_TIMEOUT)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), PROCESS_TIMEOUT)

    def log_lines(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.strip()]


StartServe = Callable[..., Awaitable[ServeProcess]]


@asynccontextmanager
async def serve_processes(tmp_path: Path) -> AsyncIterator[StartServe]:
    """Yield a factory starting ``mlsgw serve`` in ``tmp_path`` (cwd, so no
    config/mlsgw.toml is picked up); every process still running at exit is killed."""
    processes: list[ServeProcess] = []

    async def start(*args: str, env: dict[str, str] | None = None) -> ServeProcess:
        environ = env or base_env(tmp_path)
        port = int(environ["PORT"]) if "PORT" in environ else free_port()
        log = tmp_path / f"serve{len(processes)}.log"
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "mlsgw",
                "serve",
                *args,
                cwd=tmp_path,
                env={**environ, "PORT": str(port)},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
            )
        running = ServeProcess(process, port, log)
        processes.append(running)
        return running

    try:
        yield start
    finally:
        for running in processes:
            if running.process.returncode is None:
                running.process.kill()
                await running.process.wait()
