"""A rule's topic filter is read from its SQL's FROM clause, and matched as AWS IoT matches MQTT topic filters."""
# ruff: noqa: S608 (AWS IoT rule SQL built from constants: no database is queried)

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitr_tools.iot.topics import RuleSqlError, rule_topic, topic_matches

TOPIC = "$aws/events/certificates/registered/" + "0f" * 32


@pytest.mark.parametrize(
    ("sql", "topic"),
    [
        (f"SELECT * FROM '{TOPIC}'", TOPIC),
        (f"select * from '{TOPIC}'", TOPIC),
        (f"SELECT *\nFROM\t'{TOPIC}'   ", TOPIC),
        (f"SELECT * FROM '{TOPIC}' WHERE certificateStatus = 'PENDING_ACTIVATION'", TOPIC),
        (f"SELECT 'a FROM b' AS c FROM '{TOPIC}'", TOPIC),
        (f"SELECT \"FROM\" AS c FROM '{TOPIC}'", TOPIC),
        (f"SELECT `from` FROM '{TOPIC}'", TOPIC),
        (f"SELECT (SELECT VALUE v FROM e WHERE v > 0) AS w FROM '{TOPIC}'", TOPIC),
        (f"SELECT fromage, wherever FROM '{TOPIC}'", TOPIC),
        ("SELECT * FROM 'it\\'s/+'", "it's/+"),
        ("SELECT * FROM 'a/#' WHERE topic() = '" + TOPIC + "'", "a/#"),
    ],
)
def test_the_topic_is_the_quoted_filter_after_the_top_level_from(sql: str, topic: str) -> None:
    assert rule_topic(sql) == topic


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT *", "no FROM clause"),
        ("", "no FROM clause"),
        (f"SELECT '{TOPIC}' AS t", "no FROM clause"),
        ("SELECT * FROM topic", "not followed by a quoted topic"),
        ('SELECT * FROM "a/b"', "not followed by a quoted topic"),
        ("SELECT * FROM 'a/b", "no closing quote"),
        ("SELECT * FROM 'a/b' 'c'", "unexpected text"),
        ("SELECT * FROM 'a/b' ORDER BY x", "unexpected text"),
        ("SELECT (x FROM 'a/b')", "no FROM clause"),
    ],
)
def test_sql_without_a_readable_from_clause_is_a_typed_error(sql: str, reason: str) -> None:
    with pytest.raises(RuleSqlError, match=reason):
        rule_topic(sql)


@given(st.text())
def test_any_text_gives_a_topic_or_a_typed_error(sql: str) -> None:
    with contextlib.suppress(RuleSqlError):
        assert isinstance(rule_topic(sql), str)


@pytest.mark.parametrize(
    ("topic_filter", "matches"),
    [
        (TOPIC, True),
        ("$aws/events/certificates/registered/+", True),
        ("$aws/events/certificates/#", True),
        ("$aws/events/certificates/registered/" + "0f" * 32 + "/#", True),  # '#' also matches its parent level
        ("$aws/events/certificates/registered", False),
        ("$aws/events/certificates/registered/+/+", False),
        ("$aws/events/certificates/registered/" + "ab" * 32, False),
        ("#", False),  # a leading wildcard never matches a $ topic
        ("+/events/certificates/registered/+", False),
    ],
)
def test_topic_filters_match_as_aws_iot_matches_them(topic_filter: str, matches: bool) -> None:
    assert topic_matches(topic_filter, TOPIC) is matches


def test_a_leading_wildcard_matches_other_topics() -> None:
    assert topic_matches("#", "devices/sensor-1/data")
    assert topic_matches("+/sensor-1/data", "devices/sensor-1/data")
