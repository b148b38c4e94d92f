"""CI runs the README's test command, word for word: what a new engineer types is what CI
proves."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_test_command() -> str:
    """The one command in the README's "Run the tests" code block."""
    section = ROOT.joinpath("README.md").read_text().split("## Run the tests", 1)[1]
    match = re.search(r"```sh\n(.+?)\n```", section, re.DOTALL)
    assert match is not None, "the README's 'Run the tests' section has no sh code block"
    lines = [line for line in match.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one command, got {lines}"
    return lines[0].strip()


def test_ci_runs_the_readmes_test_command_word_for_word() -> None:
    command = readme_test_command()
    ci_lines = [line.strip() for line in ROOT.joinpath(".ci/run").read_text().splitlines()]
    assert command in ci_lines
