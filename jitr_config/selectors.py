"""Synth-time checks of product selectors: that no certificate can match two products, and that every selector can
match some certificate. A selector maps subject attributes to regular expressions matched in full (see
`jitr.products`); each is read as a finite automaton (interegular), so overlaps are decided, not sampled.

Two selectors on one CA are disjoint exactly when some attribute both read has patterns with no value in common: an
attribute only one reads, or neither, can take any value, so it separates nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import interegular
from interegular.fsm import FSM


class SelectorProblem(ValueError):
    """A selector the synth refuses; the message names the attribute."""


@cache
def _language(pattern: str) -> FSM:
    # matched in full, a leading ^ and a trailing $ say nothing more (interegular does not read anchors)
    unanchored = pattern.removeprefix("^")
    if unanchored.endswith("$") and not unanchored.endswith("\\$"):
        unanchored = unanchored[:-1]
    try:
        return interegular.parse_pattern(unanchored).to_fsm()
    except Exception as exc:  # interegular raises its own kinds for syntax it cannot turn into an automaton
        raise SelectorProblem(
            f"pattern {pattern!r} cannot be checked for overlaps ({type(exc).__name__}); use plain regular"
            " expression syntax (no lookarounds, backreferences or flags)"
        ) from None


def matches_nothing(pattern: str) -> bool:
    """Whether no value at all matches `pattern` in full."""
    return bool(_language(pattern).empty())  # type: ignore[no-untyped-call]


def disjoint(first: str, second: str) -> bool:
    """Whether no value matches both patterns in full."""
    both = _language(first).intersection(_language(second))  # type: ignore[no-untyped-call]
    return bool(both.empty())


def separating_attribute(first: Mapping[str, str], second: Mapping[str, str]) -> str | None:
    """An attribute whose patterns keep the two selectors apart, or None: then one certificate can match both."""
    for attribute in sorted(first.keys() & second.keys()):
        if disjoint(first[attribute], second[attribute]):
            return attribute
    return None
