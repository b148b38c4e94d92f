"""An API endpoint that answers 200 with something that is not JSON (a proxy's HTML page, a
wrong ``--endpoint``): actions fail with one line naming the endpoint, checks say UNKNOWN;
no traceback, and never "cannot reach the API" (it was reached)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlsgw import errors
from mlsgw.gcp.clients import Cloud
from mlsgw.target import Target
from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli

NOT_JSON = b"<html>not json"
ANSWER = "answered something that is not its JSON"


class _NotJson(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(NOT_JSON)))
        self.end_headers()
        self.wfile.write(NOT_JSON)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def not_json() -> Iterator[str]:
    """The URL of a loopback server (free port) answering every request 200 with HTML."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotJson)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def target_of(url: str) -> list[str]:
    return ["--project", PROJECT, "--region", REGION, "--service", SERVICE, "--endpoint", url]


def test_an_action_against_an_api_answering_html_fails_with_one_json_document(
    cli: Cli, not_json: str
) -> None:
    """rollback: exit 1 (failed), one JSON document whose summary names the endpoint and
    what was being done."""
    result = cli("rollback", *target_of(not_json), "--yes", "--json", "--timeout", "5")
    assert result.exit_code == 1, result.stdout
    document = json.loads(result.stdout)
    assert document["status"] != "ok"
    assert document["summary"].startswith(
        f"the API at {not_json} {ANSWER} while trying to read Cloud Run service "
    )


def test_a_backup_list_against_an_api_answering_html_fails_with_one_json_document(
    cli: Cli, not_json: str
) -> None:
    """backup list: exit 1, one JSON document, the parse error named, nothing 'unreachable'."""
    result = cli("backup", "list", *target_of(not_json), "--json", "--timeout", "5")
    assert result.exit_code == 1, result.stdout
    summary = json.loads(result.stdout)["summary"]
    assert ANSWER in summary and "cannot reach" not in summary


def test_checks_against_an_api_answering_html_are_unknown_with_the_reason(
    cli: Cli, not_json: str
) -> None:
    """healthcheck: every cloud check that ran is UNKNOWN and says the answer was not JSON;
    none says ParseError or that the API could not be reached."""
    result = cli("healthcheck", *target_of(not_json), "--json", "--timeout", "5")
    assert result.exit_code == 3, result.stdout
    checks = [c for c in json.loads(result.stdout)["checks"] if c["status"] != "skipped"]
    assert checks
    for check in checks:
        assert check["status"] == "unknown", check
        assert ANSWER in check["summary"], check
        assert "ParseError" not in check["summary"] and "cannot reach" not in check["summary"]
    assert any(f"the API at {not_json} {ANSWER}" in c["summary"] for c in checks)


def test_logs_and_objects_answering_html_are_cloud_errors_not_unavailable(not_json: str) -> None:
    """The requests-based clients (Logging, Storage) raise a JSON decode error that is also a
    RequestException: it is a cloud error, not an unreachable API."""
    cloud = Cloud(Target(project=PROJECT, endpoint=not_json, timeout=5.0))
    with pytest.raises(errors.CloudError, match=ANSWER) as logs:
        cloud.logs().list_entries(PROJECT, "", 10)
    with pytest.raises(errors.CloudError, match=f"the API at {not_json} {ANSWER}") as objects:
        cloud.objects().list_objects("bucket")
    assert not isinstance(logs.value, errors.Unavailable)
    assert not isinstance(objects.value, errors.Unavailable)
