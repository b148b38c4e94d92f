"""bench/loadgen.py: it counts only what the relay acknowledged (never a figure)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from types import ModuleType

from relay.core.event import Event, parse_event
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


def load_generator_module() -> ModuleType:
    """bench/loadgen.py as a module (bench/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_loadgen", LOADGEN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_a_stamp_rate_advances_created_at_one_second_per_that_many_events_ending_now() -> None:
    loadgen = load_generator_module()
    before = int(time.time())
    (messages,) = loadgen.sign_events([os.urandom(32)], 10, 1, 3)
    events = [json.loads(m)[1] for m in messages]
    last = events[-1]["created_at"]
    assert before <= last <= time.time()
    assert [last - e["created_at"] for e in events] == [3, 2, 2, 2, 1, 1, 1, 0, 0, 0]
    for event in events:  # still valid events: the relay would accept each
        assert isinstance(parse_event(event), Event)


def test_without_a_stamp_rate_every_event_carries_the_signing_time() -> None:
    loadgen = load_generator_module()
    (messages,) = loadgen.sign_events([os.urandom(32)], 5, 1)
    assert len({json.loads(m)[1]["created_at"] for m in messages}) == 1
