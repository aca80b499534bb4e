"""The command line's tables: plain, unwrapped text off a terminal (a file, a pipe, `make demo > out.txt`), colour on
one, the same words and numbers in both."""

import io
import re

import pytest

from jitr_tools import terminal
from jitr_tools.rehearsing.simulate import Result, report

REASONS = {f"REASON_NUMBER_{n}": n for n in range(1, 9)}  # a rejected line far longer than 80 columns
ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def result() -> Result:
    return Result(
        devices=60,
        provisioned=24,
        rejected=sum(REASONS.values()),
        rejected_by_reason=REASONS,
        refused_at_connect=0,
        lost=1,
        lost_devices=["sensor-0007: status PENDING_ACTIVATION, decisions [], events given up on 5"],
        unexpected=[],
        events=90,
        duplicates_absorbed=30,
        register_calls=24,
        throttles=0,
        repeat_provisions=0,
        dead_letters=5,
        invocations=12,
        invocation_errors=0,
        dropped=0,
        wall_s=3.0,
        drain_s=2.5,
        throughput_per_s=10.0,
        quota=20,
        concurrency=10,
        wiring="queue",
    )


@pytest.fixture
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_terminal")
def test_off_a_terminal_the_summary_is_plain_one_line_per_count(capsys: pytest.CaptureFixture[str]) -> None:
    # When the summary is written to standard output that is not a terminal (pytest captures it)
    terminal.show(terminal.console(), *report(result()))

    # Then no escape codes, no line wrapped at 80 columns nor padded with spaces, the columns aligned
    out = capsys.readouterr().out
    assert "\x1b" not in out
    lines = out.splitlines()
    assert lines[2] == "rejected             36  (" + ", ".join(f"{k} {v}" for k, v in REASONS.items()) + ")"
    assert len(lines[2]) > 80
    assert lines[-1] == "LOST sensor-0007: status PENDING_ACTIVATION, decisions [], events given up on 5"
    assert all(line == line.rstrip() for line in lines)


@pytest.mark.usefixtures("no_terminal")
def test_on_a_terminal_the_summary_is_coloured_with_the_same_words(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a terminal (FORCE_COLOR makes rich treat standard output as one), wide enough for every line
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "300")

    # When the summary is shown
    out = terminal.console()
    terminal.show(out, *report(result()))

    # Then it is coloured (the lost count and the dead letters in red), and reads as the plain text does
    coloured = capsys.readouterr().out
    assert out.is_terminal
    assert "\x1b[31m1\x1b[0m" in coloured
    assert "\x1b[31m5\x1b[0m" in coloured
    assert [line.rstrip() for line in ESCAPE.sub("", coloured).splitlines()] == terminal.plain(
        *report(result())
    ).splitlines()


@pytest.mark.usefixtures("no_terminal")
def test_serve_lines_are_printed_as_they_are_off_a_terminal() -> None:
    # Given jitr serve's lines written to a file (not a terminal)
    written = io.StringIO()
    say = terminal.line_printer(written)

    # When it says a decision and its closing summary
    say("HANDLER certificate 3b0e0fd2bb5c: PROVISIONED as thing sensor-0001")
    say("jitr serve: decided 2 certificates this run (PROVISIONED 1, REJECTED 1)")

    # Then the file holds them word for word, nothing added
    assert written.getvalue() == (
        "HANDLER certificate 3b0e0fd2bb5c: PROVISIONED as thing sensor-0001\n"
        "jitr serve: decided 2 certificates this run (PROVISIONED 1, REJECTED 1)\n"
    )


@pytest.mark.usefixtures("no_terminal")
def test_serve_lines_on_a_terminal_colour_what_happened(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a terminal (FORCE_COLOR) narrower than the line
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "40")
    written = io.StringIO()

    # When a line says a device was provisioned and another rejected
    terminal.line_printer(written)("HANDLER certificate 3b0e0fd2bb5c: PROVISIONED; another REJECTED WEAK_KEY")

    # Then the outcomes are coloured (green, red), and the line is not broken at the terminal's width
    assert "\x1b[32mPROVISIONED\x1b[0m" in written.getvalue()
    assert "\x1b[31mREJECTED\x1b[0m" in written.getvalue()
    assert (
        ESCAPE.sub("", written.getvalue())
        == "HANDLER certificate 3b0e0fd2bb5c: PROVISIONED; another REJECTED WEAK_KEY\n"
    )


@pytest.mark.usefixtures("no_terminal")
def test_doctor_lines_on_a_terminal_colour_their_level_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    written = io.StringIO()
    say = terminal.line_printer(written, terminal.LEVEL_STYLES)
    for line in ("OK   queue: 0 messages", "WARN template: no OK here", "FAIL function: not found -> deploy"):
        say(line)
    lines = written.getvalue().splitlines()
    assert lines[0].startswith("\x1b[32mOK\x1b[0m")
    assert lines[1].startswith("\x1b[33mWARN\x1b[0m")
    assert "\x1b[" not in lines[1][len("\x1b[33mWARN\x1b[0m") :]  # the word OK later in a line is not a level
    assert lines[2].startswith("\x1b[1;31mFAIL\x1b[0m")
    assert [ESCAPE.sub("", line) for line in lines] == [
        "OK   queue: 0 messages",
        "WARN template: no OK here",
        "FAIL function: not found -> deploy",
    ]
