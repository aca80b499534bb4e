"""The blame rule, end to end on the embedded IoT: a certificate is revoked only for its own faults. What the
deployment or AWS got wrong leaves it PENDING_ACTIVATION and fails the record, so SQS redelivers it, then keeps it
in the dead-letter queue (where an alarm fires)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from jitr.certificates import certificate_id
from jitr_tools import pki
from jitr_tools.embedded.errors import ServiceUnavailableException, UnauthorizedException
from tests.integration.support import FakeLambdaContext, Fleet, sqs_event, store_template
from tests.support import DEVICE_POLICY


def device_template(**thing: Any) -> dict[str, Any]:
    """The default template, with more thing properties or parameters."""
    parameters = {
        "AWS::IoT::Certificate::CommonName": {"Type": "String"},
        "AWS::IoT::Certificate::Id": {"Type": "String"},
        **thing.pop("parameters", {}),
    }
    return {
        "Parameters": parameters,
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}, **thing},
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "jitr-device"}},
        },
    }


def assert_retried_and_pending(fleet: Fleet, event: dict[str, Any], reason: str) -> dict[str, Any]:
    response = __import__("jitr_handlers.registration", fromlist=["handler"]).handler(
        sqs_event(event), FakeLambdaContext()
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}  # redelivered, then the DLQ keeps it
    # read the account directly: a call through the API would take a fault injected for the handler
    assert fleet.account.iot.backend.certificates[event["certificateId"]].status == "PENDING_ACTIVATION"
    assert fleet.account.iot.backend.things == {}
    decision = decide_raw(event)
    assert (decision["outcome"], decision["reason"]) == ("RETRY", reason), decision
    return decision


def decide_raw(event: dict[str, Any]) -> dict[str, Any]:
    """The decision for a raw event (a RETRY raises for Lambda; its decision is in the exception's text)."""
    from jitr_handlers.registration import RedeliverRecord, current

    try:
        return current().handle_one(event).to_dict()
    except RedeliverRecord as exc:  # pragma: no cover - handle_one itself never raises
        raise AssertionError(exc) from exc


# -- the deployment's mistakes: retried, never revoked ---

Mistake = Callable[[Fleet, pytest.MonkeyPatch], None]


def _deleted_policy(fleet: Fleet, _: pytest.MonkeyPatch) -> None:
    fleet.account.client.delete_policy(policyName="jitr-device")


def _missing_thing_group(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    store_template(fleet, monkeypatch, device_template(ThingGroups=["nobody-made-this"]), "with-group")


def _missing_thing_type(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    store_template(fleet, monkeypatch, device_template(ThingTypeName="nobody-made-this"), "with-type")


def _missing_billing_group(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    store_template(fleet, monkeypatch, device_template(BillingGroup="nobody-made-this"), "with-billing")


def _unsupplied_parameter(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    document = device_template(parameters={"Site": {"Type": "String"}}, AttributePayload={"site": {"Ref": "Site"}})
    store_template(fleet, monkeypatch, document, "with-site")


def _bad_prefix(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    document = device_template(parameters={"Prefix": {"Type": "String"}})
    document["Resources"]["thing"]["Properties"]["ThingName"] = {
        "Fn::Join": ["", [{"Ref": "Prefix"}, {"Ref": "AWS::IoT::Certificate::CommonName"}]]
    }
    store_template(fleet, monkeypatch, document, "with-prefix")
    monkeypatch.setenv("JITR_EXTRA_PARAMETERS", json.dumps({"Prefix": "plant 7/"}))  # not valid in a thing name


def _foreign_trust_root(_: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITR_TRUST_ROOT_PEM", pki.make_ca("a root that issued nothing here").pem)


def _access_denied(fleet: Fleet, _: pytest.MonkeyPatch) -> None:
    denied = [UnauthorizedException("not authorized to perform RegisterThing") for _ in range(2)]
    fleet.account.iot.inject_faults("RegisterThing", *denied)  # one for each delivery below


def _policy_widened_by_the_certificate(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    document = device_template()
    document["Resources"]["policy"]["Properties"] = {
        "PolicyDocument": {
            "Fn::Sub": '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect",'
            ' "Resource": "arn:aws:iot:*:*:client/${AWS::IoT::Certificate::CommonName}"}]}'
        }
    }
    store_template(fleet, monkeypatch, document, "leaky")


@pytest.mark.parametrize(
    ("mistake", "reason"),
    [
        pytest.param(_deleted_policy, "PROVISIONING_REFUSED", id="device-policy-deleted"),
        pytest.param(_missing_thing_group, "PROVISIONING_REFUSED", id="thing-group-missing"),
        pytest.param(_missing_thing_type, "PROVISIONING_REFUSED", id="thing-type-missing"),
        pytest.param(_missing_billing_group, "PROVISIONING_REFUSED", id="billing-group-missing"),
        pytest.param(_unsupplied_parameter, "CONFIGURATION", id="parameter-never-supplied"),
        pytest.param(_bad_prefix, "CONFIGURATION", id="deployment-value-invalid-in-a-mixed-name"),
        pytest.param(_foreign_trust_root, "CA_UNUSABLE", id="trust-root-did-not-issue-the-ca"),
        pytest.param(_access_denied, "CONFIGURATION", id="access-denied"),
        pytest.param(_policy_widened_by_the_certificate, "CONFIGURATION", id="template-leaks-cn-into-policy"),
    ],
)
def test_a_deployment_mistake_never_revokes_a_good_device(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, mistake: Mistake, reason: str
) -> None:
    # Given a good device and a deployment with one mistake
    mistake(fleet, monkeypatch)
    event = fleet.first_connect(fleet.device("sensor-1"))
    # Then the record fails (redelivered, then kept in the DLQ) and the certificate stays pending
    decision = assert_retried_and_pending(fleet, event, reason)
    assert decision["message"]


def test_a_ca_the_profile_can_never_accept_is_retried(account: Any, lambda_context: FakeLambdaContext) -> None:
    # Given a CA made as AWS's openssl commands make it (no keyUsage), under the default strict profile
    tutorial_ca = pki.make_ca("tutorial CA", key_usage=False)
    ca_id = account.register_ca(tutorial_ca)
    account.client.create_policy(policyName="jitr-device", policyDocument=DEVICE_POLICY)
    from tests.support import REPO

    account.client.create_provisioning_template(
        templateName="jitr-device",
        templateBody=(REPO / "templates" / "jitr-device.json").read_text(),
        provisioningRoleArn="arn:aws:iam::123456789012:role/jitr-provisioning",
    )
    fleet = Fleet(account, tutorial_ca, ca_id)
    event = fleet.first_connect(fleet.device("sensor-1"))
    decision = assert_retried_and_pending(fleet, event, "CA_UNUSABLE")
    assert "aws-openssl" in decision["message"]


def test_when_the_mistake_is_fixed_the_redelivery_provisions(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    _deleted_policy(fleet, monkeypatch)
    event = fleet.first_connect(fleet.device("patient-1"))
    assert_retried_and_pending(fleet, event, "PROVISIONING_REFUSED")
    fleet.account.client.create_policy(policyName="jitr-device", policyDocument=DEVICE_POLICY)  # the fix
    assert decide_raw(event)["outcome"] == "PROVISIONED"
    assert fleet.status(event["certificateId"]) == "ACTIVE"


# -- the certificate's own faults in the template: revoked ---


def test_a_certificate_field_the_template_needs_and_lacks_is_the_certificates_fault(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = device_template(
        parameters={"AWS::IoT::Certificate::OrganizationalUnit": {"Type": "String"}},
        AttributePayload={"unit": {"Ref": "AWS::IoT::Certificate::OrganizationalUnit"}},
    )
    store_template(fleet, monkeypatch, document, "needs-ou")
    event = fleet.first_connect(fleet.device("no-ou"))
    decision = decide_raw(event)
    assert (decision["outcome"], decision["reason"]) == ("REJECTED", "MISSING_CERTIFICATE_FIELD")
    assert fleet.status(event["certificateId"]) == "REVOKED"


def test_an_invalid_cn_in_a_mixed_name_is_the_certificates_fault(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    _bad_prefix(fleet, monkeypatch)
    monkeypatch.setenv("JITR_EXTRA_PARAMETERS", json.dumps({"Prefix": "plant7-"}))  # a sound prefix
    event = fleet.first_connect(fleet.device("dev.example.com"))  # a dot is not valid in a thing name
    decision = decide_raw(event)
    assert (decision["outcome"], decision["reason"]) == ("REJECTED", "INVALID_DEVICE_NAME")
    assert fleet.status(event["certificateId"]) == "REVOKED"


# -- AWS's troubles: retried ---


def test_a_rejection_is_acknowledged_only_once_recorded(fleet: Fleet) -> None:
    # Given a weak device whose rejection cannot be recorded (UpdateCertificate keeps failing)
    fleet.account.iot.inject_faults("UpdateCertificate", *[ServiceUnavailableException("down") for _ in range(4)])
    device = fleet.device("weak", key="rsa1024")
    event = fleet.first_connect(device)
    # Then the record fails, and the certificate is still pending (no device event is lost)
    from jitr_handlers.registration import handler

    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert fleet.status(certificate_id(device.certificate)) == "PENDING_ACTIVATION"
    # When it is redelivered, the rejection is recorded
    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": []}
    assert fleet.status(certificate_id(device.certificate)) == "REVOKED"


@pytest.mark.parametrize(
    ("status_before", "fault", "expected"),
    [
        # an operator revoked it meanwhile: setting INACTIVE is refused, and the final state stands
        ("REVOKED", None, ("REJECTED", "WEAK_KEY")),
        # AWS refuses the update for another reason: the certificate is still pending, so the record is retried
        ("PENDING_ACTIVATION", "InvalidRequestException", ("RETRY", "REJECTION_NOT_RECORDED")),
    ],
)
def test_a_refused_rejection_update_stands_only_in_a_final_state(
    fleet: Fleet, status_before: str, fault: str | None, expected: tuple[str, str]
) -> None:
    from jitr.iot import IoT
    from jitr.outcomes import Outcome, Reason
    from jitr.provisioning import Decision, record_rejection
    from jitr_handlers.registration import current
    from jitr_tools.embedded import errors

    event = fleet.first_connect(fleet.device("weak", key="rsa1024"))
    fleet.account.iot.backend.certificates[event["certificateId"]].status = status_before
    if fault:
        fleet.account.iot.inject_faults("UpdateCertificate", getattr(errors, fault)("refused"))
    decision = Decision(Outcome.REJECTED, event["certificateId"], reason=Reason.WEAK_KEY, message="1024 bits")
    settings = current().settings
    record_rejection(event["certificateId"], IoT.connect(max_attempts=settings.max_attempts), "INACTIVE", decision)
    assert (decision.outcome, decision.reason) == expected


@pytest.mark.parametrize("operation", ["DescribeCertificate", "DescribeCACertificate", "DescribeProvisioningTemplate"])
def test_aws_faults_on_every_read_are_retried(fleet: Fleet, operation: str) -> None:
    # botocore tries each call 4 times (JITR_MAX_ATTEMPTS); two deliveries below
    fleet.account.iot.inject_faults(operation, *[ServiceUnavailableException("down") for _ in range(8)])
    event = fleet.first_connect(fleet.device("reader-1"))
    decision = assert_retried_and_pending(fleet, event, "AWS_UNAVAILABLE")
    assert decision["message"].startswith("ServiceUnavailable")
    assert fleet.account.iot.state.calls[operation] >= 8


# -- the log line of a malformed record ---


def test_a_malformed_records_log_line_carries_no_previous_certificate_id(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jitr_handlers import registration

    buffer = io.StringIO()
    monkeypatch.setattr(registration.logger.registered_handler, "stream", buffer)
    good = fleet.first_connect(fleet.device("fine"))
    registration.handler(sqs_event(good, "not json {"), FakeLambdaContext())
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if '"registration decided"' in line]
    assert [line["outcome"] for line in lines] == ["PROVISIONED", "MALFORMED"]
    malformed = next(line for line in lines if line["outcome"] == "MALFORMED")
    assert malformed.get("correlation_id") != good["certificateId"]
    assert good["certificateId"] not in json.dumps(malformed)
