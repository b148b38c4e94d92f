#!/usr/bin/env python3
"""Run the same load against ``mlsgw serve`` and ``nostr-relay`` and print a Markdown table.

For every (relay, mode) pair a fresh relay process is started on a free port with a
fresh temporary database, ``bench/loadgen.py`` runs against it (with ``--pid`` so the
relay's CPU time is measured), and the relay is stopped (SIGTERM to its process group,
SIGKILL after 10 s). Both relays run as one process (nostr-relay: one gunicorn worker),
with their default settings apart from ports and paths.

With ``--profile FILE`` an extra publish run against mlsgw is recorded with py-spy
(collapsed stacks, all threads) and summarised by ``bench/hotspots.py``; the profiled
run is not part of the table (sampling slows the relay down).

Example::

    python bench/compare.py --duration 10 --out /tmp/compare.md --profile /tmp/profile.txt
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LOADGEN = HERE / "loadgen.py"
HOTSPOTS = HERE / "hotspots.py"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
MODES = ("publish", "req", "fanout")
RELAYS = ("mlsgw", "nostr-relay")
# mlsgw from another checkout (``--baseline-tree``, e.g. a git worktree of an older commit),
# to measure a change side by side with what it started from.
BASELINE_RELAY = "baseline"
# A ``-full`` suffix runs that mlsgw with ``data.synchronous = "full"`` (fsync on every
# commit: survives a power loss); it only changes writes, so it runs the publish mode only.
FULL_SUFFIX = "-full"
# A ``-cluster`` suffix runs that mlsgw in cluster mode on a redis-server of its own (one
# instance: what the bus costs each event; bench/cluster.py measures two).
CLUSTER_SUFFIX = "-cluster"
# mlsgw (and the baseline) run with this per-connection message cap instead of the
# default 1,000/s: a benchmark measures capacity, and 10 REQ connections pass 1,000/s
# each, so the limiter's CLOSED answers would be timed instead. --mlsgw-env overrides it.
BENCH_MESSAGE_CAP = ("MLSGW_RATE_LIMITER__MESSAGES_PER_SECOND", "1000000")
# Not in the default set: mlsgw on the Firestore store against the local emulator. Its
# figures show how the store pipelines writes (one transaction per event, many in flight),
# not production latency (no network, no replication).
FIRESTORE_RELAY = "mlsgw-firestore"

NOSTR_RELAY_CONFIG = """\
DEBUG: false
relay_name: nostr-relay (benchmark)
storage:
  sqlalchemy.url: sqlite+aiosqlite:///{db}
  num_concurrent_reqs: 10
  num_concurrent_adds: 2
  validators:
    - nostr_relay.validators.is_not_too_large
    - nostr_relay.validators.is_signed
    - nostr_relay.validators.is_recent
    - nostr_relay.validators.is_not_hellthread
verification:
  nip05_verification: disabled
gunicorn:
  bind: 127.0.0.1:{port}
  workers: 1
  loglevel: warning
authentication:
  enabled: false
logging:
  version: 1
  root: {{level: WARNING}}
  loggers: {{nostr_relay: {{level: WARNING}}}}
"""


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RelayProcess:
    """A relay started in its own process group, with its temporary directory."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    log: Path
    exit_code: int | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM the process group, SIGKILL it after STOP_TIMEOUT; returns the exit code."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"[compare] {self.name} ignored SIGTERM; killing", file=sys.stderr)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers (gunicorn workers)
        except ProcessLookupError:
            pass
        self.exit_code = self.proc.wait()
        return self.exit_code


_RUNNING: list[RelayProcess] = []
_TEMPDIRS: list[Path] = []


_EMULATORS: list[Any] = []
_REDIS: list[subprocess.Popen[bytes]] = []


def start_redis(workdir: Path) -> int:
    """A ``redis-server`` without persistence on a free loopback port; its port."""
    port = free_port()
    command = redis_server_command(port)
    _REDIS.append(subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL))
    wait_for_redis(port)
    return port


def redis_server_command(port: int) -> list[str]:
    """The command of a ``redis-server`` without persistence on loopback ``port``."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is missing; run scripts/install-test-services")
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]


def wait_for_redis(port: int) -> None:
    """Return once the Redis on loopback ``port`` answers PING (exit after READY_TIMEOUT)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not _redis_answers(port):
        if time.monotonic() > deadline:
            raise SystemExit(f"redis-server not ready after {READY_TIMEOUT} s")
        time.sleep(0.05)


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def stop_services() -> None:
    """Stop the emulators and redis-servers started for the last relay."""
    for emulator in _EMULATORS:
        emulator.stop()
    _EMULATORS.clear()
    for proc in _REDIS:
        proc.terminate()
        proc.wait()
    _REDIS.clear()


def start_firestore_emulator() -> Any:
    """The test suite's emulator launcher (official emulator, else the npm fallback)."""
    sys.path.insert(0, str(HERE.parent))
    from tests.support.firestore_emulator import start_emulator

    emulator = start_emulator()
    _EMULATORS.append(emulator)
    return emulator


def _cleanup() -> None:
    for relay in list(_RUNNING):
        relay.stop()
        _RUNNING.remove(relay)
    stop_services()
    for path in _TEMPDIRS:
        shutil.rmtree(path, ignore_errors=True)


def _on_signal(signum: int, _frame: object) -> None:
    _cleanup()
    sys.exit(128 + signum)


def base_relay(name: str) -> str:
    """``name`` without its ``-full`` or ``-cluster`` suffix."""
    return name.removesuffix(FULL_SUFFIX).removesuffix(CLUSTER_SUFFIX)


def start_relay(name: str, args: argparse.Namespace, *, poll: float = 0.2) -> RelayProcess:
    """Start a fresh ``name`` relay on a free port and wait until it answers NIP-11 (asking
    every ``poll`` seconds)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    _TEMPDIRS.append(workdir)
    port = free_port()
    env = dict(os.environ)
    base = base_relay(name)
    if base in ("mlsgw", BASELINE_RELAY, FIRESTORE_RELAY):
        env.update(PORT=str(port), MLSGW_NETWORK__HOST="127.0.0.1")
        if name == FIRESTORE_RELAY:
            emulator = start_firestore_emulator()
            env.update(
                FIRESTORE_EMULATOR_HOST=emulator.host,
                MLSGW_DATA__BACKEND="firestore",
                MLSGW_DATA__PROJECT_ID=emulator.project,
            )
        env["MLSGW_DATA__PATH"] = str(workdir / "data")
        env.pop("MLSGW_CONFIG", None)
        env[BENCH_MESSAGE_CAP[0]] = BENCH_MESSAGE_CAP[1]
        for item in args.mlsgw_env:
            key, _, value = item.partition("=")
            env[key] = value
        if name.endswith(FULL_SUFFIX):
            env["MLSGW_DATA__SYNCHRONOUS"] = "full"
        if name.endswith(CLUSTER_SUFFIX):
            env["MLSGW_CLUSTER__REDIS_URL"] = f"redis://127.0.0.1:{start_redis(workdir)}/0"
        command = [*args.mlsgw_cmd.split(), "serve"]
        # mlsgw runs from the checkout this script is in, whatever is installed
        tree = str(HERE.parent)
        if base == BASELINE_RELAY:
            if not args.baseline_tree:
                raise SystemExit("the baseline relay needs --baseline-tree DIR")
            tree = str(Path(args.baseline_tree).resolve())
            command = [sys.executable, "-m", "mlsgw", "serve"]
        # the tree's packages come first on sys.path, before an installed mlsgw
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, env.get("PYTHONPATH")]))
    elif name == "nostr-relay":
        config = workdir / "config.yaml"
        config.write_text(NOSTR_RELAY_CONFIG.format(db=workdir / "nostr.sqlite3", port=port))
        command = [*args.nostr_relay_cmd.split(), "-c", str(config), "serve"]
    else:
        choices = ", ".join((*RELAYS, BASELINE_RELAY, FIRESTORE_RELAY))
        raise SystemExit(f"unknown relay {name!r}; choose from {choices}")
    log = workdir / "relay.log"
    with log.open("wb") as out:
        # cwd=workdir: mlsgw then runs on its built-in defaults, not a config/ of the cwd
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    relay = RelayProcess(name, port, proc, workdir, log)
    _RUNNING.append(relay)
    deadline = time.monotonic() + READY_TIMEOUT
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/", headers={"Accept": "application/nostr+json"}
    )
    while True:
        if not relay.alive():
            raise SystemExit(f"{name} exited during start-up:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                if response.status == 200:
                    return relay
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(
                f"{name} not ready after {READY_TIMEOUT} s:\n{log.read_text()[-3000:]}"
            )
        time.sleep(poll)


def loadgen_command(
    mode: str, url: str, pid: int, args: argparse.Namespace, window: int | None = None
) -> list[str]:
    command = [
        sys.executable,
        str(LOADGEN),
        "--url",
        url,
        "--mode",
        mode,
        "--pid",
        str(pid),
        "--json",
        "--quiet",
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "--connections",
        str(args.connections),
        "--window",
        str(args.window if window is None else window),
        "--subscribers",
        str(args.subscribers),
    ]
    extra: list[str] = args.loadgen_arg
    return command + extra


def machine_busy_cores(seconds: float) -> float:
    """How many cores the whole machine kept busy over the next ``seconds``."""

    def busy() -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")

    before = busy()
    time.sleep(seconds)
    return (busy() - before) / seconds


def wait_for_quiet(args: argparse.Namespace) -> None:
    """Wait (at most ``--quiet-wait`` s) until other processes leave the CPUs alone."""
    deadline = time.monotonic() + args.quiet_wait
    while True:
        load = machine_busy_cores(1.0)
        if load <= args.quiet_cores:
            return
        if time.monotonic() > deadline:
            print(
                f"[compare] machine still busy ({load:.2f} cores); running anyway", file=sys.stderr
            )
            return
        print(f"[compare] machine busy ({load:.2f} cores); waiting", file=sys.stderr, flush=True)


def run_loadgen(
    mode: str, relay: RelayProcess, args: argparse.Namespace, window: int | None = None
) -> dict[str, Any]:
    command = loadgen_command(mode, relay.url, relay.proc.pid, args, window)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"failed": f"loadgen exited {done.returncode}: {done.stderr.strip()[-2000:]}"}
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def profile_publish(args: argparse.Namespace, gil_only: bool) -> str:
    """Record mlsgw under the publish load with py-spy; the hotspot tables as Markdown.

    ``gil_only``: sample only the thread holding the GIL (what serialises the relay).
    """
    relay = start_relay("mlsgw", args)
    seconds = args.warmup + args.duration
    profile = Path(args.profile)
    if gil_only:
        profile = profile.with_name(f"{profile.stem}-gil{profile.suffix}")
    command = ["py-spy", "record", "--format", "raw", "--threads", "--rate", "250"]
    command += ["--gil"] if gil_only else []
    command += ["--duration", str(int(seconds)), "--output", str(profile)]
    command += ["--pid", str(relay.proc.pid)]
    started = relay.workdir / "load-started"
    wait_for_quiet(args)
    load = subprocess.Popen(
        [
            *loadgen_command("publish", relay.url, relay.proc.pid, args),
            "--started-file",
            str(started),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    spy: subprocess.Popen[str] | None = None
    err = ""
    try:
        while not started.exists() and load.poll() is None:
            time.sleep(0.05)
        # sample the warm-up and the measured phase, not the signing before them
        spy = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        out, load_err = load.communicate(timeout=seconds + 120)
        _, err = spy.communicate(timeout=30)
        result: dict[str, Any] = json.loads(out) if load.returncode == 0 else {}
        if load.returncode != 0:
            err += load_err
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
        if spy is not None and spy.poll() is None:
            os.killpg(spy.pid, signal.SIGKILL)
            spy.wait()
        relay.stop()
        _RUNNING.remove(relay)
    if not profile.exists():
        return f"(py-spy produced no profile: {err.strip()[-500:]})\n"
    done = subprocess.run(
        [sys.executable, str(HOTSPOTS), str(profile), "--top", str(args.top)],
        capture_output=True,
        text=True,
        check=True,
        cwd=HERE.parent,
    )
    kind = "GIL holder only (--gil)" if gil_only else "all threads, idle excluded"
    head = [
        f"py-spy record --rate 250 --threads{' --gil' if gil_only else ''}: {kind}. "
        f"Under sampling the relay did {result.get('rate_per_s', '?')} EVENT/s "
        f"(raw stacks: `{profile}`).",
        "",
    ]
    if not gil_only:
        head += thread_table(result, profile)
    return "\n".join(head) + "\n" + done.stdout


def thread_table(result: dict[str, Any], profile: Path) -> list[str]:
    """Relay CPU per thread during the profiled run, named from py-spy's thread labels."""
    names: dict[str, str] = {}
    for line in profile.read_text().splitlines():
        label = line.split(";", 1)[0]
        if label.startswith("thread (") and "): " in label:
            tid, _, name = label[len("thread (") :].partition("): ")
            names[tid] = name
    threads = result.get("relay_threads") or {}
    if not threads:
        return []
    rows = ["Relay CPU by thread during that run (from /proc):", ""]
    rows += ["| thread | CPU seconds |", "|---|---:|"]
    main_tid = str(result.get("relay_pid", ""))
    for tid, value in threads.items():
        name = "MainThread (event loop)" if tid == "main" else names.get(tid, tid)
        rows.append(f"| {name}{'' if tid in ('main', main_tid) else f' ({tid})'} | {value} |")
    return rows + [""]


# --- the table ---------------------------------------------------------------------------


def _ms(result: dict[str, Any], *keys: str) -> str:
    return " / ".join(f"{result[k]:.2f}" for k in keys)


def _cell(result: dict[str, Any] | None, row: str) -> str:
    if result is None:
        return "—"
    if "failed" in result:
        return "failed" if row == "rate" else "—"
    if row == "rate":
        return f"{result['rate_per_s']:,.0f}"
    if row == "spread":
        spread = result.get("spread")
        if not spread:
            return "—"
        return " / ".join(
            "?" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.2f}" for v in spread
        )
    if row == "latency":
        return _ms(result, "p50_ms", "p95_ms", "p99_ms")
    if row == "cpu":
        value = result.get("relay_cpu_us_per_op")
        return "—" if value is None else f"{value:,.0f}"
    if row == "errors":
        kinds = result.get("error_kinds") or {}
        detail = ", ".join(f"{k}: {v}" for k, v in kinds.items())
        return str(result["errors"]) + (f" ({detail})" if detail else "")
    if row == "others":
        seconds = result.get("duration_s") or 0
        return f"{result.get('other_cpu_s', 0) / seconds:.2f}" if seconds else "—"
    if row == "deliveries":
        extra = result.get("extra") or {}
        return f"{extra.get('deliveries_per_s', 0):,.0f}"
    raise ValueError(row)


def _threads(result: dict[str, Any] | None) -> str:
    """Relay CPU per thread in cores (CPU seconds / measured seconds), busiest first."""
    if not result or "failed" in result:
        return "—"
    seconds = result.get("duration_s") or 0
    threads = result.get("relay_threads") or {}
    if not seconds or not isinstance(threads, dict) or not threads:
        return "—"
    ranked = sorted(threads.items(), key=lambda kv: -float(kv[1]))
    return ", ".join(f"{name} {float(value) / seconds:.2f}" for name, value in ranked)


@dataclass(frozen=True)
class Run:
    """One load: a mode at an in-flight window; ``key`` names it in the results."""

    mode: str
    window: int

    @property
    def key(self) -> str:
        return f"{self.mode}@{self.window}"


def plan_runs(modes: Sequence[str], args: argparse.Namespace) -> list[Run]:
    """Publish once per ``--publish-windows`` entry, the other modes at ``--window``."""
    runs: list[Run] = []
    for mode in modes:
        windows = args.publish_windows if mode == "publish" else [args.window]
        runs += [Run(mode, w) for w in windows]
    return runs


def runs_for(relay: str, run: Run) -> bool:
    """``-full`` variants differ only in how writes are synced: they run publish only."""
    return run.mode == "publish" or not relay.endswith(FULL_SUFFIX)


@dataclass
class Table:
    """Results by run and relay."""

    relays: list[str]
    results: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def add(self, run: Run, relay: str, result: dict[str, Any]) -> None:
        self.results.setdefault(run.key, {})[relay] = result

    def _rows(self, run: Run, args: argparse.Namespace) -> list[tuple[str, str]]:
        rows = self._figures(run, args)
        if args.rounds > 1:
            what = "delivery p95 (ms)" if median_key(run) == "p95_ms" else "throughput"
            load = f"{args.connections}×{run.window}"
            name = "fanout" if run.mode == "fanout" else f"{run.mode} {load}"
            rows.insert(1, ("spread", f"{name}: {what} of each round"))
        return rows

    def _figures(self, run: Run, args: argparse.Namespace) -> list[tuple[str, str]]:
        load = f"{args.connections}×{run.window}"
        if run.mode == "publish":
            return [
                ("rate", f"publish {load}: EVENT/s"),
                ("latency", f"publish {load}: ack latency p50 / p95 / p99 (ms)"),
                ("cpu", f"publish {load}: relay CPU per event (µs)"),
                ("threads", f"publish {load}: relay CPU by thread (cores)"),
                ("errors", f"publish {load}: errors"),
                ("others", f"publish {load}: other processes' CPU meanwhile (cores)"),
            ]
        if run.mode == "req":
            return [
                ("rate", f"req {load}: REQ→EOSE round trips/s (limit 10)"),
                ("latency", f"req {load}: round-trip latency p50 / p95 / p99 (ms)"),
                ("cpu", f"req {load}: relay CPU per REQ (µs)"),
                ("threads", f"req {load}: relay CPU by thread (cores)"),
                ("errors", f"req {load}: errors"),
                ("others", f"req {load}: other processes' CPU meanwhile (cores)"),
            ]
        return [
            ("latency", f"fanout: delivery latency p50 / p95 / p99 (ms, {args.subscribers} subs)"),
            ("deliveries", "fanout: deliveries/s"),
            ("cpu", "fanout: relay CPU per published event (µs)"),
            ("threads", "fanout: relay CPU by thread (cores)"),
            ("errors", "fanout: errors"),
            ("others", "fanout: other processes' CPU meanwhile (cores)"),
        ]

    def markdown(self, runs: Sequence[Run], args: argparse.Namespace) -> str:
        out = [
            "| figure | " + " | ".join(self.relays) + " |",
            "|---|" + "---:|" * len(self.relays),
        ]
        for run in runs:
            if run.key not in self.results:
                continue
            for row, label in self._rows(run, args):
                got = self.results[run.key]
                cells = [
                    _threads(got.get(r)) if row == "threads" else _cell(got.get(r), row)
                    for r in self.relays
                ]
                out.append(f"| {label} | " + " | ".join(cells) + " |")
        return "\n".join(out) + "\n"

    def ratios(self, runs: Sequence[Run], new: str = "mlsgw", old: str = BASELINE_RELAY) -> str:
        """The figures the speed work is judged by, as ratios within this one run."""

        def get(relay: str, key: str, field_name: str) -> float | None:
            result = self.results.get(key, {}).get(relay)
            if not result or "failed" in result:
                return None
            value = result.get(field_name)
            return float(value) if value else None

        def ratio(a: float | None, b: float | None) -> str:
            return "—" if a is None or b is None else f"{a / b:.2f}×"

        lines = ["| ratio | value |", "|---|---:|"]
        for run in runs:
            if run.mode == "fanout":
                continue
            for relay in (new, f"{new}{FULL_SUFFIX}", f"{new}{CLUSTER_SUFFIX}"):
                base = f"{old}{relay.removeprefix(new)}"
                if relay in self.relays and base in self.relays and runs_for(relay, run):
                    name = f"{run.mode} {args_load(run)}"
                    rate = ratio(
                        get(relay, run.key, "rate_per_s"), get(base, run.key, "rate_per_s")
                    )
                    cpu = ratio(
                        get(relay, run.key, "relay_cpu_us_per_op"),
                        get(base, run.key, "relay_cpu_us_per_op"),
                    )
                    lines.append(f"| {name}: throughput {relay} ÷ {base} | {rate} |")
                    lines.append(f"| {name}: CPU per operation {relay} ÷ {base} | {cpu} |")
        publish = sorted(r.window for r in runs if r.mode == "publish")
        for relay in self.relays:
            if len(publish) > 1 and 1 in publish:
                top = publish[-1]
                scale = ratio(
                    get(relay, f"publish@{top}", "rate_per_s"),
                    get(relay, "publish@1", "rate_per_s"),
                )
                lines.append(f"| {relay}: publish ×{top} ÷ ×1 throughput | {scale} |")
            if 1 in publish:
                tail = ratio(get(relay, "publish@1", "p99_ms"), get(relay, "publish@1", "p95_ms"))
                lines.append(f"| {relay}: publish ×1 ack p99 ÷ p95 | {tail} |")
        return "\n".join(lines) + "\n"


def args_load(run: Run) -> str:
    """``×16``: the in-flight window of a run, for labels."""
    return f"×{run.window}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark mlsgw against nostr-relay under the same load.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--relays",
        default=",".join(RELAYS),
        help="comma-separated relays: mlsgw, nostr-relay, baseline (needs --baseline-tree), "
        "mlsgw-firestore; a -full suffix on mlsgw or baseline runs it with "
        "data.synchronous=full (publish only), a -cluster suffix in cluster mode on a "
        "redis-server of its own",
    )
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated modes")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per run")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--window", type=int, default=1, help="in flight per connection (req)")
    parser.add_argument(
        "--publish-windows",
        type=lambda text: [int(w) for w in text.split(",") if w.strip()],
        default=[1, 16],
        help="publish runs once per in-flight window in this comma-separated list",
    )
    parser.add_argument(
        "--baseline-tree",
        help="checkout (e.g. a git worktree of an older commit) the 'baseline' relay runs from",
    )
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument(
        "--loadgen-arg",
        action="append",
        default=[],
        help="extra argument passed to loadgen.py (repeat; e.g. --loadgen-arg=--rate=200)",
    )
    parser.add_argument("--mlsgw-cmd", default="mlsgw", help="command that runs mlsgw")
    parser.add_argument(
        "--mlsgw-env", action="append", default=[], help="KEY=VALUE for mlsgw (repeat)"
    )
    parser.add_argument("--nostr-relay-cmd", default="nostr-relay", help="command for nostr-relay")
    parser.add_argument("--profile", help="also profile mlsgw under publish load into this file")
    parser.add_argument("--top", type=int, default=20, help="rows of the hotspot tables")
    parser.add_argument(
        "--quiet-cores",
        type=float,
        default=0.3,
        help="before each run, wait until other processes use at most this many cores",
    )
    parser.add_argument("--quiet-wait", type=float, default=180.0, help="but no longer than this")
    parser.add_argument("--out", help="also write the Markdown report to this file")
    parser.add_argument("--json-out", help="write all raw results as JSON to this file")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every cell this many times, relays taking turns within each round; the "
        "table shows each cell's median run (by throughput, fan-out by p95 latency) and "
        "the spread",
    )
    parser.add_argument("--keep-logs", action="store_true", help="print relay log tails")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    atexit.register(_cleanup)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    relays = [r.strip() for r in args.relays.split(",") if r.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for mode in modes:
        if mode not in MODES:
            raise SystemExit(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    state = source_state()  # before the runs: others may edit the tree meanwhile
    table = Table(relays)
    problems: list[str] = []
    runs = plan_runs(modes, args)
    for run in runs:
        rounds: dict[str, list[dict[str, Any]]] = {}
        for number in range(1, args.rounds + 1):
            for name in relays:
                if not runs_for(name, run):
                    continue
                label = f"{run.mode} ×{run.window}, round {number}/{args.rounds}"
                print(f"[compare] {name}: {label} ...", file=sys.stderr, flush=True)
                result = measure(name, run, args, problems)
                rounds.setdefault(name, []).append(result)
                rate = result.get("rate_per_s", "?")
                print(f"[compare]   -> {rate}/s, errors {result.get('errors')}", file=sys.stderr)
        for name, results in rounds.items():
            table.add(run, name, median_run(run, results))
    report = [
        f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}; machine: {machine()}; mlsgw at {state}",
        "",
        f"Command: `python bench/compare.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        "",
        f"mlsgw relays ran with `{'='.join(BENCH_MESSAGE_CAP)}` (no per-connection message"
        " cap in the way) unless `--mlsgw-env` said otherwise.",
        "",
        table.markdown(runs, args),
    ]
    if BASELINE_RELAY in {base_relay(r) for r in relays}:
        report += ["Ratios within this run:", "", table.ratios(runs)]
    if problems:
        report += ["Problems:", ""] + [f"- {p}" for p in problems] + [""]
    if args.profile:
        print("[compare] profiling mlsgw under publish load ...", file=sys.stderr, flush=True)
        report += ["## Profile (mlsgw, publish load, py-spy)", "", profile_publish(args, False)]
        report += ["### Who holds the GIL", "", profile_publish(args, True)]
    text = "\n".join(report)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(table.results, indent=2))
    return 1 if problems else 0


def measure(name: str, run: Run, args: argparse.Namespace, problems: list[str]) -> dict[str, Any]:
    """One cell: a fresh ``name`` relay under ``run``'s load; what went wrong goes to
    ``problems``."""
    relay = start_relay(name, args)
    wait_for_quiet(args)
    result = run_loadgen(run.mode, relay, args, run.window)
    crashed = not relay.alive()
    code = relay.stop()
    _RUNNING.remove(relay)
    stop_services()
    what = f"{run.mode} ×{run.window}"
    if crashed:
        problems.append(f"{name} died during {what} (exit code {code})")
    elif code != 0 and not (name == "nostr-relay" and code == -signal.SIGTERM):
        problems.append(f"{name} exited {code} after SIGTERM ({what})")
    if "failed" in result:
        problems.append(f"{name} {what}: {result['failed']}")
    if args.keep_logs:
        print(relay.log.read_text()[-2000:], file=sys.stderr)
    return result


def median_key(run: Run) -> str:
    """The figure ``--rounds`` takes the median of: throughput, but for fan-out (whose rate
    is set by the load) its p95 delivery latency."""
    return "p95_ms" if run.mode == "fanout" else "rate_per_s"


def median_run(run: Run, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The run in the middle of ``results`` by :func:`median_key`, whole, so that its
    figures belong together; with more than one,
    ``spread`` lists every run's figure in the order they ran."""
    ok = [r for r in results if "failed" not in r]
    if not ok:
        return results[-1]
    key = median_key(run)
    middle = dict(sorted(ok, key=lambda r: float(r[key]))[(len(ok) - 1) // 2])
    if len(results) > 1:
        middle["spread"] = [r.get(key) for r in results]
    return middle


def source_state() -> str:
    """The commit mlsgw ran from, and whether relay/ or mlsgw/ had uncommitted changes."""
    repo = HERE.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "relay", "mlsgw"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    return f"commit {head}" + (" + uncommitted changes in relay/ or mlsgw/" if dirty else "")


def machine() -> str:
    """CPU model, core count and Python version."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


if __name__ == "__main__":
    sys.exit(main())
