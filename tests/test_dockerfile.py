"""The image build caches the dependency layer: a code change does not reinstall everything."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), " ".join(rest.split())))
    return out


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    """The first pip install needs only pyproject.toml; relay/ and mlsgw/ come after it, and
    installing mlsgw itself then skips the dependencies."""
    steps = instructions()
    first_install = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "pip install" in a)
    copied_before = " ".join(a for k, a in steps[:first_install] if k == "COPY")
    assert "pyproject.toml" in copied_before
    assert "relay" not in copied_before and "mlsgw" not in copied_before
    code_copy = next(i for i, (k, a) in enumerate(steps) if k == "COPY" and a.startswith("relay"))
    assert code_copy > first_install
    later_installs = [a for k, a in steps[code_copy:] if k == "RUN" and "pip install" in a]
    assert later_installs and all("--no-deps" in a for a in later_installs)


def test_the_dependency_layer_lists_every_dependency_of_pyproject() -> None:
    """scripts/pyproject-requirements prints the build requirements and the dependencies."""
    printed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "pyproject-requirements"), "pyproject.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert printed == [*project["build-system"]["requires"], *project["project"]["dependencies"]]


def test_the_image_ships_the_runbook_files_in_its_working_directory() -> None:
    """Installed as a package, the CLI looks for ``config/alerts.yaml`` and ``playbooks/`` in
    the working directory: the image copies both there, so ``mlsgw alerts`` and ``mlsgw
    playbook`` work inside it."""
    steps = instructions()
    workdir = next(a for k, a in steps if k == "WORKDIR")
    copies = {a.split()[0]: a.split()[1] for k, a in steps if k == "COPY"}
    assert workdir == "/app"
    assert copies.get("config") == "./config" and copies.get("playbooks") == "./playbooks"
    assert (ROOT / "config" / "alerts.yaml").is_file() and (ROOT / "playbooks").is_dir()
