"""`jitr policy test` and the embedded IoT's TestAuthorization: one evaluator, a provisioned device's own policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jitr.certificates import certificate_id, certificate_parameters, load_certificate
from jitr.policy import account_arn, device_policy_document
from jitr_handlers.registration import handler
from jitr_tools.cli import main
from jitr_tools.embedded.lookups import connection_of, policies_of
from jitr_tools.iot.authorization import evaluate, resource_arn
from tests.integration.support import FakeLambdaContext, Fleet


@pytest.fixture
def provisioned(fleet: Fleet) -> str:
    device = fleet.device("sensor-1")
    assert handler(fleet.first_connect(device), FakeLambdaContext())["outcome"] == "PROVISIONED"
    return certificate_id(device.certificate)


def _test(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    code = main(["policy", "test", "--json", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_a_provisioned_device_may_use_its_own_topics_and_says_by_which_statement(
    provisioned: str, capsys: pytest.CaptureFixture[str]
) -> None:
    own = ["--certificate-id", provisioned, "--client-id", "sensor-1"]
    code, verdict = _test(capsys, *own, "--action", "publish", "--topic", "things/sensor-1/telemetry")
    assert code == 0
    assert (verdict["decision"], verdict["policy"], verdict["statement"]) == ("ALLOWED", "jitr-device", 1)
    code, verdict = _test(capsys, *own, "--action", "connect")
    assert (code, verdict["statement"]) == (0, 0)
    code, verdict = _test(capsys, *own, "--action", "subscribe", "--topic", "things/sensor-2/#")
    assert (code, verdict["decision"]) == (1, "IMPLICIT_DENY")
    # connecting under another client id: no thing of that name is attached, so nothing resolves
    code, verdict = _test(capsys, "--certificate-id", provisioned, "--client-id", "sensor-2", "--action", "connect")
    assert (code, verdict["decision"]) == (1, "IMPLICIT_DENY")


def test_testauthorization_answers_with_the_same_evaluator(fleet: Fleet, provisioned: str) -> None:
    client = fleet.account.client
    arn = client.describe_certificate(certificateId=provisioned)["certificateDescription"]["certificateArn"]
    topic = account_arn("us-east-1", "123456789012")
    results = client.test_authorization(
        principal=arn,
        clientId="sensor-1",
        authInfos=[
            {"actionType": "PUBLISH", "resources": [topic("topic/things/sensor-1/telemetry")]},
            {"actionType": "PUBLISH", "resources": [topic("topic/things/sensor-2/telemetry")]},
        ],
    )["authResults"]
    assert [r["authDecision"] for r in results] == ["ALLOWED", "IMPLICIT_DENY"]
    assert results[0]["allowed"]["policies"][0]["policyName"] == "jitr-device"


def test_a_policy_file_is_evaluated_with_no_account(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "device-policy.json"
    path.write_text(json.dumps(device_policy_document(account_arn("us-east-1", "123456789012"))))
    base = ["--policy", str(path), "--client-id", "d-9", "--region", "us-east-1"]
    assert main(["policy", "test", *base, "--thing", "d-9", "--action", "connect"]) == 0
    assert "ALLOWED by policy device-policy.json, statement 0" in capsys.readouterr().out
    assert main(["policy", "test", *base, "--action", "connect"]) == 1  # no thing attached
    assert "DENIED (implicitly" in capsys.readouterr().out


def test_publish_without_a_topic_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.json"
    path.write_text("{}")
    assert main(["policy", "test", "--policy", str(path), "--client-id", "x", "--action", "publish"]) == 2
    assert "needs --topic" in capsys.readouterr().err


QUARANTINE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Deny",
            "Action": "iot:*",
            "Resource": "*",
            "Condition": {"StringEquals": {"iot:Connection.Thing.Attributes[quarantined]": "true"}},
        }
    ],
}


@pytest.fixture
def quarantined(fleet: Fleet, provisioned: str) -> str:
    """sensor-1, provisioned, then quarantined by its thing's attribute under a Deny policy attached to it."""
    client = fleet.account.client
    arn = client.describe_certificate(certificateId=provisioned)["certificateDescription"]["certificateArn"]
    client.update_thing(thingName="sensor-1", attributePayload={"attributes": {"quarantined": "true"}})
    client.create_policy(policyName="quarantine", policyDocument=json.dumps(QUARANTINE))
    client.attach_policy(policyName="quarantine", target=arn)
    return provisioned


def test_a_deny_on_a_thing_attribute_applies_in_policy_test(
    quarantined: str, capsys: pytest.CaptureFixture[str]
) -> None:
    own = ["--certificate-id", quarantined, "--client-id", "sensor-1"]
    code, verdict = _test(capsys, *own, "--action", "publish", "--topic", "things/sensor-1/telemetry")
    assert (code, verdict["decision"], verdict["policy"]) == (1, "EXPLICIT_DENY", "quarantine")


def test_a_deny_on_a_thing_attribute_applies_in_testauthorization(fleet: Fleet, quarantined: str) -> None:
    client = fleet.account.client
    arn = client.describe_certificate(certificateId=quarantined)["certificateDescription"]["certificateArn"]
    topic = account_arn("us-east-1", "123456789012")("topic/things/sensor-1/telemetry")
    (result,) = client.test_authorization(
        principal=arn, clientId="sensor-1", authInfos=[{"actionType": "PUBLISH", "resources": [topic]}]
    )["authResults"]
    assert result["authDecision"] == "EXPLICIT_DENY"
    assert result["denied"]["explicitDeny"]["policies"][0]["policyName"] == "quarantine"


def test_a_deny_on_a_thing_attribute_applies_to_the_connection_serve_builds(fleet: Fleet, quarantined: str) -> None:
    """`jitr serve` evaluates each packet with `connection_of` given the subject fields it decoded at CONNECT."""
    backend = fleet.account.iot.backend
    certificate = backend.certificates[quarantined]
    fields = certificate_parameters(load_certificate(certificate.certificate_pem))
    connection = connection_of(backend, certificate, "sensor-1", fields)
    name = resource_arn("iot:Publish", "things/sensor-1/telemetry", "us-east-1", "123456789012")
    verdict = evaluate(policies_of(backend, certificate.arn), "iot:Publish", name, connection)
    assert (verdict.decision, verdict.policy) == ("EXPLICIT_DENY", "quarantine")


def test_testauthorization_names_what_it_could_not_resolve(fleet: Fleet, provisioned: str) -> None:
    client = fleet.account.client
    arn = client.describe_certificate(certificateId=provisioned)["certificateDescription"]["certificateArn"]
    by_domain = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": "iot:Publish",
                "Resource": "*",
                "Condition": {"StringEquals": {"iot:DomainName": "old.example.com"}},
            }
        ],
    }
    client.create_policy(policyName="by-domain", policyDocument=json.dumps(by_domain))
    topic = account_arn("us-east-1", "123456789012")("topic/things/sensor-1/telemetry")
    (result,) = client.test_authorization(
        principal=arn,
        clientId="sensor-1",
        authInfos=[{"actionType": "PUBLISH", "resources": [topic]}],
        policyNamesToAdd=["by-domain"],
    )["authResults"]
    assert result["authDecision"] == "EXPLICIT_DENY"  # it may apply: jitr takes it to
    assert result["missingContextValues"] == ["iot:DomainName"]


def test_createpolicy_refuses_a_malformed_document(fleet: Fleet) -> None:
    client = fleet.account.client
    document = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Permit", "Action": "iot:*", "Resource": "*"}]}
    )
    with pytest.raises(client.exceptions.MalformedPolicyException, match="Effect"):
        client.create_policy(policyName="bad", policyDocument=document)
