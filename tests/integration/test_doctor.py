"""`jitr doctor` against a deployed account: the embedded IoT, with moto's SQS, Lambda and CloudFormation."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jitr.settings import Settings
from jitr_cdk.intake import rule_sql
from jitr_tools import pki
from jitr_tools.cli import main
from jitr_tools.pki.crl_server import CrlServer
from jitr_tools.rehearsing.rehearsal import create_decision_table
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
        Environment={"Variables": _stack_environment()},
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


def _stack_environment(**settings: Any) -> dict[str, str]:
    """The function's environment as the stack writes it (jitr_cdk.handler: `Settings.to_environment()`)."""
    return {"POWERTOOLS_SERVICE_NAME": "Jitr", **Settings(template_name=TEMPLATE_NAME, **settings).to_environment()}


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


# -- the template, rendered as the deployed function renders it ---

SITE_TEMPLATE = {
    "Parameters": {
        "AWS::IoT::Certificate::CommonName": {"Type": "String"},
        "AWS::IoT::Certificate::Id": {"Type": "String"},
        "Site": {"Type": "String"},  # no Default: only the stack's extraParameters give it
    },
    "Resources": {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {
                "ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"},
                "ThingTypeName": {"Fn::Join": ["-", [{"Ref": "Site"}, "sensor"]]},
                "ThingGroups": [{"Ref": "Site"}],
                "BillingGroup": {"Fn::Join": ["-", [{"Ref": "Site"}, "billing"]]},
            },
        },
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
        },
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "jitr-device"}},
    },
}


def _store_template(fleet: Fleet, body: dict[str, Any]) -> None:
    fleet.account.client.delete_provisioning_template(templateName=TEMPLATE_NAME)
    fleet.account.client.create_provisioning_template(
        templateName=TEMPLATE_NAME,
        templateBody=json.dumps(body),
        provisioningRoleArn="arn:aws:iam::123456789012:role/jitr-provisioning",
        enabled=True,
    )


def _deploy_settings(**settings: Any) -> None:
    boto3.client("lambda", region_name=REGION).update_function_configuration(
        FunctionName="jitr-registration", Environment={"Variables": _stack_environment(**settings)}
    )


def _levels(report: dict[str, Any]) -> dict[str, str]:
    return {f["subject"]: f["level"] for f in report["findings"]}


def test_the_groups_and_type_the_template_names_with_the_stacks_extra_parameters_must_exist(
    tmp_path: Path, deployed: dict[str, str], fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a template whose group, type and billing group come from extraParameters, deployed with Site=plant7
    _store_template(fleet, SITE_TEMPLATE)
    _deploy_settings(extra_parameters={"Site": "plant7"})

    # When none of them exists, every RegisterThing would fail: doctor names each
    code, report = _doctor(tmp_path, deployed, capsys)
    assert code == 1
    levels = _levels(report)
    assert levels["thing group plant7"] == "FAIL"
    assert levels["thing type plant7-sensor"] == "FAIL"
    assert levels["billing group plant7-billing"] == "FAIL"
    (template,) = [f for f in report["findings"] if f["subject"] == f"template {TEMPLATE_NAME}"]
    assert template["level"] == "OK"
    assert "extraParameters (Site)" in template["detail"]

    # Then once they exist, the deployment is healthy
    iot = fleet.account.client
    iot.create_thing_group(thingGroupName="plant7")
    iot.create_thing_type(thingTypeName="plant7-sensor")
    iot.create_billing_group(billingGroupName="plant7-billing")
    code, report = _doctor(tmp_path, deployed, capsys)
    assert code == 0, report
    levels = _levels(report)
    assert {levels[s] for s in ("thing group plant7", "thing type plant7-sensor", "billing group plant7-billing")} == {
        "OK"
    }


def test_a_template_that_does_not_render_with_the_deployed_parameters_is_a_failure(
    tmp_path: Path, deployed: dict[str, str], fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the template needs Site, and the deployed function's extraParameters do not give it
    _store_template(fleet, SITE_TEMPLATE)

    code, report = _doctor(tmp_path, deployed, capsys)

    assert code == 1
    assert report["healthy"] is False
    (template,) = [f for f in report["findings"] if f["subject"] == f"template {TEMPLATE_NAME}"]
    assert template["level"] == "FAIL"
    assert "does not render" in template["detail"]
    assert "'Site'" in template["detail"]
    assert "extraParameters" in template["action"]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"JITR_EXTRA_PARAMETERS": "not json"}, "JITR_EXTRA_PARAMETERS"),
        ({}, "JITR_TEMPLATE_NAME"),
    ],
    ids=["extra parameters not JSON", "no settings"],
)
def test_a_function_whose_settings_cannot_be_read_is_a_failure(
    variables: dict[str, str],
    expected: str,
    tmp_path: Path,
    deployed: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    environment = {**_stack_environment(), **variables} if variables else {}
    boto3.client("lambda", region_name=REGION).update_function_configuration(
        FunctionName="jitr-registration", Environment={"Variables": environment}
    )
    code, report = _doctor(tmp_path, deployed, capsys)
    assert code == 1
    (function,) = [f for f in report["findings"] if f["subject"] == "function jitr-registration"]
    assert function["level"] == "FAIL"
    assert expected in function["detail"]


# -- the rule's topic: its FROM clause, matched as AWS IoT matches topic filters ---

OTHER_CA = "ab" * 32


@pytest.mark.parametrize(
    ("sql", "level"),
    [
        ("SELECT * FROM '{topic}'", "OK"),
        ("SELECT * FROM '$aws/events/certificates/registered/+'", "OK"),
        ("SELECT * FROM '$aws/events/certificates/#'", "OK"),
        ("select certificateId from '{topic}' where certificateStatus = 'PENDING_ACTIVATION'", "OK"),
        ("SELECT 'FROM x' AS a, (SELECT VALUE v FROM e) AS b FROM '{topic}'", "OK"),
        ("SELECT * FROM 'devices/events' WHERE topic() = '{topic}'", "FAIL"),
        ("SELECT '{topic}' AS source FROM 'devices/events'", "FAIL"),
        ("SELECT * FROM '{other}'", "FAIL"),
        ("SELECT * FROM '{topic}/extra'", "FAIL"),
        ("SELECT * FROM '#'", "FAIL"),
        ("SELECT * FROM '+/events/certificates/registered/+'", "FAIL"),
    ],
    ids=[
        "exact",
        "every CA (+)",
        "every certificate event (#)",
        "lower case, with WHERE",
        "FROM in a literal and a nested query",
        "topic in WHERE only",
        "topic in SELECT only",
        "another CA's topic",
        "a level below the topic",
        "# does not match $ topics",
        "+ first does not match $ topics",
    ],
)
def test_a_rule_is_on_its_cas_topic_only_by_its_from_clause(
    sql: str,
    level: str,
    tmp_path: Path,
    deployed: dict[str, str],
    fleet: Fleet,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rule = fleet.account.client.get_topic_rule(ruleName="JitrRegistered0")["rule"]
    topic = f"$aws/events/certificates/registered/{fleet.ca_id}"
    fleet.account.client.replace_topic_rule(
        ruleName="JitrRegistered0",
        topicRulePayload={
            "sql": sql.replace("{topic}", topic).replace("{other}", f"$aws/events/certificates/registered/{OTHER_CA}"),
            "awsIotSqlVersion": "2016-03-23",
            "ruleDisabled": False,
            "actions": rule["actions"],
        },
    )
    code, report = _doctor(tmp_path, deployed, capsys)
    levels = _levels(report)
    assert levels["rule JitrRegistered0"] == level, report
    if level == "FAIL":
        assert code == 1
        (uncovered,) = [f for f in report["findings"] if "no rule reads its registered topic" in f["detail"]]
        assert uncovered["subject"] == f"CA {fleet.ca_id[:12]}"
    else:
        assert code == 0, report


def test_a_rule_whose_sql_reads_no_topic_is_a_failure(
    tmp_path: Path, deployed: dict[str, str], fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    rule = fleet.account.client.get_topic_rule(ruleName="JitrRegistered0")["rule"]
    fleet.account.client.replace_topic_rule(
        ruleName="JitrRegistered0",
        topicRulePayload={"sql": "SELECT * FROM topic", "ruleDisabled": False, "actions": rule["actions"]},
    )
    code, report = _doctor(tmp_path, deployed, capsys)
    assert code == 1
    (finding,) = [f for f in report["findings"] if f["subject"] == "rule JitrRegistered0"]
    assert finding["level"] == "FAIL"
    assert "reads no topic" in finding["detail"]


# -- revocation: each CA's CRL sources as the deployed function reads them, and its last revocation sync


@pytest.fixture
def crl_server() -> Iterator[CrlServer]:
    with CrlServer() as server:
        yield server


def _der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def _deploy_revocation(ca_id: str, urls: list[str], *, loopback: bool = True, **source: Any) -> str:
    """The function deployed with the CA's CRL sources (and, as a rehearsal does, loopback allowed) and a decision
    table; the table's name."""
    table = create_decision_table(boto3.client("dynamodb", region_name=REGION))
    _deploy_settings(
        revocation={ca_id: {"crl": urls, **source}}, revocation_allow_loopback=loopback, decision_table=table
    )
    return table


def _put_sync_state(table: str, ca_id: str, **extra: dict[str, str]) -> None:
    """The CA's sync state item, as the revocation sync writes it."""
    item = {
        "id": {"S": f"jitr-revocation-sync#{ca_id}"},
        "lastSyncAt": {"S": "2026-05-02T03:00:00+00:00"},
        "lastSource": {"S": "http://crl.maker.example/issuing.crl"},
        "crlNumber": {"N": "7"},
        "crlThisUpdate": {"S": "2026-05-02T00:00:00+00:00"},
        "crlNextUpdate": {"S": "2026-05-03T00:00:00+00:00"},
        "listed": {"N": "2"},
        "revokedLastRun": {"N": "1"},
        "revokedTotal": {"N": "3"},
        "heldSerials": {"SS": ["1f"]},
        **extra,
    }
    boto3.client("dynamodb", region_name=REGION).put_item(TableName=table, Item=item)


def _revocation_findings(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (f["level"], f["subject"], f["detail"])
        for f in report["findings"]
        if f["subject"].startswith(("CRL of", "revocation"))
    ]


def test_each_crl_source_is_reachable_signed_and_current_and_the_last_sync_is_shown(
    tmp_path: Path, deployed: dict[str, str], fleet: Fleet, crl_server: CrlServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the CA's CRL (two entries, CRL number 7) served where the function's settings say, and a sync that ran
    entries = [(fleet.device(f"gone-{i}").certificate, x509.ReasonFlags.key_compromise) for i in range(2)]
    crl = pki.make_crl(fleet.ca, entries, number=7)
    url = crl_server.publish("/crl/issuing.crl", _der(crl))
    table = _deploy_revocation(fleet.ca_id, [url])
    _put_sync_state(table, fleet.ca_id)
    # When the doctor runs
    code, report = _doctor(tmp_path, deployed, capsys)
    # Then the source and the sync are each one OK line, with what an operator checks
    assert code == 0, report
    (source, sync) = _revocation_findings(report)
    assert source[:2] == ("OK", f"CRL of CA {fleet.ca_id[:12]}")
    assert source[2] == (
        f"{url}: reachable, signed by the CA, current (thisUpdate {crl.last_update_utc:%Y-%m-%d %H:%M}Z, nextUpdate"
        f" {crl.next_update_utc:%Y-%m-%d %H:%M}Z, grace 3600 s), 2 entries, CRL number 7"
    )
    assert sync == (
        "OK",
        f"revocation sync of CA {fleet.ca_id[:12]}",
        "last sync at 2026-05-02T03:00:00+00:00 from http://crl.maker.example/issuing.crl: CRL number 7 of"
        " 2026-05-02T00:00:00+00:00 (2 listed), revoked 1 then, 3 in all, 1 held",
    )


@pytest.mark.parametrize(("on_unknown", "level", "code"), [("retry", "FAIL", 1), ("accept", "WARN", 0)])
@pytest.mark.parametrize(
    ("served", "cause"),
    [
        (None, "unreachable: 127.0.0.1 did not answer"),
        ("stale", "stale: its nextUpdate"),
        ("forged", "unusable: its signature is not the issuer's"),
        ("not yet", "not yet current"),
    ],
)
def test_a_source_that_is_unreachable_unusable_or_stale_is_a_failure_unless_the_ca_accepts_unknown(
    tmp_path: Path,
    deployed: dict[str, str],
    fleet: Fleet,
    crl_server: CrlServer,
    capsys: pytest.CaptureFixture[str],
    served: str | None,
    cause: str,
    on_unknown: str,
    level: str,
    code: int,
) -> None:
    bodies = {
        "stale": lambda: pki.make_crl(fleet.ca, this_update=pki.now() - dt.timedelta(days=3)),
        "forged": lambda: pki.make_crl(fleet.ca, signer=pki.new_key()),
        "not yet": lambda: pki.make_crl(fleet.ca, this_update=pki.now() + dt.timedelta(hours=2)),
    }
    url = crl_server.publish("/crl/issuing.crl", _der(bodies[served]())) if served else "http://127.0.0.1:9/crl.crl"
    table = _deploy_revocation(fleet.ca_id, [url], onUnknown=on_unknown, timeoutSeconds=1)
    _put_sync_state(table, fleet.ca_id)
    exit_code, report = _doctor(tmp_path, deployed, capsys)
    assert exit_code == code
    (source,) = [f for f in report["findings"] if f["subject"].startswith("CRL of")]
    assert source["level"] == level
    assert source["detail"].startswith(f"{url}: {cause}")
    assert ("pending (RETRY REVOCATION_UNKNOWN)" if on_unknown == "retry" else "unchecked") in source["action"]


def test_loopback_is_read_only_where_the_functions_settings_allow_it(
    tmp_path: Path, deployed: dict[str, str], fleet: Fleet, crl_server: CrlServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = crl_server.publish("/crl/issuing.crl", _der(pki.make_crl(fleet.ca)))
    _deploy_revocation(fleet.ca_id, [url], loopback=False)
    code, report = _doctor(tmp_path, deployed, capsys)
    assert code == 1
    (source,) = [f for f in report["findings"] if f["subject"].startswith("CRL of")]
    assert source["level"] == "FAIL"
    assert "a loopback address" in source["detail"]
    assert crl_server.hits == {}  # refused before connecting, as the function would


def test_a_source_the_cas_next_source_stands_in_for_is_a_warning(
    tmp_path: Path, deployed: dict[str, str], fleet: Fleet, crl_server: CrlServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = crl_server.publish("/crl/issuing.crl", _der(pki.make_crl(fleet.ca)))
    down = "http://127.0.0.1:9/down.crl"
    table = _deploy_revocation(fleet.ca_id, [down, url])
    _put_sync_state(table, fleet.ca_id)
    code, report = _doctor(tmp_path, deployed, capsys)
    assert code == 0
    sources = [f for f in report["findings"] if f["subject"].startswith("CRL of")]
    assert [(f["level"], f["detail"].split(": ")[0]) for f in sources] == [("WARN", down), ("OK", url)]
    assert sources[0]["action"] == "the CA's other CRL source answers"


@pytest.mark.parametrize(
    ("state", "level", "detail"),
    [
        (None, "WARN", "no sync has run yet (no jitr-revocation-sync#"),
        (
            {"lastError": {"S": "SourceUnavailable: 127.0.0.1 did not answer"}, "lastErrorAt": {"S": "2026-05-02"}},
            "FAIL",
            "last sync at 2026-05-02T03:00:00+00:00 failed: SourceUnavailable: 127.0.0.1 did not answer",
        ),
    ],
)
def test_a_sync_that_never_ran_is_a_warning_and_one_that_failed_a_failure(
    tmp_path: Path,
    deployed: dict[str, str],
    fleet: Fleet,
    crl_server: CrlServer,
    capsys: pytest.CaptureFixture[str],
    state: dict[str, dict[str, str]] | None,
    level: str,
    detail: str,
) -> None:
    table = _deploy_revocation(fleet.ca_id, [crl_server.publish("/crl/issuing.crl", _der(pki.make_crl(fleet.ca)))])
    if state is not None:
        _put_sync_state(table, fleet.ca_id, **state)
    code, report = _doctor(tmp_path, deployed, capsys)
    assert code == (1 if level == "FAIL" else 0)
    (sync,) = [f for f in report["findings"] if f["subject"].startswith("revocation sync")]
    assert (sync["level"], sync["detail"][: len(detail)]) == (level, detail)


FACTS_TEMPLATE = {
    "Parameters": {
        "AWS::IoT::Certificate::Id": {"Type": "String"},
        "Jitr::Certificate::SubjectAlternativeName::DNS": {"Type": "String"},
        "Jitr::Certificate::Extension::Batch": {"Type": "String"},
    },
    "Resources": {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {
                "ThingName": {"Ref": "Jitr::Certificate::SubjectAlternativeName::DNS"},
                "AttributePayload": {"batch": {"Ref": "Jitr::Certificate::Extension::Batch"}},
            },
        },
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
        },
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "jitr-device"}},
    },
}


@pytest.mark.parametrize(("extensions", "level"), [({"Batch": "1.3.6.1.4.1.55555.1.1"}, "OK"), ({}, "FAIL")])
def test_a_template_reading_jitr_facts_renders_with_the_extensions_the_function_declares(
    tmp_path: Path,
    deployed: dict[str, str],
    fleet: Fleet,
    capsys: pytest.CaptureFixture[str],
    extensions: dict[str, str],
    level: str,
) -> None:
    _store_template(fleet, FACTS_TEMPLATE)
    _deploy_settings(certificate_extensions=extensions)
    _, report = _doctor(tmp_path, deployed, capsys)
    (template,) = [f for f in report["findings"] if f["subject"] == f"template {TEMPLATE_NAME}"]
    assert template["level"] == level, template
    if level == "FAIL":
        assert "'Jitr::Certificate::Extension::Batch' has no value" in template["detail"]
