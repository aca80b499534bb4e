"""`jitr policy test --policy FILE` answers a malformed policy document with one line on standard error and exit 2,
never a traceback (hypothesis generates the documents)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitr_tools.cli import EXIT_USAGE, main

VALID = {
    "Effect": "Allow",
    "Action": "iot:Publish",
    "Resource": "arn:aws:iot:*:*:topic/things/${iot:Connection.Thing.ThingName}/*",
    "Condition": {"StringEquals": {"iot:Connection.Thing.Attributes[zone]": "north"}},
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
not_a_string = st.none() | st.booleans() | st.integers() | st.dictionaries(st.text(max_size=4), json_values, max_size=2)
not_an_object = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.lists(json_values, max_size=2)


@st.composite
def malformed(draw: st.DrawFn) -> dict[str, Any]:
    """A valid one-statement document with one element of the wrong shape."""
    statement: dict[str, Any] = json.loads(json.dumps(VALID))
    where = draw(
        st.sampled_from(
            [
                "Statement",
                "statement",
                "Effect",
                "Action",
                "Resource",
                "both",
                "neither",
                "Condition",
                "operator",
                "value",
            ]
        )
    )
    document: dict[str, Any] = {"Version": "2012-10-17", "Statement": [statement]}
    if where == "Statement":
        document["Statement"] = draw(st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.just([]))
    elif where == "statement":
        document["Statement"] = [draw(not_an_object)]
    elif where == "Effect":
        statement["Effect"] = draw(json_values.filter(lambda v: v not in ("Allow", "Deny")))
    elif where in ("Action", "Resource"):
        statement[where] = draw(not_a_string | st.lists(not_a_string, min_size=1, max_size=2) | st.just([]))
    elif where == "both":
        statement["NotAction"] = "iot:Connect"
    elif where == "neither":
        del statement[draw(st.sampled_from(["Action", "Resource"]))]
    elif where == "Condition":
        statement["Condition"] = draw(not_an_object)
    elif where == "operator":
        statement["Condition"] = {draw(st.text(max_size=12)): draw(not_an_object | st.just({}))}
    else:
        bad = st.none() | st.dictionaries(st.text(max_size=4), json_values, max_size=2) | st.just([]) | st.just([None])
        statement["Condition"] = {"StringEquals": {draw(st.text(max_size=12)): draw(bad)}}
    return document


def _policy_test(document: Any, capsys: Any, *extra: str) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "policy.json"
        path.write_text(json.dumps(document))
        capsys.readouterr()
        code = main(["policy", "test", "--policy", str(path), "--client-id", "d-1", *extra])
    return code, capsys.readouterr().err.strip()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(document=malformed(), action=st.sampled_from(["connect", "publish", "subscribe", "receive"]))
def test_a_malformed_policy_is_one_line_and_exit_2(document: dict[str, Any], action: str, capsys: Any) -> None:
    code, err = _policy_test(document, capsys, "--action", action, "--topic", "things/d-1/t", "--thing", "d-1")
    assert code == EXIT_USAGE, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("jitr: policy policy.json"), err


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(document=json_values | st.fixed_dictionaries({"Statement": json_values}))
def test_any_json_document_gets_an_answer_or_one_line(document: Any, capsys: Any) -> None:
    code, err = _policy_test(document, capsys, "--action", "connect")
    assert code in (0, 1, EXIT_USAGE)
    assert "Traceback" not in err
    assert len(err.splitlines()) <= 1, err
