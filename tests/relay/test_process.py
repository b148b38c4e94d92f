"""``mlsgw serve`` and ``mlsgw config`` as real processes (R-C1, R-C2, R-M10)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.http import http_request
from tests.support.nostr import Keys, RelayClient
from tests.support.process import PROCESS_TIMEOUT, REPO, StartServe, base_env, free_port

RNOSTR_EXAMPLE = REPO / "tests" / "fixtures" / "rnostr.toml"


async def run_cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mlsgw",
        *args,
        cwd=tmp_path,
        env=base_env(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), PROCESS_TIMEOUT)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# --- serve ---------------------------------------------------------------------------------------


async def test_events_survive_a_restart_and_sigterm_exits_0(
    serve: StartServe, tmp_path: Path
) -> None:
    """Acknowledged events are on disk after SIGTERM; the next process serves them."""
    alice = Keys()
    first = await serve()
    await first.wait_ready()
    client = await RelayClient.open(first.url)
    events = [alice.sign(1, f"durable {i}") for i in range(3)]
    for event in events:
        assert await client.publish(event) == ["OK", event.id, True, ""]
    assert await first.stop() == 0
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001

    second = await serve()
    await second.wait_ready()
    client = await RelayClient.open(second.url)
    stored, end = await client.req("s", {"authors": [alice.pubkey]})
    assert {e["id"] for e in stored} == {e.id for e in events} and end == ["EOSE", "s"]
    await client.close()
    assert await second.stop(signal.SIGINT) == 0


async def test_acknowledged_events_survive_kill_9(serve: StartServe, tmp_path: Path) -> None:
    """An event that got ``OK true`` is committed: SIGKILL right after loses nothing."""
    alice = Keys()
    first = await serve()
    await first.wait_ready()
    client = await RelayClient.open(first.url)
    events = [alice.sign(1, f"kill {i}") for i in range(20)]
    for event in events:
        assert (await client.publish(event))[2] is True
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
    second = await serve()
    await second.wait_ready()
    client = await RelayClient.open(second.url)
    stored, _ = await client.req("s", {"authors": [alice.pubkey]})
    assert {e["id"] for e in stored} == {e.id for e in events}
    await client.close()
    assert await second.stop() == 0


async def test_sigterm_with_busy_connections_exits_0(serve: StartServe, tmp_path: Path) -> None:
    """Connections with live subscriptions do not hold up a SIGTERM drain."""
    relay = await serve()
    await relay.wait_ready()
    clients = [await RelayClient.open(relay.url) for _ in range(5)]
    for i, client in enumerate(clients):
        await client.req(f"live{i}", {})
    assert await relay.stop() == 0


async def test_sigterm_while_the_store_is_still_opening_exits_0(
    serve: StartServe, tmp_path: Path
) -> None:
    """R-C2 holds during start-up too: with a Firestore that accepts connections but never
    answers, serve waits in "opening the event store"; SIGTERM then ends it with exit 0,
    not a death by signal."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        env = {
            **base_env(tmp_path),
            "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{silent.getsockname()[1]}",
            "MLSGW_DATA__BACKEND": "firestore",
            "MLSGW_DATA__PROJECT_ID": "demo-silent",
            "MLSGW_DATA__STORE_TIMEOUT": "60",
        }
        relay = await serve(env=env)

        async def opening() -> None:
            while "opening the event store" not in relay.log.read_text():
                assert relay.process.returncode is None, relay.log.read_text()
                await asyncio.sleep(0.05)

        await asyncio.wait_for(opening(), PROCESS_TIMEOUT)
        assert await relay.stop() == 0, relay.log.read_text()
    assert "stopped while starting" in relay.log.read_text()


async def test_invalid_config_exits_2_and_prints_the_problem(
    serve: StartServe, tmp_path: Path
) -> None:
    """A typo in the config file: serve refuses to start, exit 2, the key is named."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[network]\nprot = 8080\n")
    relay = await serve("--config", str(bad))
    assert await asyncio.wait_for(relay.process.wait(), PROCESS_TIMEOUT) == 2
    output = relay.log.read_text()
    assert "invalid configuration" in output and "unknown key 'network.prot'" in output
    assert str(bad) in output


async def test_why_serve_does_not_start_is_a_json_log_record_like_the_others(
    serve: StartServe, tmp_path: Path
) -> None:
    """On Cloud Run (JSON logs) the reason a start fails is one record with its severity,
    not a bare line among the JSON ones (R-C2)."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[network]\nprot = 8080\n")
    relay = await serve("--config", str(bad), "--log-format", "json")
    assert await asyncio.wait_for(relay.process.wait(), PROCESS_TIMEOUT) == 2
    (record,) = [json.loads(line) for line in relay.log_lines()]
    assert record["severity"] == "CRITICAL"
    assert "invalid configuration" in record["message"]
    assert "unknown key 'network.prot'" in record["message"]


async def test_invalid_environment_exits_2(serve: StartServe, tmp_path: Path) -> None:
    """A wrong MLSGW_* type is refused the same way, naming the variable, key and type."""
    env = {**base_env(tmp_path), "MLSGW_AUTH__ENABLED": "maybe"}
    relay = await serve(env=env)
    assert await asyncio.wait_for(relay.process.wait(), PROCESS_TIMEOUT) == 2
    assert "MLSGW_AUTH__ENABLED: auth.enabled: expected boolean" in relay.log.read_text()


async def test_api_without_relay_url_exits_2_saying_why(serve: StartServe, tmp_path: Path) -> None:
    """``enable_api = true`` without ``information.relay_url``: NIP-98 tokens would be
    checked against the forgeable Host header, so serve refuses to start (exit 2)."""
    env = {**base_env(tmp_path), "MLSGW_EXTENSIONS__MLS_GATEWAY__ENABLE_API": "true"}
    relay = await serve(env=env)
    assert await asyncio.wait_for(relay.process.wait(), PROCESS_TIMEOUT) == 2
    output = relay.log.read_text()
    assert "enable_api needs information.relay_url" in output and "Host" in output


async def test_an_unusable_redis_url_is_refused_with_exit_2(
    serve: StartServe, tmp_path: Path
) -> None:
    """A bus URL redis-py cannot use is refused, never silently replaced by in-process
    fan-out, and the URL (which may hold a password) is not echoed."""
    for url, said in [
        ("http://user:pw@127.0.0.1:1/0", "cluster.redis_url: expected a redis://"),
        ("redis://user:pw@127.0.0.1:notaport/0", "cluster.redis_url: Port could not be cast"),
    ]:
        env = {**base_env(tmp_path), "MLSGW_CLUSTER__REDIS_URL": url}
        relay = await serve(env=env)
        assert await asyncio.wait_for(relay.process.wait(), PROCESS_TIMEOUT) == 2
        output = relay.log.read_text()
        assert said in output and "pw" not in output


async def test_logs_are_json_lines_without_event_content(serve: StartServe, tmp_path: Path) -> None:
    """Every log line is a JSON object with severity/message/time; no content, ever."""
    secret = "TOP-SECRET-CONTENT-7f3a"
    alice = Keys()
    relay = await serve("--log-level", "DEBUG")
    await relay.wait_ready()
    client = await RelayClient.open(relay.url)
    await client.publish(alice.sign(1, secret))
    forged = {**alice.sign(1, secret + "-forged").to_dict(), "sig": "00" * 64}
    await client.send("EVENT", forged)
    await client.recv_until("OK")
    await client.send("EVENT", {"content": secret, "kind": "x"})
    await client.recv_until("NOTICE")
    await client.send_raw(f"not json {secret}")
    await client.recv_until("NOTICE")
    await client.authenticate(alice)
    assert await relay.stop() == 0
    lines = relay.log_lines()
    assert lines, "serve logged nothing"
    for line in lines:
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        assert entry["severity"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
        assert isinstance(entry["message"], str) and isinstance(entry["time"], str)
        assert secret not in line
    messages = [json.loads(line)["message"] for line in lines]
    assert "relay listening" in messages and "relay stopped" in messages


async def test_info_logs_never_contain_pubkeys(serve: StartServe, tmp_path: Path) -> None:
    """At the default level pubkeys are not logged (R-C2)."""
    alice = Keys()
    relay = await serve()
    await relay.wait_ready()
    client = await RelayClient.open(relay.url)
    await client.authenticate(alice)
    await client.publish(alice.sign(1, "hello"))
    await client.send("AUTH", alice.sign(22242, "", [["challenge", "wrong"]]).to_dict())
    await client.recv_until("OK")
    assert await relay.stop() == 0
    assert alice.pubkey not in relay.log.read_text()


async def test_health_of_the_process(serve: StartServe, tmp_path: Path) -> None:
    """/health of a real process reports the store and an integer uptime."""
    relay = await serve()
    await relay.wait_ready()
    reply = await http_request(f"http://127.0.0.1:{relay.port}/health")
    document = reply.json()
    assert isinstance(document, dict) and document["store"] == "ok"
    assert (tmp_path / "data" / "relay.db").is_file()
    assert await relay.stop() == 0


async def test_a_relay_on_the_embedded_store_loads_no_cloud_or_grpc_client(
    serve: StartServe, tmp_path: Path
) -> None:
    """``mlsgw serve`` on SQLite maps none of the runbook's native Google Cloud libraries
    (gRPC, protobuf): they cost every instance tens of MB and part of its cold start."""
    relay = await serve()
    await relay.wait_ready()
    mapped = Path(f"/proc/{relay.process.pid}/maps").read_text()
    assert "/coincurve/" in mapped  # the relay's own native code is there to be seen
    assert "/grpc/" not in mapped and "/google/_upb/" not in mapped
    assert await relay.stop() == 0


# --- config check / show -------------------------------------------------------------------------


async def test_config_check_accepts_the_rnostr_example(tmp_path: Path) -> None:
    """``mlsgw config check rnostr.toml`` exits 0 and lists the ignored rnostr keys."""
    code, out, err = await run_cli(tmp_path, "config", "check", str(RNOSTR_EXAMPLE))
    assert code == 0, err
    assert f"{RNOSTR_EXAMPLE}: valid" in out
    assert "[count]" in out and "data.db_query_timeout" in out


async def test_config_check_takes_the_file_as_dash_c_too(tmp_path: Path) -> None:
    """``mlsgw config check -c FILE`` works like the other commands' ``--config``."""
    code, out, err = await run_cli(tmp_path, "config", "check", "-c", str(RNOSTR_EXAMPLE))
    assert code == 0, err
    assert f"{RNOSTR_EXAMPLE}: valid" in out


async def test_config_show_names_the_file_it_loaded(tmp_path: Path) -> None:
    """The TOML and the JSON forms of ``config show`` both say where the config came from."""
    config = tmp_path / "named.toml"
    config.write_text("[information]\nname = 'named'\n")
    code, out, _ = await run_cli(tmp_path, "config", "show", "-c", str(config))
    assert code == 0 and out.startswith(f"# effective configuration from {config}")
    code, out, _ = await run_cli(tmp_path, "config", "show", "--json")
    assert code == 0 and json.loads(out)["data"]["source"] == "built-in defaults"


async def test_config_check_refuses_a_typo_naming_the_key(tmp_path: Path) -> None:
    """A typo file exits 1 and names the file and the key on stderr."""
    bad = tmp_path / "typo.toml"
    bad.write_text("[network]\nprot = 8080\n")
    code, out, err = await run_cli(tmp_path, "config", "check", str(bad))
    assert code == 1
    assert f"{bad}: unknown key 'network.prot'" in err


async def test_config_check_refuses_the_api_without_relay_url(tmp_path: Path) -> None:
    """``config check`` exits 1 on ``enable_api`` without ``relay_url`` and accepts it
    once the public URL is set."""
    config = tmp_path / "api.toml"
    config.write_text("[extensions.mls_gateway]\nenable_api = true\n")
    code, _, err = await run_cli(tmp_path, "config", "check", str(config))
    assert code == 1 and "enable_api needs information.relay_url" in err
    config.write_text(
        '[information]\nrelay_url = "wss://relay.example.com"\n'
        "[extensions.mls_gateway]\nenable_api = true\n"
    )
    code, out, err = await run_cli(tmp_path, "config", "check", str(config))
    assert code == 0, err


async def test_config_show_redacts_secrets(tmp_path: Path) -> None:
    """``mlsgw config show --json`` prints the effective config with secrets as ***."""
    config = tmp_path / "secret.toml"
    config.write_text('[metrics]\nenabled = true\nauth = "hunter2-metrics"\n')
    code, out, err = await run_cli(tmp_path, "config", "show", "--config", str(config), "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["data"]["config"]["metrics"] == {"enabled": True, "auth": "***"}
    assert "hunter2" not in out
    code, out, _ = await run_cli(tmp_path, "config", "show", "--config", str(config))
    assert code == 0 and "hunter2" not in out and "[metrics]" in out


async def test_port_env_wins_over_the_configured_port(serve: StartServe, tmp_path: Path) -> None:
    """``PORT`` (Cloud Run) decides where serve listens, over MLSGW_NETWORK__PORT."""
    env = {**base_env(tmp_path), "MLSGW_NETWORK__PORT": str(free_port())}
    relay = await serve(env=env)
    await relay.wait_ready()  # polls /health on PORT
    assert await relay.stop() == 0


async def test_a_due_last_resort_is_deleted_without_a_restart(
    serve: StartServe, tmp_path: Path
) -> None:
    """``last_resort_grace = 2`` (s): the sweeper runs often enough that the old last resort
    is gone a few seconds after fresh key packages arrived, with no restart."""
    owner, requester = Keys(), Keys()
    relay = await serve(env={**base_env(tmp_path), "MLSGW_MLS_GATEWAY__LAST_RESORT_GRACE": "2"})
    await relay.wait_ready()
    oc, rc = await RelayClient.open(relay.url), await RelayClient.open(relay.url)
    for client, keys in ((oc, owner), (rc, requester)):
        assert (await client.authenticate(keys))[2] is True
    now = int(time.time())
    last = owner.sign(443, "01", [], created_at=now - 100)
    assert (await oc.publish(last))[2] is True
    events, _ = await rc.req("kp", {"kinds": [443], "authors": [owner.pubkey]})
    assert [e["id"] for e in events] == [last.id]  # served as the last resort, kept
    fresh = owner.sign(443, "02", [], created_at=now - 50)
    assert (await oc.publish(fresh))[2] is True  # the last resort's deletion is now due in 2 s

    async def own() -> set[str]:
        events, _ = await oc.req(f"own{time.monotonic()}", {"kinds": [443]})
        return {e["id"] for e in events}

    deadline = time.monotonic() + 20  # a failure guard; the sweep runs every second here
    while last.id in await own():
        assert time.monotonic() < deadline, "the due last resort was never deleted"
        await asyncio.sleep(0.5)
    assert await own() == {fresh.id}
    assert await relay.stop() == 0
