"""Decision events in the stack: the handler (and the revocation sync, which publishes what it revokes) may put events
on exactly the configured bus, the default bus unless the configuration names another; an alarm watches
`DecisionEventsFailed`; turned off, nothing publishes and no role may."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jitr_handlers import observability
from jitr_tools import pki
from tests.infra.support import Synthesized, as_list, flat, registration_function, statements_of, synthesize

DEFAULT_BUS = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"
FLEET_BUS = "arn:aws:events:eu-west-1:210987654321:event-bus/fleet-inventory"


def _publishing(synthesized: Synthesized, role: Any) -> dict[str, set[str]]:
    """Each events: action the role holds, with its resources."""
    granted: dict[str, set[str]] = {}
    for statement in statements_of(synthesized, synthesized.logical_id(role.node.default_child)):
        for action in as_list(statement["Action"]):
            if action.startswith("events:"):
                granted.setdefault(action, set()).update(flat(r) for r in as_list(statement["Resource"]))
    return granted


@pytest.fixture(scope="module")
def fleet_bus_stack(tmp_path_factory: pytest.TempPathFactory, issuing_ca: pki.Issued) -> Synthesized:
    """Events on a bus of another account (by ARN), and a CA with revocation (so the sync is deployed)."""
    return synthesize(
        {
            "caCertificates": [{"pem": issuing_ca.pem, "revocation": {"crl": ["https://pki.example.com/ca.crl"]}}],
            "decisionEvents": {"bus": FLEET_BUS},
        },
        tmp_path_factory.mktemp("fleet-bus"),
    )  # cdk-nag's gate passes, or this raises


def test_by_default_the_handler_may_publish_on_the_default_bus_only(jitr_stack: Synthesized) -> None:
    stack = jitr_stack.stack
    assert _publishing(jitr_stack, stack.handler.role) == {"events:PutEvents": {DEFAULT_BUS}}
    assert registration_function(jitr_stack)["Properties"]["Environment"]["Variables"]["JITR_EVENT_BUS"] == "default"
    assert _publishing(jitr_stack, stack.sweeper.role) == {}  # the sweeper decides nothing


def test_a_named_bus_is_the_only_one_the_handler_and_the_sync_may_publish_on(fleet_bus_stack: Synthesized) -> None:
    stack = fleet_bus_stack.stack
    assert stack.revocation_sync is not None
    for role in (stack.handler.role, stack.revocation_sync.role):
        assert _publishing(fleet_bus_stack, role) == {"events:PutEvents": {FLEET_BUS}}
    sync = fleet_bus_stack.json["Resources"][
        fleet_bus_stack.logical_id(stack.revocation_sync.function.node.default_child)
    ]
    assert sync["Properties"]["Environment"]["Variables"]["JITR_EVENT_BUS"] == FLEET_BUS


def test_an_alarm_watches_decision_events_that_failed(jitr_stack: Synthesized) -> None:
    alarm = jitr_stack.stack.monitoring.alarms["DecisionEventsFailed"]
    properties = jitr_stack.json["Resources"][jitr_stack.logical_id(alarm.node.default_child)]["Properties"]
    assert (properties["Namespace"], properties["MetricName"]) == (observability.NAMESPACE, "DecisionEventsFailed")
    assert properties["Dimensions"] == [{"Name": "service", "Value": jitr_stack.stack.handler.service}]
    assert (properties["Threshold"], properties["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert "Decisions stand" in properties["AlarmDescription"]


def test_turned_off_nothing_may_publish_and_nothing_is_watched(tmp_path: Path, issuing_ca: pki.Issued) -> None:
    quiet = synthesize({"caCertificates": [issuing_ca.pem], "decisionEvents": {"enabled": False}}, tmp_path)
    assert "events:PutEvents" not in json.dumps(quiet.json)
    assert "JITR_EVENT_BUS" not in registration_function(quiet)["Properties"]["Environment"]["Variables"]
    assert "DecisionEventsFailed" not in quiet.stack.monitoring.alarms
