"""AWS IoT policy evaluation for MQTT actions, with the device policy every provisioned device gets."""

from __future__ import annotations

from typing import Any

import pytest

from jitr.policy import account_arn, device_policy_document
from jitr_tools.authorization import Connection, Decision, Verdict, action_name, evaluate, resource_arn

REGION, ACCOUNT = "us-east-1", "123456789012"
DEVICE_POLICY = [("jitr-device", device_policy_document(account_arn(REGION, ACCOUNT)))]
ATTACHED = Connection("sensor-1", thing_name="sensor-1")


def check(
    action: str, name: str, connection: Connection = ATTACHED, policies: list[tuple[str, Any]] = DEVICE_POLICY
) -> Verdict:
    full = action_name(action)
    return evaluate(policies, full, resource_arn(full, name, REGION, ACCOUNT), connection)


@pytest.mark.parametrize(
    ("action", "name", "allowed"),
    [
        ("connect", "sensor-1", True),
        ("connect", "sensor-2", False),  # another thing's client id
        ("publish", "things/sensor-1/telemetry", True),
        ("publish", "things/sensor-2/telemetry", False),  # another thing's topic
        ("receive", "things/sensor-1/commands", True),
        ("subscribe", "things/sensor-1/#", True),  # the filter as the client sends it; `#` is an ordinary character
        ("subscribe", "things/sensor-2/#", False),
        ("subscribe", "things/+/telemetry", False),  # a wildcard filter over every thing
        ("publish", "$aws/things/sensor-1/shadow/update", True),
        ("publish", "$aws/things/sensor-2/shadow/update", False),
        ("publish", "things/sensor-1", False),  # the policy covers things/<name>/*, not the bare name
    ],
)
def test_the_device_policy_confines_a_device_to_its_own_client_id_and_topics(
    action: str, name: str, allowed: bool
) -> None:
    assert check(action, name).allowed is allowed


def test_without_an_attached_thing_the_thing_variables_resolve_to_nothing() -> None:
    lone = Connection("sensor-1")  # the certificate has no thing of that name attached
    verdict = check("connect", "sensor-1", lone)
    assert verdict.decision == Decision.IMPLICIT_DENY
    assert check("publish", "things/sensor-1/telemetry", lone).decision == Decision.IMPLICIT_DENY


def test_the_verdict_names_the_deciding_statement_and_an_explicit_deny_wins() -> None:
    assert check("publish", "things/sensor-1/telemetry").describe() == "ALLOWED by policy jitr-device, statement 1"
    deny = (
        "no-firmware",
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Deny", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/things/*/firmware"}
            ],
        },
    )
    verdict = check("publish", "things/sensor-1/firmware", policies=[*DEVICE_POLICY, deny])
    assert verdict.decision == Decision.EXPLICIT_DENY
    assert verdict.describe() == "DENIED (explicitly) by policy no-firmware, statement 0"


def test_wildcards_variables_escapes_and_certificate_subject_variables() -> None:
    policy = (
        "p",
        {
            "Statement": [
                {"Effect": "Allow", "Action": "iot:Pub*", "Resource": "arn:aws:iot:*:*:topic/site-?/${iot:ClientId}"},
                {
                    "Effect": "Allow",
                    "Action": ["iot:Subscribe"],
                    "Resource": "arn:aws:iot:*:*:topicfilter/org/${iot:Certificate.Subject.Organization}/${*}",
                },
            ]
        },
    )
    device = Connection("d1", certificate_fields={"AWS::IoT::Certificate::Organization": "acme"})
    assert check("publish", "site-7/d1", device, [policy]).allowed
    assert not check("publish", "site-77/d1", device, [policy]).allowed  # ? is one character
    assert check("subscribe", "org/acme/*", device, [policy]).allowed  # ${*} is a literal *
    assert not check("subscribe", "org/acme/x", device, [policy]).allowed
    assert not check("subscribe", "org/acme/*", Connection("d1"), [policy]).allowed  # no Organization: no match


def test_a_variable_value_matches_literally_never_as_a_wildcard() -> None:
    policy = (
        "p",
        {
            "Statement": [
                {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/${iot:ClientId}/x"}
            ]
        },
    )
    assert not check("publish", "anything/x", Connection("*"), [policy]).allowed
    assert check("publish", "*/x", Connection("*"), [policy]).allowed


def test_conditions_and_what_is_not_evaluated() -> None:
    policy = (
        "p",
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "iot:Connect",
                    "Resource": "*",
                    "Condition": {
                        "StringNotEquals": {"iot:ClientId": "blocked"},
                        "StringLike": {"iot:ClientId": "s-*"},
                    },
                },
                {
                    "Effect": "Allow",
                    "Action": "iot:Publish",
                    "Resource": "*",
                    "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020"}},
                },
            ]
        },
    )
    assert check("connect", "s-1", Connection("s-1"), [policy]).allowed
    assert not check("connect", "blocked", Connection("blocked"), [policy]).allowed
    verdict = check("publish", "t", Connection("s-1"), [policy])
    assert verdict.decision == Decision.IMPLICIT_DENY
    assert any("DateGreaterThan" in note for note in verdict.notes)


def test_an_unknown_action_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="connect, publish, subscribe or receive"):
        action_name("iot:DeleteThing")
