"""Every command the documentation shows in a console block is one that runs: a `jitr` line is accepted by jitr's own
argument parser, and a `make` line names a target of the Makefile (make's dry run takes it). The quick starts are run
for real by tests/e2e/test_quick_start.py; the other pages' commands need an account, a device or a file of the
reader's, so they are held here as far as that goes without one: a renamed command or option fails this test."""

from __future__ import annotations

import contextlib
import io
import re
import shlex

import pytest

from jitr_tools.cli import _parser
from tests.support import REPO, make_dry_run

# fenced blocks a reader types from: console, shell, or unmarked
BLOCK = re.compile(r"^```(console|bash|sh|shell|)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PAGES = sorted([*(REPO / "docs").rglob("*.md"), REPO / "README.md"])
PROGRAMS = ("jitr", ".venv/bin/jitr", "make")


def shown_commands() -> dict[str, list[str]]:
    """Each command in the pages' blocks, by page and line: its words, as the shell splits them. A line such as
    `jitr serve: decided ...` is what a command printed, not a command."""
    commands: dict[str, list[str]] = {}
    for page in PAGES:
        for _, body in BLOCK.findall(page.read_text(encoding="utf-8")):
            for line in body.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                words = shlex.split(line, comments=True) if line.startswith(PROGRAMS) else []
                while words:  # `make synth && make deploy` is two commands
                    command, _, words = _until(words, "&&")
                    if len(command) > 1 and command[0] in PROGRAMS and not command[1].endswith(":"):
                        commands[f"{page.relative_to(REPO)}: {' '.join(command)}"] = command
    return commands


def _until(words: list[str], separator: str) -> tuple[list[str], str, list[str]]:
    if separator not in words:
        return words, "", []
    at = words.index(separator)
    return words[:at], separator, words[at + 1 :]


COMMANDS = shown_commands()


def test_the_pages_show_commands_of_each_program() -> None:
    """Guards the tests below against reading nothing."""
    programs = {words[0] for words in COMMANDS.values()}
    assert programs == {"jitr", ".venv/bin/jitr", "make"}
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("shown", sorted(name for name, words in COMMANDS.items() if words[0] != "make"))
def test_each_jitr_command_shown_is_accepted_by_the_command_line(shown: str) -> None:
    refused = io.StringIO()
    with contextlib.redirect_stderr(refused):
        try:
            _parser().parse_args(COMMANDS[shown][1:])
        except SystemExit:
            pytest.fail(f"{shown}\n{refused.getvalue()}")


@pytest.mark.parametrize("shown", sorted(name for name, words in COMMANDS.items() if words[0] == "make"))
def test_each_make_command_shown_names_a_target(shown: str) -> None:
    result = make_dry_run(*COMMANDS[shown][1:])
    assert result.returncode == 0, f"{shown}\n{result.stderr}"
