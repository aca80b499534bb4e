"""`jitr doctor` against a deployed account: the embedded IoT, with moto's SQS, Lambda and CloudFormation."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.intake import rule_sql
from jitr_tools.cli import main
from tests.integration.support import TEMPLATE_NAME, Fleet

REGION = "us-east-1"


@pytest.fixture
def deployed(fleet: Fleet) -> dict[str, str]:
    """What `cdk deploy` leaves, and the outputs it writes: the CA, template and policy (the fleet fixture), the
    queues, one topic rule, the function and its event source mapping."""
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="jitr-dlq")["QueueUrl"]
    queue = sqs.create_queue(QueueName="jitr-intake")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    fleet.account.client.create_topic_rule(
        ruleName="JitrRegistered0",
        topicRulePayload={
            "sql": rule_sql(fleet.ca_id),  # the stack's own
            "awsIotSqlVersion": "2016-03-23",
            "ruleDisabled": False,
            "actions": [
                {"sqs": {"queueUrl": queue, "roleArn": "arn:aws:iam::123456789012:role/rule", "useBase64": False}}
            ],
        },
    )
    role = boto3.client("iam", region_name=REGION).create_role(RoleName="h", AssumeRolePolicyDocument="{}")["Role"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    functions = boto3.client("lambda", region_name=REGION)
    functions.create_function(
        FunctionName="jitr-registration",
        Runtime="python3.12",
        Role=role["Arn"],
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )
    mapping = functions.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName="jitr-registration")
    return {
        "CaCertificateIds": fleet.ca_id,
        "TemplateName": TEMPLATE_NAME,
        "DevicePolicyName": "jitr-device",
        "FunctionName": "jitr-registration",
        "QueueUrl": queue,
        "DeadLetterQueueUrl": dlq,
        "RuleNames": "JitrRegistered0",
        "EventSourceMappingId": mapping["UUID"],
    }


def _doctor(
    tmp_path: Path, outputs: dict[str, str], capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, Any]:
    path = tmp_path / "cdk-outputs.json"
    path.write_text(json.dumps({"Jitr": outputs}))
    code = main(["doctor", "--outputs", str(path), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_a_healthy_deployment_is_all_ok(
    tmp_path: Path, deployed: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _doctor(tmp_path, deployed, capsys)
    assert code == 0, report
    assert report["healthy"] is True
    levels = {f["subject"]: f["level"] for f in report["findings"]}
    assert set(levels.values()) == {"OK"}
    subjects = " ".join(levels)
    for expected in (
        "CA ",
        "template jitr-device",
        "policy jitr-device",
        "rule JitrRegistered0",
        "event source mapping",
        "dead-letter queue",
        "pending under CA",
    ):
        assert expected in subjects


def test_every_problem_is_one_line_with_what_to_do_and_the_exit_code_says_so(
    tmp_path: Path, deployed: dict[str, str], fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    iot = fleet.account.client
    iot.update_ca_certificate(certificateId=fleet.ca_id, newAutoRegistrationStatus="DISABLE")
    iot.disable_topic_rule(ruleName="JitrRegistered0")
    boto3.client("sqs", region_name=REGION).send_message(QueueUrl=deployed["DeadLetterQueueUrl"], MessageBody="{}")
    iot.delete_policy(policyName="jitr-device")
    fleet.account.iot.register_pending(fleet.device("stuck-1").pem, fleet.ca_id)

    code, report = _doctor(tmp_path, deployed, capsys, "--pending-minutes", "0")

    assert code == 1
    failing = {f["subject"]: f for f in report["findings"] if f["level"] == "FAIL"}
    assert set(failing) == {
        f"CA {fleet.ca_id[:12]}",
        "policy jitr-device",
        "rule JitrRegistered0",
        "dead-letter queue",
    }
    assert all(f["action"] for f in failing.values())
    (pending,) = [f for f in report["findings"] if f["subject"].startswith("pending")]
    assert pending["level"] == "WARN"
    assert "jitr explain" in pending["action"]
    # the text form: one line per finding
    path = tmp_path / "cdk-outputs.json"
    assert main(["doctor", "--outputs", str(path), "--pending-minutes", "0"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(report["findings"])
    assert any(line.startswith("FAIL rule JitrRegistered0: disabled") for line in lines)


def test_the_stack_by_name_reads_its_outputs_from_cloudformation(
    deployed: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    template = {
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in deployed.items()},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName="Jitr", TemplateBody=json.dumps(template))
    assert main(["doctor", "--stack", "Jitr"]) == 0
    assert "OK   rule JitrRegistered0" in capsys.readouterr().out


def test_without_a_stack_or_outputs_it_says_what_to_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 2
    assert "--stack NAME" in capsys.readouterr().err


def test_an_outputs_file_of_several_stacks_needs_a_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cdk-outputs.json"
    path.write_text(json.dumps({"JitrA": {}, "JitrB": {}}))
    assert main(["doctor", "--outputs", str(path)]) == 2
    assert "name one with --stack" in capsys.readouterr().err


def test_the_jitp_trap_is_a_failure_in_jitr_mode(
    tmp_path: Path, deployed: dict[str, str], fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given someone attached a template to the CA by hand: AWS now provisions its devices without jitr's checks
    fleet.account.client.update_ca_certificate(
        certificateId=fleet.ca_id,
        registrationConfig={"templateName": TEMPLATE_NAME, "roleArn": "arn:aws:iam::123456789012:role/p"},
    )
    code, report = _doctor(tmp_path, deployed, capsys)
    assert code == 1
    (trap,) = [f for f in report["findings"] if "registrationConfig" in f["detail"]]
    assert trap["level"] == "FAIL"
    assert "jitr never decides" in trap["detail"]
