"""`JustInTimeRegistration` in a team's own stack: next to the team's queue, with cdk-nag's AwsSolutions gate on, from
the same configuration mapping (and the same checks and messages) as this repository's `jitr` context."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

from jitr_cdk.construct import OPT_IN_PARAMETER, JustInTimeRegistration
from jitr_cdk.stack import JitrStack
from jitr_config.model import ConfigError, load_config
from jitr_tools import pki
from jitr_tools.operating.doctor import OUTPUT_KEYS
from tests.support import REPO


def _consumer_app(outdir: Path) -> tuple[cdk.App, cdk.Stack]:
    """A team's app: its own stack with its own queue (cdk-nag clean: TLS only, a dead-letter queue)."""
    app = cdk.App(context={"aws:cdk:bundling-stacks": []}, outdir=str(outdir))
    stack = cdk.Stack(app, "Orders")
    dead_letters = sqs.Queue(stack, "OrderDeadLetters", enforce_ssl=True)
    sqs.Queue(
        stack,
        "Orders",
        enforce_ssl=True,
        dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=3, queue=dead_letters),
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app, stack


def _types(stack: cdk.Stack) -> Counter[str]:
    return Counter(resource["Type"] for resource in Template.from_stack(stack).to_json()["Resources"].values())


def test_the_construct_deploys_into_a_teams_stack_beside_its_queue_and_passes_cdk_nag(
    tmp_path: Path, issuing_ca: pki.Issued
) -> None:
    app, stack = _consumer_app(tmp_path)
    jitr = JustInTimeRegistration.from_settings(
        stack, "DeviceRegistration", {"caCertificates": [issuing_ca.pem], "alarmEmail": "iot-ops@example.com"}, REPO
    )
    app.synth()  # raises when cdk-nag reports a finding nobody acknowledged
    types = _types(stack)
    assert types["AWS::SQS::Queue"] == 2 + 2  # the team's two, and jitr's intake queue and its dead letters
    assert types["AWS::IoT::CACertificate"] == 1
    assert types["AWS::IoT::ProvisioningTemplate"] == 1
    assert types["AWS::IoT::TopicRule"] == 1
    assert types["AWS::Lambda::Function"] == 2  # the registration handler and the sweeper
    assert types["AWS::CloudWatch::Dashboard"] == 1
    assert jitr.handler.function.node.path.startswith("Orders/DeviceRegistration/")
    # the same resources as the stack this repository deploys for the same configuration
    repository = cdk.App(context={"aws:cdk:bundling-stacks": []}, outdir=str(tmp_path / "repository"))
    expected = _types(JitrStack(repository, "Jitr", config=jitr.config))
    assert types - expected == Counter({"AWS::SQS::Queue": 2, "AWS::SQS::QueuePolicy": 2})  # the team's
    assert not expected - types


def test_a_configuration_synth_refuses_is_refused_with_the_same_message(tmp_path: Path, issuing_ca: pki.Issued) -> None:
    settings: dict[str, Any] = {"caCertificates": [issuing_ca.pem], "alarmEmail": "not an address"}
    with pytest.raises(ConfigError) as by_synth:
        load_config(settings, REPO)
    _, stack = _consumer_app(tmp_path)
    with pytest.raises(ConfigError) as by_construct:
        JustInTimeRegistration.from_settings(stack, "DeviceRegistration", settings, REPO)
    assert str(by_construct.value) == str(by_synth.value) == "alarmEmail 'not an address' is not an e-mail address"
    with pytest.raises(ConfigError, match="caCertificates is empty"):  # no development CA unless asked for
        JustInTimeRegistration.from_settings(stack, "Registration", {}, REPO)


def test_the_development_ca_opt_in_keeps_its_parameter_name_in_a_teams_stack(tmp_path: Path) -> None:
    app, stack = _consumer_app(tmp_path)
    JustInTimeRegistration.from_settings(
        stack,
        "DeviceRegistration",
        {"developmentPki": str(tmp_path / ".dev-pki")},
        REPO,
        development_ca=pki.development_ca_pem,
    )
    app.synth()
    template = Template.from_stack(stack).to_json()
    assert OPT_IN_PARAMETER in template["Parameters"]  # what the rule's message and the note tell an operator to set
    messages = [a["AssertDescription"] for rule in template["Rules"].values() for a in rule["Assertions"]]
    assert any(f"--parameters {OPT_IN_PARAMETER}=yes" in message for message in messages)


def test_in_a_teams_stack_the_outputs_keep_the_keys_jitr_doctor_reads(tmp_path: Path, issuing_ca: pki.Issued) -> None:
    app, stack = _consumer_app(tmp_path)
    JustInTimeRegistration.from_settings(stack, "DeviceRegistration", {"caCertificates": [issuing_ca.pem]}, REPO)
    app.synth()
    outputs = set(Template.from_stack(stack).to_json()["Outputs"])
    assert set(OUTPUT_KEYS) <= outputs  # not DeviceRegistrationFunctionName1A2B3C4D
    assert {"DashboardName", "DecisionTableName", "DeadLetterQueueArn"} <= outputs
