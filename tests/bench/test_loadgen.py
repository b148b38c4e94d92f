"""bench/loadgen.py: it counts only what the relay acknowledged (never a figure)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.support.nostr import RelayClient
from tests.support.process import REPO, serve_processes

LOADGEN = REPO / "bench" / "loadgen.py"
# Only a failure guard: the run below takes about two seconds.
RUN_TIMEOUT = 120.0


async def test_the_load_generator_counts_only_what_the_relay_acknowledged_and_stored(
    tmp_path: Path,
) -> None:
    async with serve_processes(tmp_path) as serve:
        relay = await serve()
        await relay.wait_ready()
        loadgen = await asyncio.create_subprocess_exec(
            sys.executable,
            str(LOADGEN),
            f"--url={relay.url}",
            "--mode=publish",
            "--connections=2",
            "--window=4",
            "--duration=1",
            "--warmup=0.2",
            "--events=3000",
            "--sign-workers=1",
            f"--pid={relay.process.pid}",
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(loadgen.communicate(), RUN_TIMEOUT)
        assert loadgen.returncode == 0, err.decode()[-3000:]
        result = json.loads(out)
        assert result["errors"] == 0, result["error_kinds"]
        assert result["operations"] > 0
        assert set(result["relay_threads"]) >= {"main", "sqlite-writer"}
        client = await RelayClient.open(relay.url)
        await client.send("COUNT", "stored", {"kinds": [1]})
        answer = await client.recv()
        # The warm-up's events are stored too, but not counted as measured.
        assert answer[:2] == ["COUNT", "stored"] and answer[2]["count"] >= result["operations"]
