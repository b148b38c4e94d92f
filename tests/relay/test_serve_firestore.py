"""``mlsgw serve`` on the Firestore store (R-S1, R-S3): the operators' rnostr.toml runs
unchanged against the emulator, two processes share one database, and store faults
(emulator hung with SIGSTOP, or stopped) give ``error:`` answers and 503 until the store
is back, then recover by themselves (/health too, with no client write), losing nothing
that was acknowledged."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from relay.core.event import Event
from tests.support.firestore_emulator import FirestoreEmulator
from tests.support.http import http_request
from tests.support.nostr import Keys, RelayClient
from tests.support.process import PROCESS_TIMEOUT, REPO, ServeProcess, StartServe, base_env

RNOSTR_EXAMPLE = REPO / "tests" / "fixtures" / "rnostr.toml"  # in-repo copy of the product example
# The rnostr example allows exactly this key (secret key 1, the secp256k1 generator).
OPERATOR = Keys((1).to_bytes(32, "big"))
STORE_TIMEOUT = 3.0
# Only failure guards: recovery normally takes well under a second.
RECOVERY_TIMEOUT = 60.0
ANSWER_MARGIN = 10.0
# How long the client waits for an answer that may itself wait out the store timeout: the
# client's default (5 s) left a loaded machine only 2 s beyond it.
ANSWER_WAIT = STORE_TIMEOUT + ANSWER_MARGIN


async def health(relay: ServeProcess) -> tuple[int, Any]:
    reply = await http_request(f"http://127.0.0.1:{relay.port}/health")
    return reply.status, reply.json()


async def operator_client(relay: ServeProcess) -> RelayClient:
    client = await RelayClient.open(relay.url)
    assert (await client.authenticate(OPERATOR))[2] is True
    return client


async def test_the_rnostr_example_runs_on_firestore_shared_by_two_processes(
    serve: StartServe, firestore: FirestoreEmulator
) -> None:
    """serve --config rnostr.toml (storage_backend = "firestore") starts against the
    emulator; an event acknowledged by one process is served by the other."""
    first = await serve("--config", str(RNOSTR_EXAMPLE))
    second = await serve("--config", str(RNOSTR_EXAMPLE))
    await first.wait_ready()
    await second.wait_ready()
    status, document = await health(first)
    assert status == 200 and document["store"] == "ok"
    writer = await operator_client(first)
    event = OPERATOR.sign(1, "on firestore")
    assert await writer.publish(event) == ["OK", event.id, True, ""]
    reader = await operator_client(second)
    stored, end = await reader.req("s", {"ids": [event.id]})
    assert [e["id"] for e in stored] == [event.id] and end == ["EOSE", "s"]
    for client in (writer, reader):
        await client.close()
    assert await first.stop() == 0 and await second.stop() == 0


async def test_firestore_without_credentials_exits_1_saying_why(
    serve: StartServe, tmp_path: Path
) -> None:
    """No emulator and no credentials: serve names the store problem and exits 1."""
    env = {**base_env(tmp_path), "MLSGW_DATA__BACKEND": "firestore"}
    env.pop("FIRESTORE_EMULATOR_HOST", None)
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(tmp_path / "missing-key.json")
    relay = await serve(env=env)
    assert await asyncio.wait_for(relay.process.wait(), PROCESS_TIMEOUT) == 1
    assert "the event store is unavailable" in relay.log.read_text()


def firestore_env(tmp_path: Path, emulator: FirestoreEmulator) -> dict[str, str]:
    return {
        **base_env(tmp_path),
        "FIRESTORE_EMULATOR_HOST": emulator.host,
        "MLSGW_DATA__BACKEND": "firestore",
        "MLSGW_DATA__PROJECT_ID": emulator.project,
        "MLSGW_DATA__STORE_TIMEOUT": str(STORE_TIMEOUT),
    }


async def publish_timed(client: RelayClient, event: Event) -> tuple[list[Any], float]:
    started = time.monotonic()
    reply = await client.publish(event, ANSWER_WAIT)
    return reply, time.monotonic() - started


async def wait_healthy(relay: ServeProcess) -> None:
    async def poll() -> None:
        while (await health(relay))[0] != 200:
            await asyncio.sleep(0.2)

    await asyncio.wait_for(poll(), RECOVERY_TIMEOUT)


async def publish_until_accepted(client: RelayClient, keys: Keys, label: str) -> Event:
    """Publish fresh events until one is acknowledged (the store is back)."""

    async def attempt() -> Event:
        while True:
            event = keys.sign(1, f"{label} {time.monotonic()}")
            if (await client.publish(event, ANSWER_WAIT))[2] is True:
                return event
            await asyncio.sleep(0.2)

    return await asyncio.wait_for(attempt(), RECOVERY_TIMEOUT)


async def assert_down(relay: ServeProcess, client: RelayClient, keys: Keys) -> list[Event]:
    """While the store is down: OK false "error:" and CLOSED "error:" within the store
    timeout, /health 503; returns the events refused (and so never acknowledged)."""
    refused = []
    for i in range(2):
        event = keys.sign(1, f"during {i}")
        reply, took = await publish_timed(client, event)
        assert reply[2] is False and reply[3].startswith("error:"), reply
        assert took < ANSWER_WAIT
        refused.append(event)
    _, end = await client.req("down", {"authors": [keys.pubkey]}, timeout=ANSWER_WAIT)
    assert end[0] == "CLOSED" and end[2].startswith("error:"), end
    status, document = await health(relay)
    assert status == 503 and document["status"] == "unhealthy"
    assert document["store"].startswith("error:")
    return refused


async def test_a_hung_emulator_gives_errors_then_recovers_losing_nothing_acknowledged(
    serve: StartServe, private_firestore: FirestoreEmulator, tmp_path: Path
) -> None:
    """SIGSTOP mid-run: error answers within the store timeout and 503; after SIGCONT the
    relay recovers by itself (/health is 200 again before any client writes: its own
    write check commits, then writes are accepted); every event that got OK true is in
    the store."""
    relay = await serve(env=firestore_env(tmp_path, private_firestore))
    await relay.wait_ready()
    alice = Keys()
    client = await RelayClient.open(relay.url)
    acknowledged = []
    for i in range(3):
        event = alice.sign(1, f"before {i}")
        assert (await client.publish(event))[2] is True
        acknowledged.append(event)

    private_firestore.pause()
    try:
        await assert_down(relay, client, alice)
    finally:
        private_firestore.resume()

    await wait_healthy(relay)
    acknowledged.append(await publish_until_accepted(client, alice, "after"))
    stored, end = await client.req("check", {"authors": [alice.pubkey]})
    assert end == ["EOSE", "check"]
    assert {e.id for e in acknowledged} <= {e["id"] for e in stored}
    await client.close()
    assert relay.process.returncode is None
    assert await relay.stop() == 0


async def test_a_stopped_emulator_gives_errors_and_a_restarted_one_is_used_again(
    serve: StartServe, private_firestore: FirestoreEmulator, tmp_path: Path
) -> None:
    """Emulator killed: error answers and 503; started again on its port, /health is 200
    again before any client writes and the relay serves again without a restart (the
    emulator itself kept no data)."""
    relay = await serve(env=firestore_env(tmp_path, private_firestore))
    await relay.wait_ready()
    alice = Keys()
    client = await RelayClient.open(relay.url)
    assert (await client.publish(alice.sign(1, "before")))[2] is True

    private_firestore.stop()
    await assert_down(relay, client, alice)
    private_firestore.start()

    await wait_healthy(relay)
    after = await publish_until_accepted(client, alice, "after")
    stored, _ = await client.req("check", {"ids": [after.id]})
    assert [e["id"] for e in stored] == [after.id]
    await client.close()
    assert relay.process.returncode is None
    assert await relay.stop() == 0
