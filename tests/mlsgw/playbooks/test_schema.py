"""Playbook schema and the CLI catalog: every shipped playbook validates; errors name the
file, the step and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.core import TyperGroup

from mlsgw.cli import app
from mlsgw.playbooks.catalog import CatalogError, CommandCatalog
from mlsgw.playbooks.schema import PlaybookError, StepKind, load_all, parse_playbook

SHIPPED = Path(__file__).resolve().parents[3] / "playbooks"
EXPECTED = {
    "morning-health-check",
    "standard-deployment",
    "emergency-hotfix",
    "complete-service-outage",
    "data-corruption",
    "security-incident",
    "certificate-renewal-check",
    "websocket-connection-issues",
    "database-connection-problems",
    "high-memory-usage",
}


@pytest.fixture(scope="module")
def catalog() -> CommandCatalog:
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    return CommandCatalog(root)


def test_every_shipped_playbook_loads_and_validates(catalog: CommandCatalog) -> None:
    """The runbook's ten procedures are there, and each one validates against the CLI."""
    valid, invalid = load_all(SHIPPED, catalog)
    assert invalid == []
    assert {p.name for p in valid} == EXPECTED
    for playbook in valid:
        runs = [s for s in playbook.steps if s.kind is StepKind.RUN]
        assert runs, playbook.name
        assert all(s.command is not None for s in runs)


def test_the_deployment_playbook_has_pre_and_post_checklists(catalog: CommandCatalog) -> None:
    """Checklist items come before and after the deploy step."""
    valid, _ = load_all(SHIPPED, catalog)
    deployment = next(p for p in valid if p.name == "standard-deployment")
    kinds = [(s.kind, s.command.name if s.command else "") for s in deployment.steps]
    deploy = kinds.index((StepKind.RUN, "deploy"))
    assert StepKind.CHECK in {k for k, _ in kinds[:deploy]}
    assert StepKind.CHECK in {k for k, _ in kinds[deploy:]}


def parse(catalog: CommandCatalog, steps: list[Any], **top: Any) -> None:
    path = Path("/playbooks/sample.yaml")
    parse_playbook(path, {"name": "sample", "title": "Sample", "steps": steps, **top}, catalog)


@pytest.mark.parametrize(
    ("steps", "top", "message"),
    [
        ([{"run": "mlsgw nosuch"}], {}, "step 1: run: `mlsgw nosuch` is not a command"),
        (
            [{"note": "x"}, {"run": "mlsgw healthcheck --bogus"}],
            {},
            "step 2: run: `mlsgw healthcheck`: No such option: --bogus",
        ),
        ([{"run": "kubectl get pods"}], {}, "step 1: run: must start with `mlsgw`"),
        ([{"run": "mlsgw incident"}], {}, "step 1: run: `mlsgw incident` needs a command"),
        (
            [{"run": "mlsgw incident open --sev 1"}],
            {},
            "step 1: run: `mlsgw incident open`: Missing option",
        ),
        (
            [{"note": "x", "check": "y"}],
            {},
            "step 1: needs exactly one of run, check, ask, note (found: check, note)",
        ),
        (
            [{"name": "only a name"}],
            {},
            "step 1: needs exactly one of run, check, ask, note (found: none)",
        ),
        ([{"ask": "Which?"}], {}, "step 1: id: an ask step needs an id"),
        ([{"note": "x", "default": "y"}], {}, "step 1: default: only an ask step takes it"),
        (
            [{"note": "x", "continue_on_failure": "yes"}],
            {},
            "step 1: continue_on_failure: must be true or false",
        ),
        ([{"note": "x", "when": "now"}], {}, "step 1: when: unknown field"),
        (
            [{"run": "mlsgw deploy --image {image}"}],
            {},
            "step 1: run: uses {image}, which no earlier ask step answers",
        ),
        (["just text"], {}, "step 1: must be a mapping"),
        ([], {}, "steps: needs at least one step"),
        (
            [{"note": "x"}],
            {"name": "other"},
            "name: must be lower-case-with-dashes and equal the file name 'sample'",
        ),
        ([{"note": "x"}], {"owner": "me"}, "owner: unknown field"),
    ],
)
def test_a_malformed_playbook_names_the_file_step_and_field(
    catalog: CommandCatalog, steps: list[Any], top: dict[str, Any], message: str
) -> None:
    with pytest.raises(PlaybookError) as caught:
        parse(catalog, steps, **top)
    assert str(caught.value).startswith("/playbooks/sample.yaml: ")
    assert message in str(caught.value)


def test_an_answer_used_by_a_later_run_line_validates(catalog: CommandCatalog) -> None:
    parse(catalog, [{"ask": "Image?", "id": "image"}, {"run": "mlsgw deploy --image {image}"}])


def test_invalid_yaml_names_the_file(tmp_path: Path, catalog: CommandCatalog) -> None:
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    (tmp_path / "fine.yaml").write_text(
        yaml.safe_dump({"name": "fine", "title": "Fine", "steps": [{"note": "ok"}]})
    )
    valid, invalid = load_all(tmp_path, catalog)
    assert [p.name for p in valid] == ["fine"]
    assert str(invalid[0]).startswith(f"{tmp_path / 'broken.yaml'}: is not valid YAML")


def test_the_catalog_knows_nested_commands_and_their_flags(catalog: CommandCatalog) -> None:
    line = catalog.resolve("mlsgw incident open --sev 1 --title t --impact i")
    assert line.path == ("incident", "open") and line.takes("--dry-run")
    assert not catalog.resolve("mlsgw healthcheck").takes("--yes")
    assert "incident open" in catalog.names() and "healthcheck" in catalog.names()
    assert catalog.resolve("mlsgw backup").path == ("backup",)  # a group that is a command
    assert "backup" in catalog.names() and "backup list" in catalog.names()
    with pytest.raises(CatalogError):
        catalog.resolve("mlsgw 'unclosed")


def test_a_playbook_that_is_not_utf8_names_the_file(
    tmp_path: Path, catalog: CommandCatalog
) -> None:
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    valid, invalid = load_all(tmp_path, catalog)
    assert valid == []
    assert str(invalid[0]).startswith(f"{tmp_path / 'latin1.yaml'}: is not UTF-8 text")
