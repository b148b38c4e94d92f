"""A real ``redis-server`` on a free loopback port, started and stopped by the tests.

A missing binary fails the test with the command that installs it (never a skip).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.support.process import PROCESS_TIMEOUT, REPO, free_port

INSTALL_HINT = f"redis-server is not installed; run {REPO / 'scripts/install-test-services'}"


class RedisServer:
    """One redis-server process; :meth:`stop` and :meth:`start` keep the port."""

    def __init__(
        self, workdir: Path, port: int | None = None, settings: Sequence[str] = ()
    ) -> None:
        """``settings``: more ``redis-server`` arguments (e.g. ``--rename-command``)."""
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(INSTALL_HINT)
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.settings = tuple(settings)
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start (or restart) the server and wait until it answers PING."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            *self.settings,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.wait_for(self._wait_ready(), PROCESS_TIMEOUT)

    async def _wait_ready(self) -> None:
        while True:
            assert self.process is not None
            if self.process.returncode is not None:
                raise AssertionError(f"redis-server exited with {self.process.returncode}")
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.write(b"PING\r\n")
            line = await reader.readline()
            writer.close()
            if line.startswith(b"+PONG"):
                return
            await asyncio.sleep(0.05)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing (a hang)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    async def stop(self) -> None:
        """Kill the server (as an outage would) and wait for it to exit."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.send_signal(signal.SIGCONT)
            await asyncio.wait_for(self.process.wait(), PROCESS_TIMEOUT)


@asynccontextmanager
async def redis_server(workdir: Path) -> AsyncIterator[RedisServer]:
    """A started :class:`RedisServer`, killed at exit."""
    server = RedisServer(workdir)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
