"""How the command line writes its tables and progress (with rich): in colour, at the terminal's width, with live
progress on a terminal; as plain text that never wraps when written to a file or a pipe (`make demo > out.txt`, the
tests). rich's own rules decide which: a terminal, unless `NO_COLOR`, `FORCE_COLOR` or `TTY_COMPATIBLE` say otherwise.
Kept to the operator tools: the Lambda asset is built from requirements.txt, which does not hold rich."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TextIO

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

PLAIN_WIDTH = 10_000  # off a terminal, a line is as long as its text: nothing wraps
# what a line says happened, coloured on a terminal: a device in (green), refused (red), to be decided again (yellow)
WORD_STYLES = {
    r"\b(PROVISIONED|CONNECTED|ACTIVE)\b": "green",
    r"\b(REJECTED|REVOKED|DENIED|FAILED|REFUSED)\b|dead-lettered": "red",
    r"\b(HELD|RETRY|PENDING_ACTIVATION)\b": "yellow",
}


def console(stderr: bool = False, file: TextIO | None = None) -> Console:
    """A console on standard output (or standard error, or `file`): the terminal's width and colours on a terminal,
    plain text off one. Numbers and words are coloured only where asked (no highlighting guessed from the text)."""
    terminal = Console(stderr=stderr, file=file, highlight=False)
    if terminal.is_terminal:
        return terminal
    return Console(stderr=stderr, file=file, highlight=False, width=PLAIN_WIDTH, no_color=True)


# a `jitr doctor` finding's level, at the start of its line
LEVEL_STYLES = {r"^OK\b": "green", r"^WARN\b": "yellow", r"^FAIL\b": "bold red"}


def line_printer(file: TextIO, styles: Mapping[str, str] = WORD_STYLES) -> Callable[[str], None]:
    """Prints a line at a time on `file`, as it is; on a terminal with what happened coloured (`styles`: a regular
    expression to the style of what it matches)."""
    out = console(file=file)

    def say(line: str) -> None:
        if out.is_terminal:
            text = Text(line)
            for pattern, style in styles.items():
                text.highlight_regex(pattern, style)
            out.print(text, soft_wrap=True)
        else:
            print(line, file=file, flush=True)

    return say


def show(out: Console, *renderables: RenderableType) -> None:
    """Print `renderables` on `out`: as rich lays them out on a terminal; off one, as `plain` text."""
    if out.is_terminal:
        for renderable in renderables:
            out.print(renderable)
    else:
        out.file.write(plain(*renderables, width=out.width) + "\n")
        out.file.flush()


def plain(*renderables: RenderableType, width: int = PLAIN_WIDTH) -> str:
    """`renderables` as plain text: no colour, no line wrapped below `width`, no spaces a table pads lines with."""
    text = Console(width=width, no_color=True, highlight=False, force_terminal=False)
    with text.capture() as captured:
        for renderable in renderables:  # each on its own lines (print would join two texts with a space)
            text.print(renderable)
    return "\n".join(line.rstrip() for line in captured.get().splitlines())


def progress(label: str) -> Progress:
    """A live progress bar on standard error: `label`, the bar, done/total, the task's `status` field, elapsed time."""
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console(stderr=True),
    )
