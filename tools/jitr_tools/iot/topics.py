"""MQTT topics as AWS IoT reads them: a topic filter against a topic name, and the topic filter of a rule's SQL.

Topic filters (AWS IoT developer guide, "MQTT topics" and "FROM clause"): `+` matches exactly one level, `#` (last)
the level it stands on and every level below it, and a filter whose first level is a wildcard does not match a topic
that begins with `$` (MQTT 3.1.1, 4.7.2, which AWS IoT lists no difference from): `#` does not cover
`$aws/events/...`, while `$aws/events/certificates/registered/+` covers every CA's registered event.

Rule SQL (AWS IoT SQL reference): `[SET ...] SELECT <expressions> FROM '<topic filter>' [WHERE <condition>]`. The
topic filter is the single-quoted string after the top-level FROM: a FROM inside parentheses belongs to a nested
object query, and text inside quotes (`'...'` strings, `"..."` and backquoted names) is never a keyword.
"""

from __future__ import annotations

import re

REGISTERED_TOPIC = "$aws/events/certificates/registered/{ca_id}"  # AWS IoT's registered event of a CA's devices
_WORD = re.compile(r"\w+")
_QUOTES = "'\"`"
_OPENING, _CLOSING = "([{", ")]}"


class RuleSqlError(ValueError):
    """A rule's SQL has no topic filter this reader can find; the message says why."""


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether the MQTT topic filter matches the topic name, with `+` (one level) and `#` (the rest)."""
    wanted, actual = topic_filter.split("/"), topic.split("/")
    if topic.startswith("$") and wanted[0] in ("+", "#"):
        return False
    for i, part in enumerate(wanted):
        if part == "#":
            return True
        if i >= len(actual) or (part != "+" and part != actual[i]):
            return False
    return len(wanted) == len(actual)


def rule_topic(sql: str) -> str:
    """The topic filter in the FROM clause of an AWS IoT rule's SQL; raises `RuleSqlError` when it has none."""
    position = _top_level_keyword(sql, "FROM", 0)
    if position is None:
        raise RuleSqlError("no FROM clause")
    start = _skip_space(sql, position + len("FROM"))
    if start >= len(sql) or sql[start] != "'":
        raise RuleSqlError("FROM is not followed by a quoted topic")
    end = _quoted_end(sql, start)
    if end is None:
        raise RuleSqlError("the topic after FROM has no closing quote")
    rest = _skip_space(sql, end)
    if rest < len(sql) and _top_level_keyword(sql, "WHERE", rest) != rest:
        raise RuleSqlError(f"unexpected text after the FROM clause: {sql[rest : rest + 20]!r}")
    return re.sub(r"\\(.)", r"\1", sql[start + 1 : end - 1])


def _top_level_keyword(sql: str, keyword: str, start: int) -> int | None:
    """Where `keyword` (any case, a whole word) first stands outside quotes and brackets, from `start`."""
    depth, i = 0, start
    while i < len(sql):
        char = sql[i]
        if char in _QUOTES:
            end = _quoted_end(sql, i)
            if end is None:
                return None
            i = end
            continue
        word = _WORD.match(sql, i)
        if word:
            if depth == 0 and word.group().upper() == keyword:
                return i
            i = word.end()
            continue
        if char in _OPENING:
            depth += 1
        elif char in _CLOSING:
            depth = max(depth - 1, 0)
        i += 1
    return None


def _quoted_end(sql: str, start: int) -> int | None:
    """The index just past the quote that closes the one at `start` (a backslash escapes the next character)."""
    quote, i = sql[start], start + 1
    while i < len(sql):
        if sql[i] == "\\":
            i += 2
            continue
        if sql[i] == quote:
            return i + 1
        i += 1
    return None


def _skip_space(sql: str, i: int) -> int:
    while i < len(sql) and sql[i].isspace():
        i += 1
    return i
