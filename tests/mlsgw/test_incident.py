"""``mlsgw incident …`` end to end: the real CLI, the ledger on disk, a local webhook server."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlsgw.notify.webhook import WebhookNotifier
from tests.mlsgw.conftest import Cli
from tests.mlsgw.test_rollback import ledger_lines


class Webhook:
    """A local incoming-webhook endpoint: records each POST, answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.posts: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                hook.posts.append(json.loads(self.rfile.read(length)))
                hook.content_types.append(self.headers.get("Content-Type", ""))
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.stop()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def run(cli: Cli, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli("incident", *args, "--json")
    return result.exit_code, json.loads(result.stdout)


OPEN = ["open", "--sev", "1", "--title", "Relay down", "--impact", "No client can connect"]


def test_open_posts_the_notice_as_text_and_records_it(
    cli: Cli, webhook: Webhook, ledger_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open: the filled template is printed, POSTed as JSON {"text"} (Slack / Google Chat)
    with the SEV1 contacts, and the ledger has the open line and the delivery line."""
    monkeypatch.setenv("MLSGW_CONTACTS", "sev1: Primary on-call <oncall@example.com>")
    code, doc = run(cli, *OPEN, "--commander", "alice", "--webhook", webhook.url)
    assert code == 0, doc
    incident_id = doc["data"]["incident"]["id"]
    assert incident_id.startswith("INC-")
    (post,) = webhook.posts
    assert set(post) == {"text"} and post["text"] == doc["data"]["notice"] == doc["notices"][0]
    assert "response within 15 min" in post["text"]
    assert "Escalation: Primary on-call <oncall@example.com>" in post["text"]
    assert webhook.content_types[0].startswith("application/json")
    opened, notified = ledger_lines(ledger_path)
    assert opened["command"] == "incident open" and notified["command"] == "incident notify"
    assert opened["result"]["incident"]["commander"] == "alice"  # type: ignore[index]
    assert notified["result"]["delivered"] is True  # type: ignore[index]
    assert "secret" not in json.dumps(doc["steps"])  # the URL is the credential


def test_a_failing_webhook_is_reported_and_the_ledger_entry_is_kept(
    cli: Cli, ledger_path: Path
) -> None:
    """HTTP 500 from the webhook: exit 1, the failure in the report and the ledger, the
    incident itself recorded and showable."""
    hook = Webhook(status=500)
    try:
        code, doc = run(cli, *OPEN, "--webhook", hook.url)
    finally:
        hook.stop()
    assert code == 1 and doc["status"] == "failed"
    assert "NOT delivered: HTTP 500" in doc["summary"]
    opened, notified = ledger_lines(ledger_path)
    assert opened["result"]["outcome"] == "done"  # type: ignore[index]
    assert notified["result"]["outcome"] == "failed"  # type: ignore[index]
    code, shown = run(cli, "show", doc["data"]["incident"]["id"])
    assert code == 0 and [e["event"] for e in shown["data"]["timeline"]] == ["open", "notify"]


def test_an_unreachable_webhook_is_reported_and_the_ledger_entry_is_kept(
    cli: Cli, ledger_path: Path
) -> None:
    """Nothing listening: exit 1 naming it unreachable; the open line is in the ledger."""
    code, doc = run(cli, *OPEN, "--webhook", closed_port_url(), "--timeout", "5")
    assert code == 1 and "unreachable" in doc["summary"]
    assert ledger_lines(ledger_path)[0]["command"] == "incident open"


def test_update_and_resolve_build_the_timeline_and_list_shows_it(
    cli: Cli, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open → update (status, note) → resolve: three notices posted; show lists the timeline;
    list --open no longer lists it; a second resolve is refused."""
    monkeypatch.setenv("MLSGW_INCIDENT_WEBHOOK", webhook.url)
    _, doc = run(cli, *OPEN)
    incident_id = doc["data"]["incident"]["id"]
    code, doc = run(
        cli, "update", incident_id, "--status", "identified", "--note", "store quota exhausted"
    )
    assert code == 0, doc
    assert "Update: store quota exhausted" in webhook.posts[-1]["text"]
    assert "Status: Identified" in webhook.posts[-1]["text"]
    code, doc = run(
        cli,
        "resolve",
        incident_id,
        "--root-cause",
        "Firestore quota",
        "--resolution",
        "raised the quota",
        "--prevention",
        "alert at 80 %",
    )
    assert code == 0, doc
    assert webhook.posts[-1]["text"].startswith("✅ RESOLVED: Relay down")
    assert len(webhook.posts) == 3
    code, shown = run(cli, "show", incident_id)
    events = [e["event"] for e in shown["data"]["timeline"]]
    assert events == ["open", "notify", "update", "notify", "resolve", "notify"]
    assert shown["data"]["incident"]["status"] == "resolved"
    code, listed = run(cli, "list")
    assert [i["id"] for i in listed["data"]["incidents"]] == [incident_id]
    code, listed = run(cli, "list", "--open")
    assert listed["data"]["incidents"] == []
    code, again = run(cli, "resolve", incident_id, "--root-cause", "x", "--resolution", "y")
    assert code == 3 and "was resolved" in again["summary"]


def test_dry_run_prints_the_notice_and_records_and_sends_nothing(
    cli: Cli, webhook: Webhook, ledger_path: Path
) -> None:
    code, doc = run(cli, *OPEN, "--webhook", webhook.url, "--dry-run")
    assert code == 0 and doc["status"] == "planned" and "INCIDENT: Relay down" in doc["notices"][0]
    assert webhook.posts == [] and not ledger_path.exists()


def test_without_a_webhook_the_notice_is_printed_and_recorded(cli: Cli, ledger_path: Path) -> None:
    """No webhook configured: done, the webhook step skipped, one ledger line."""
    result = cli("incident", *OPEN)
    assert result.exit_code == 0
    assert "INCIDENT: Relay down" in result.stdout and "Incident ID: INC-" in result.stdout
    assert [r["command"] for r in ledger_lines(ledger_path)] == ["incident open"]


def test_unknown_incident_and_bad_times_are_refused(cli: Cli) -> None:
    """show/update of an unknown id exit 3; a time that does not parse exits 3 naming it."""
    assert run(cli, "show", "INC-nope")[0] == 3
    code, doc = run(cli, "update", "INC-nope", "--note", "x")
    assert code == 3 and "no incident INC-nope" in doc["summary"]
    code, doc = run(cli, *OPEN, "--start", "yesterday-ish")
    assert code == 3 and "--start" in doc["summary"]


UTC_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")


def test_show_and_list_print_every_time_with_its_year_and_zone(
    cli: Cli, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`list` shows the start as `2026-12-03 09:00 UTC` and `show` each entry's time the same
    way (never a bare `12-03 09:00` or a raw `+00:00`)."""
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("MLSGW_INCIDENT_WEBHOOK", webhook.url)
    _, doc = run(cli, *OPEN, "--start", "2026-12-03T10:00+01:00")
    incident_id = doc["data"]["incident"]["id"]
    listed = cli("incident", "list")
    assert listed.exit_code == 0 and "2026-12-03 09:00 UTC" in listed.stdout
    shown = cli("incident", "show", incident_id)
    assert shown.exit_code == 0 and "+00:00" not in shown.stdout
    rows = [line for line in shown.stdout.splitlines() if " open " in f" {line} "]
    rows += [line for line in shown.stdout.splitlines() if " notify " in f" {line} "]
    assert len(rows) == 2 and all(UTC_TIME.search(row) for row in rows), shown.stdout


def test_list_json_gives_each_incident_its_timeline_as_show_does(
    cli: Cli, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`list --json`: each incident keeps `entries` (the count) and has `timeline`, the same
    list `show --json` gives."""
    monkeypatch.setenv("MLSGW_INCIDENT_WEBHOOK", webhook.url)
    ids = [run(cli, *OPEN)[1]["data"]["incident"]["id"] for _ in range(2)]
    run(cli, "update", ids[0], "--note", "store quota exhausted")
    code, listed = run(cli, "list")
    assert code == 0
    for incident_id, listed_one in zip(ids, listed["data"]["incidents"], strict=True):
        shown = run(cli, "show", incident_id)[1]["data"]["timeline"]
        assert listed_one["id"] == incident_id
        assert listed_one["timeline"] == shown and listed_one["entries"] == len(shown)
    assert [e["event"] for e in listed["data"]["incidents"][0]["timeline"]] == [
        "open",
        "notify",
        "update",
        "notify",
    ]


@pytest.mark.parametrize("flag", ["--yes", "-y"])
def test_open_update_and_resolve_accept_yes_and_work_the_same(
    cli: Cli, webhook: Webhook, ledger_path: Path, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    """`--yes` (or `-y`) is accepted by the three notice commands (no terminal here) and
    changes nothing: each notice is posted and recorded as without it."""
    monkeypatch.setenv("MLSGW_INCIDENT_WEBHOOK", webhook.url)
    code, doc = run(cli, *OPEN, flag)
    assert code == 0, doc
    incident_id = doc["data"]["incident"]["id"]
    code, doc = run(cli, "update", incident_id, "--note", "found it", flag)
    assert code == 0, doc
    code, doc = run(cli, "resolve", incident_id, "--root-cause", "x", "--resolution", "y", flag)
    assert code == 0, doc
    assert len(webhook.posts) == 3
    assert [r["command"] for r in ledger_lines(ledger_path)] == [
        "incident open",
        "incident notify",
        "incident update",
        "incident notify",
        "incident resolve",
        "incident notify",
    ]


@pytest.mark.parametrize("command", ["open", "update", "resolve"])
def test_notice_commands_help_says_they_never_ask(
    cli: Cli, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The help of `--yes` says why it changes nothing: no cloud resource, no question."""
    monkeypatch.setenv("COLUMNS", "250")
    text = " ".join(cli("incident", command, "--help").stdout.split())
    assert "--yes" in text and "never ask for confirmation" in text
    assert "the webhook it would go to" in text


def test_dry_run_names_the_webhook_without_its_secret(
    cli: Cli, webhook: Webhook, ledger_path: Path
) -> None:
    """`open --dry-run` says where the notice would be posted (scheme and host only: the URL
    is the credential)."""
    code, doc = run(cli, *OPEN, "--webhook", webhook.url, "--dry-run")
    assert code == 0 and doc["status"] == "planned"
    host = webhook.url.split("/services/")[0]
    assert doc["data"]["webhook"] == f"{host}/…" and f"{host}/…" in doc["summary"]
    assert "secret" not in json.dumps(doc)
    assert webhook.posts == [] and not ledger_path.exists()


def test_dry_run_without_a_webhook_says_it_would_not_be_posted(cli: Cli, ledger_path: Path) -> None:
    """No webhook configured: the dry run says the notice would only be printed."""
    code, doc = run(cli, *OPEN, "--dry-run")
    assert code == 0 and doc["data"]["webhook"] is None
    assert "would not be posted" in doc["summary"] and not ledger_path.exists()


def test_update_and_resolve_dry_runs_post_and_record_nothing(
    cli: Cli, webhook: Webhook, ledger_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a real open, `update --dry-run` and `resolve --dry-run` print their notices and
    the webhook; nothing more is posted and the ledger is unchanged (still open)."""
    monkeypatch.setenv("MLSGW_INCIDENT_WEBHOOK", webhook.url)
    incident_id = run(cli, *OPEN)[1]["data"]["incident"]["id"]
    before = ledger_path.read_text()
    code, doc = run(cli, "update", incident_id, "--note", "found it", "--dry-run")
    assert code == 0 and doc["status"] == "planned"
    assert "Update: found it" in doc["notices"][0] and doc["data"]["webhook"]
    code, doc = run(
        cli, "resolve", incident_id, "--root-cause", "x", "--resolution", "y", "--dry-run"
    )
    assert code == 0 and doc["status"] == "planned"
    assert doc["notices"][0].startswith("✅ RESOLVED") and doc["data"]["webhook"]
    assert len(webhook.posts) == 1 and ledger_path.read_text() == before
    assert run(cli, "show", incident_id)[1]["data"]["incident"]["status"] == "investigating"


BAD_WEBHOOKS = [
    ("notaurl", "does not start with http:// or https://"),
    ("http://[::1", "is not a valid URL"),
    ("file:///etc/passwd", "has the scheme file://"),
    ("ftp://example.com/secret", "has the scheme ftp://"),
    ("https:///services/secret", "has no host"),
    ("https://example.com:99999/secret", "is not a valid URL"),
    ("https://example.com/a secret", "contains spaces or control characters"),
]


@pytest.mark.parametrize(("url", "problem"), BAD_WEBHOOKS)
@pytest.mark.parametrize("given", ["flag", "env", "config"])
def test_a_webhook_that_is_not_an_http_url_is_refused_before_anything_is_recorded(
    cli: Cli,
    ledger_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    problem: str,
    given: str,
) -> None:
    """--webhook, MLSGW_INCIDENT_WEBHOOK or [ops] incident_webhook: exit 3 naming where it
    was set and what is wrong, without repeating the URL (its token); no incident recorded
    (the ledger holds only the refusal, as for any refused action)."""
    extra: list[str] = []
    if given == "flag":
        extra, source = ["--webhook", url], "--webhook"
    elif given == "env":
        monkeypatch.setenv("MLSGW_INCIDENT_WEBHOOK", url)
        source = "env MLSGW_INCIDENT_WEBHOOK"
    else:
        config = tmp_path / "ops.toml"
        config.write_text(f"[ops]\nincident_webhook = {json.dumps(url)}\n")
        monkeypatch.setenv("MLSGW_CONFIG", str(config))
        source = f"[ops] in {config}"
    code, doc = run(cli, *OPEN, *extra)
    assert code == 3, doc
    assert doc["summary"].startswith(f"{source}: give an https:// (or http://) URL")
    assert problem in doc["summary"] and "secret" not in doc["summary"]
    assert [line["result"]["outcome"] for line in ledger_lines(ledger_path)] == ["refused"]  # type: ignore[index]
    assert run(cli, "list")[1]["data"]["incidents"] == []


def test_update_resolve_and_dry_runs_refuse_a_bad_webhook_and_record_nothing(
    cli: Cli, ledger_path: Path
) -> None:
    """The webhook is checked before the ledger is written by every notice command."""
    code, doc = run(cli, *OPEN)
    assert code == 0
    incident_id = doc["data"]["incident"]["id"]
    bad = ["--webhook", "file:///etc/passwd"]
    for args in (
        [*OPEN, *bad, "--dry-run"],
        ["update", incident_id, "--note", "n", *bad],
        ["resolve", incident_id, "--root-cause", "c", "--resolution", "r", *bad],
    ):
        code, doc = run(cli, *args)
        assert code == 3 and "has the scheme file://" in doc["summary"], doc
    outcomes = [line["result"]["outcome"] for line in ledger_lines(ledger_path)]  # type: ignore[index]
    assert outcomes == ["done", "refused", "refused"]  # a dry run records nothing
    code, doc = run(cli, "show", incident_id)
    assert [e["event"] for e in doc["data"]["timeline"]] == ["open"]


def test_the_sender_opens_no_scheme_but_http_and_https(tmp_path: Path) -> None:
    """Even with its URL changed after the check, the sender reads no file: not delivered."""
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    notifier = WebhookNotifier("https://hooks.example.com/x", timeout=5)
    notifier.url = secret.as_uri()
    delivery = notifier.send("notice")
    assert not delivery.ok and "unknown url type: file" in delivery.detail


def test_a_redirect_to_another_scheme_is_not_followed(tmp_path: Path) -> None:
    """A webhook answering 302 to ftp:// (urllib's default opener would fetch it): the
    notice is not delivered, and nothing but http(s) is opened."""

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"ftp://127.0.0.1:{closed_port}/secret")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    closed_port = int(closed_port_url().split(":")[2].split("/")[0])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        delivery = WebhookNotifier(url, timeout=5).send("notice")
    finally:
        server.shutdown()
        server.server_close()
    assert not delivery.ok and "unknown url type: ftp" in delivery.detail


def test_resolve_with_an_end_before_the_start_is_refused_naming_both_times(
    cli: Cli, ledger_path: Path
) -> None:
    """--end before the incident's start: exit 3 with both times, nothing resolved; an end
    at the start is accepted (zero duration)."""
    code, doc = run(cli, *OPEN, "--start", "2026-01-02T10:00Z")
    incident_id = doc["data"]["incident"]["id"]
    resolve = ["resolve", incident_id, "--root-cause", "c", "--resolution", "r"]
    code, doc = run(cli, *resolve, "--end", "2000-01-01T00:00Z")
    assert code == 3
    assert doc["summary"] == (
        f"--end (2000-01-01 00:00 UTC) is before {incident_id} started "
        "(2026-01-02 10:00 UTC): give an --end after the start"
    )
    assert run(cli, "show", incident_id)[1]["data"]["incident"]["status"] != "resolved"
    code, doc = run(cli, *resolve, "--end", "2026-01-02T10:00Z")
    assert code == 0 and "(0 min)" in doc["data"]["notice"]


def test_resolving_now_an_incident_started_in_the_future_asks_for_an_end(cli: Cli) -> None:
    """Without --end the end is now; before a (mistyped) future start it is refused too."""
    code, doc = run(cli, *OPEN, "--start", "2099-01-01T00:00Z")
    incident_id = doc["data"]["incident"]["id"]
    code, doc = run(cli, "resolve", incident_id, "--root-cause", "c", "--resolution", "r")
    assert code == 3 and doc["summary"].startswith("now (")
    assert f"is before {incident_id} started (2099-01-01 00:00 UTC)" in doc["summary"]
