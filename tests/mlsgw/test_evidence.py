"""Evidence directories: written once, with a manifest ``sha256sum -c`` accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mlsgw.errors import EvidenceError
from mlsgw.evidence import MANIFEST, json_lines, write_evidence


def test_the_manifest_checks_with_sha256sum(tmp_path: Path) -> None:
    """The manifest uses sha256sum's format, so the directory checks without mlsgw."""
    directory = tmp_path / "ev"
    evidence = write_evidence(directory, {"a.txt": b"alpha\n", "b.jsonl": json_lines([{"k": 1}])})
    assert set(evidence.files) == {"a.txt", "b.jsonl"}
    tool = shutil.which("sha256sum")
    assert tool is not None, "sha256sum (coreutils) is needed for this test"
    checked = subprocess.run([tool, "-c", MANIFEST], cwd=directory, capture_output=True)
    assert checked.returncode == 0, checked.stdout
    (directory / "a.txt").write_bytes(b"tampered\n")
    assert subprocess.run([tool, "-c", MANIFEST], cwd=directory, capture_output=True).returncode


def test_an_existing_directory_is_never_overwritten(tmp_path: Path) -> None:
    """Evidence is written once: an existing directory is an error, its files untouched."""
    directory = tmp_path / "ev"
    directory.mkdir()
    (directory / "a.txt").write_text("original")
    with pytest.raises(EvidenceError, match=str(directory)):
        write_evidence(directory, {"a.txt": b"new"})
    assert (directory / "a.txt").read_text() == "original"


def test_json_lines_are_stable_bytes() -> None:
    """Keys sorted, one object per line: the same entries hash the same."""
    assert json_lines([{"b": 1, "a": 2}, {}]) == b'{"a": 2, "b": 1}\n{}\n'
