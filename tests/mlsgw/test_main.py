"""The ``mlsgw`` console script: ``serve`` on a command line of its own, the runbook on the
whole CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.support.process import REPO

_RUN_MAIN = textwrap.dedent(
    """
    import contextlib, io, json, sys
    sys.argv = ["mlsgw", *json.loads(sys.argv[1])]
    from mlsgw.main import main
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    heavy = ("google.cloud", "google.api_core", "grpc", "redis", "requests", "mlsgw.cli")
    loaded = sorted({m for m in sys.modules for h in heavy if m == h or m.startswith(h + ".")})
    print(json.dumps({"code": code, "out": out.getvalue(), "loaded": loaded}))
    """
)


def run_main(*args: str) -> dict[str, object]:
    """Run :func:`mlsgw.main.main` with ``args`` in a fresh interpreter; its exit code, its
    standard output and the heavy modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", _RUN_MAIN, json.dumps(args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_the_serve_command_line_imports_no_runbook_cloud_or_redis_client() -> None:
    result = run_main("serve", "--help")
    assert result["code"] == 0
    assert "Run the relay" in str(result["out"]) and "--log-format" in str(result["out"])
    assert result["loaded"] == []


def test_a_usage_error_of_serve_still_exits_3() -> None:
    assert run_main("serve", "--no-such-option")["code"] == 3


def test_every_other_command_line_gets_the_whole_cli() -> None:
    result = run_main("--help")
    assert result["code"] == 0
    for command in ("serve", "healthcheck", "backup", "maintenance"):
        assert command in str(result["out"])
    loaded = result["loaded"]
    assert isinstance(loaded, list)
    assert "mlsgw.cli" in loaded and "grpc" in loaded


def test_version_is_answered_on_the_whole_cli() -> None:
    result = run_main("--version")
    assert result["code"] == 0 and str(result["out"]).startswith("mlsgw ")


def test_a_console_script_from_before_the_entry_point_moved_still_finds_main() -> None:
    from mlsgw import cli, main

    assert cli.main is main.main
