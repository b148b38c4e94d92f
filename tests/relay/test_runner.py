"""``mlsgw serve`` start-up as real processes: the data-directory lock, the Cloud Run SQLite
warning, readable logs, log-level validation and the order of bind and "ready"."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

from tests.support.process import PROCESS_TIMEOUT, StartServe, base_env, free_port


async def _exit_code_and_log(process: asyncio.subprocess.Process, log: Path) -> tuple[int, str]:
    code = await asyncio.wait_for(process.wait(), PROCESS_TIMEOUT)
    return code, log.read_text()


async def test_a_second_serve_on_the_same_data_directory_refuses_to_start(
    serve: StartServe, tmp_path: Path
) -> None:
    """Two relays on one SQLite directory would each keep their own group directory: the
    second exits 1 naming the first one's pid, and the first keeps serving."""
    first = await serve()
    await first.wait_ready()
    second = await serve()
    code, log = await _exit_code_and_log(second.process, second.log)
    assert code == 1
    assert "another mlsgw serve" in log and f"pid {first.process.pid}" in log
    assert "data directory" in log
    assert first.process.returncode is None
    assert await first.stop() == 0
    third = await serve()  # the lock went with the first process
    await third.wait_ready()
    assert await third.stop() == 0


async def test_sqlite_on_cloud_run_logs_a_warning_at_start(
    serve: StartServe, tmp_path: Path
) -> None:
    """With ``K_SERVICE`` set (Cloud Run) and the SQLite store, a WARNING says the data dies
    with the instance; without it, no such warning."""
    relay = await serve(env={**base_env(tmp_path), "K_SERVICE": "mlsgw"})
    await relay.wait_ready()
    assert await relay.stop() == 0
    records = [json.loads(line) for line in relay.log_lines()]
    warnings = [r for r in records if r["severity"] == "WARNING" and "Cloud Run" in r["message"]]
    assert len(warnings) == 1 and "Firestore" in warnings[0]["message"]

    plain = await serve()
    await plain.wait_ready()
    assert await plain.stop() == 0
    assert not any("Cloud Run" in line for line in plain.log_lines())


async def test_start_line_names_the_config_file_and_the_data_path(
    serve: StartServe, tmp_path: Path
) -> None:
    """The start-up line says which config was loaded and where the data lives."""
    config = tmp_path / "relay.toml"
    config.write_text("[information]\nname = 'start line'\n")
    relay = await serve("--config", str(config))
    await relay.wait_ready()
    assert await relay.stop() == 0
    lines = [json.loads(x) for x in relay.log_lines() if x.startswith("{")]
    listening = [x for x in lines if x["message"] == "relay listening"]
    for line in (lines[0], listening[0]):  # the very first line, and the one saying "ready"
        assert line["config"] == str(config), line
        assert line["data"] == str(tmp_path / "data" / "relay.db"), line


async def test_text_log_format_prints_readable_lines(serve: StartServe, tmp_path: Path) -> None:
    """``--log-format text`` prints ``HH:MM:SS LEVEL message`` lines, not JSON."""
    relay = await serve("--log-format", "text")
    await relay.wait_ready()
    assert await relay.stop() == 0
    lines = relay.log_lines()
    started = [line for line in lines if " INFO    relay listening " in line]
    assert started and f"data={tmp_path / 'data' / 'relay.db'}" in started[0]
    assert not any(line.startswith("{") for line in lines)


async def test_mlsgw_log_level_env_is_read(serve: StartServe, tmp_path: Path) -> None:
    """``MLSGW_LOG_LEVEL=WARNING`` hides the INFO start-up lines."""
    relay = await serve(env={**base_env(tmp_path), "MLSGW_LOG_LEVEL": "warning"})
    await relay.wait_ready()
    assert await relay.stop() == 0
    assert not any("relay listening" in line for line in relay.log_lines())


async def test_an_invalid_log_level_exits_3_without_a_traceback(tmp_path: Path) -> None:
    """``--log-level LOUD`` is a usage error naming the valid levels."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mlsgw",
        "serve",
        "--log-level",
        "LOUD",
        cwd=tmp_path,
        env={**base_env(tmp_path), "PORT": str(free_port())},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), PROCESS_TIMEOUT)
    assert process.returncode == 3
    text = err.decode()
    assert "invalid log level 'LOUD'" in text and "DEBUG, INFO, WARNING, ERROR" in text
    assert "Traceback" not in text


async def test_a_port_in_use_fails_before_the_gateway_says_ready(
    serve: StartServe, tmp_path: Path
) -> None:
    """A taken port exits 1 with "cannot listen", and "MLS gateway ready" is never logged."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        relay = await serve(env={**base_env(tmp_path), "PORT": str(port)})
        code, log = await _exit_code_and_log(relay.process, relay.log)
    assert code == 1
    assert "cannot listen" in log
    assert "MLS gateway ready" not in log


async def test_serve_help_names_the_environment_overrides(tmp_path: Path) -> None:
    """``mlsgw serve --help`` tells how to override any key from the environment."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mlsgw",
        "serve",
        "--help",
        cwd=tmp_path,
        env={**base_env(tmp_path), "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), PROCESS_TIMEOUT)
    assert process.returncode == 0
    assert "MLSGW_<SECTION>__<KEY>" in out.decode()


async def test_a_data_path_that_is_a_file_names_the_path_not_the_port(
    serve: StartServe, tmp_path: Path
) -> None:
    """data.path naming a file: exit 1 with the data path and the OS error, not "cannot
    listen" (nothing is wrong with the port)."""
    afile = tmp_path / "afile"
    afile.write_text("")
    relay = await serve(env={**base_env(tmp_path), "MLSGW_DATA__PATH": str(afile)})
    code, log = await _exit_code_and_log(relay.process, relay.log)
    assert code == 1
    assert f"data path {afile}: cannot create or lock the data directory" in log
    assert "File exists" in log
    assert "cannot listen" not in log


async def test_an_out_of_range_port_option_is_a_usage_error_naming_the_option(
    serve: StartServe, tmp_path: Path
) -> None:
    """``--port 99999`` / ``--port -1``: exit 3 naming --port and the valid range, not the
    PORT variable the operator never set."""
    for bad in ("99999", "-1"):
        relay = await serve("--port", bad)
        code, log = await _exit_code_and_log(relay.process, relay.log)
        assert code == 3, log
        assert "'--port'" in log and f"{bad} is not a port number (0-65535)" in log
        assert "PORT:" not in log
