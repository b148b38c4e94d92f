"""Reports fit an 80-column terminal and keep what matters: image tags and digests, times
with their zone, plan lines wrapped."""

from __future__ import annotations

import pytest

from mlsgw.output import short_image
from tests.mlsgw.conftest import PROJECT, REGION, SERVICE, Cli
from tests.stand_ins.google import GoogleStandIn

REGISTRY = "europe-west1-docker.pkg.dev/demo-proj/mlsgw-images/mlsgw"
DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.fixture
def eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich sizes the report from COLUMNS when stdout is not a terminal."""
    monkeypatch.setenv("COLUMNS", "80")


def report_body(lines: list[str]) -> list[str]:
    """Every line but the verdict, which stays one line whatever its length (it is grepped)."""
    return [line for line in lines if not line.startswith(("PLANNED —", "DONE —", "FAILED —"))]


def table_rows(lines: list[str]) -> list[dict[str, str]]:
    """The body rows of the Rich table in ``lines``, each cell's wrapped lines joined."""
    header = next(i for i, line in enumerate(lines) if line.startswith("┃"))
    columns = [c.strip() for c in lines[header].strip("┃").split("┃")]
    rows: list[list[list[str]]] = []
    for line in lines[header + 2 :]:
        if not line.startswith("│"):
            break
        cells = [c.strip() for c in line.strip("│").split("│")]
        if cells[0]:
            rows.append([[c] for c in cells])
        else:
            for parts, cell in zip(rows[-1], cells, strict=True):
                parts.append(cell)
    joined = []
    for row in rows:
        cells = [
            "".join(p) if n == "image" else " ".join(p) for n, p in zip(columns, row, strict=True)
        ]
        joined.append({n: c.strip() for n, c in zip(columns, cells, strict=True)})
    return joined


def test_short_image_keeps_the_tag_or_the_digest() -> None:
    """The registry path goes; the name with its tag, or the digest's start, stays."""
    assert short_image(f"{REGISTRY}:1.4.2") == "…/mlsgw:1.4.2"
    assert short_image(f"{REGISTRY}@{DIGEST}") == "…/mlsgw@sha256:0123456789ab"
    assert short_image("mlsgw:dev") == "mlsgw:dev"


def test_rollback_table_at_80_columns_shows_each_image_tag_and_the_zone(
    cli: Cli, google: GoogleStandIn, target_args: list[str], eighty_columns: None
) -> None:
    """Every row keeps its distinguishing end (not `europe-west1-d…` in every row), created
    times say UTC, and no line is wider than the terminal."""
    images = [f"{REGISTRY}:1.4.1", f"{REGISTRY}@{DIGEST}", f"{REGISTRY}:1.4.3"]
    google.run.add_service(PROJECT, REGION, SERVICE, images)
    result = cli("rollback", *target_args, "--dry-run")
    assert result.exit_code == 0, result.stdout
    lines = result.stdout.splitlines()
    assert max(len(line) for line in report_body(lines)) <= 80, result.stdout
    rows = table_rows(lines)
    assert [row["image"] for row in rows] == [
        "…/mlsgw:1.4.3",
        "…/mlsgw@sha256:0123456789ab",
        "…/mlsgw:1.4.1",
    ]
    assert all(row["created"].endswith(" UTC") for row in rows)


def test_plan_lines_wrap_at_80_columns(
    cli: Cli, google: GoogleStandIn, target_args: list[str], eighty_columns: None
) -> None:
    """A long plan (a new service's settings) wraps instead of running past the terminal."""
    google.run.add_project(PROJECT)
    image = f"{REGISTRY}:1.4.2-with-a-rather-long-build-tag-20261201"
    result = cli("deploy", "--image", image, "--create", *target_args, "--dry-run")
    assert result.exit_code == 0, result.stdout
    assert max(len(line) for line in report_body(result.stdout.splitlines())) <= 80, result.stdout
    assert "request timeout: 3600 s" in result.stdout
    assert image in "".join(line.strip() for line in result.stdout.splitlines())  # folded, whole
