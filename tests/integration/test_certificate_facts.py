"""jitr's certificate facts through the handler on the embedded IoT: a thing named from a subjectAltName, an attribute
from a declared extension, and the blame rule for each (a fact the template needs and the certificate lacks or holds
in a form that is not text is the certificate's fault; a fact in a policy, or a Default, is the deployment's)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography import x509

from jitr_tools import pki
from tests.integration.support import FakeLambdaContext, Fleet, sqs_event, store_template

SAN_DNS = "Jitr::Certificate::SubjectAlternativeName::DNS"
BATCH = "Jitr::Certificate::Extension::Batch"
BATCH_OID = "1.3.6.1.4.1.55555.1.1"
FIRST_LABEL = {"Fn::Select": [0, {"Fn::Split": [".", {"Ref": SAN_DNS}]}]}


def facts_template(thing: dict[str, Any], policy: dict[str, Any] | None = None, **parameters: Any) -> dict[str, Any]:
    return {
        "Parameters": {"AWS::IoT::Certificate::Id": {"Type": "String"}, **parameters},
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": thing},
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": policy or {"PolicyName": "jitr-device"}},
        },
    }


SAN_AND_BATCH = facts_template(
    {"ThingName": FIRST_LABEL, "AttributePayload": {"batch": {"Ref": BATCH}}},
    **{SAN_DNS: {"Type": "String"}, BATCH: {"Type": "String"}},
)


@pytest.fixture
def declared(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack declares the batch extension (certificateExtensions)."""
    monkeypatch.setenv("JITR_CERTIFICATE_EXTENSIONS", json.dumps({"Batch": BATCH_OID}))


def batch(der: bytes) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(BATCH_OID), der)


def decide(event: dict[str, Any]) -> dict[str, Any]:
    from jitr_handlers.registration import current

    return current().handle_one(event).to_dict()


def test_a_thing_named_from_a_san_with_an_attribute_from_a_declared_extension(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, declared: None
) -> None:
    # Given a template naming the thing from the first label of the first DNS name, and the batch as an attribute
    store_template(fleet, monkeypatch, SAN_AND_BATCH, "san-and-batch")
    device = fleet.device(
        "factory-test-7", san=["sensor-0042.plant-7.fleet.example"], extensions=[batch(pki.der_element(0x0C, b"B-31"))]
    )
    event = fleet.first_connect(device)
    # When the handler decides its registration
    from jitr_handlers.registration import handler

    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": []}
    # Then the thing is named from the subjectAltName and carries the extension's value
    thing = fleet.account.client.describe_thing(thingName="sensor-0042")
    assert thing["attributes"] == {"batch": "B-31"}
    assert fleet.status(event["certificateId"]) == "ACTIVE"


def test_a_device_lacking_the_san_the_template_needs_is_rejected(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, declared: None
) -> None:
    store_template(fleet, monkeypatch, SAN_AND_BATCH, "san-and-batch")
    event = fleet.first_connect(fleet.device("cn-only", extensions=[batch(pki.der_element(0x0C, b"B-31"))]))
    decision = decide(event)
    assert (decision["outcome"], decision["reason"]) == ("REJECTED", "MISSING_CERTIFICATE_FIELD")
    assert SAN_DNS in decision["message"]
    assert fleet.status(event["certificateId"]) == "REVOKED"


def test_an_extension_the_template_reads_that_is_not_text_is_the_certificates_fault(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, declared: None
) -> None:
    # Given a device whose batch extension holds an INTEGER
    device = fleet.device("sensor-9", san=["sensor-9.example"], extensions=[batch(pki.der_element(0x02, b"\x07"))])
    event = fleet.first_connect(device)
    # When the template reads the batch, the device is refused for it
    store_template(fleet, monkeypatch, SAN_AND_BATCH, "san-and-batch")
    decision = decide(event)
    assert (decision["outcome"], decision["reason"]) == ("REJECTED", "MISSING_CERTIFICATE_FIELD")
    assert f"extension {BATCH_OID} (Batch) holds an INTEGER, not text" in decision["message"]
    assert fleet.status(event["certificateId"]) == "REVOKED"


def test_an_unreadable_extension_the_template_does_not_read_is_no_reason_to_refuse(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, declared: None
) -> None:
    device = fleet.device("sensor-9", san=["sensor-9.example"], extensions=[batch(pki.der_element(0x02, b"\x07"))])
    names_only = facts_template({"ThingName": FIRST_LABEL}, **{SAN_DNS: {"Type": "String"}})
    store_template(fleet, monkeypatch, names_only, "names-only")
    event = fleet.first_connect(device)
    assert decide(event)["outcome"] == "PROVISIONED"
    assert fleet.status(event["certificateId"]) == "ACTIVE"


def test_a_template_putting_a_san_into_a_policy_is_the_deployments_mistake(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stored template (changed outside synth) whose policy name a subjectAltName would choose
    leaky = facts_template(
        {"ThingName": FIRST_LABEL},
        {"PolicyName": {"Ref": "Jitr::Certificate::SubjectAlternativeName::URI"}},
        **{SAN_DNS: {"Type": "String"}, "Jitr::Certificate::SubjectAlternativeName::URI": {"Type": "String"}},
    )
    store_template(fleet, monkeypatch, leaky, "leaky")
    device = fleet.device("sensor-3", san=["sensor-3.example", x509.UniformResourceIdentifier("jitr-device")])
    event = fleet.first_connect(device)
    # Then no device is blamed: it stays pending, and the decision names the leak
    decision = decide(event)
    assert (decision["outcome"], decision["reason"]) == ("RETRY", "CONFIGURATION")
    assert "JITR_CERTIFICATE_FIELD_IN_POLICY" in decision["message"]
    assert fleet.status(event["certificateId"]) == "PENDING_ACTIVATION"
    assert fleet.account.iot.backend.things == {}


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("plant7-", ("REJECTED", "INVALID_DEVICE_NAME")),  # a sound prefix: the dotted DNS name is at fault
        ("plant 7/", ("RETRY", "CONFIGURATION")),  # no DNS name could make this a thing name
    ],
)
def test_a_san_mixed_with_a_deployment_value_is_blamed_by_the_neutral_render(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, prefix: str, expected: tuple[str, str]
) -> None:
    mixed = facts_template(
        {"ThingName": {"Fn::Join": ["", [{"Ref": "Prefix"}, {"Ref": SAN_DNS}]]}},
        **{SAN_DNS: {"Type": "String"}, "Prefix": {"Type": "String"}},
    )
    store_template(fleet, monkeypatch, mixed, "mixed")
    monkeypatch.setenv("JITR_EXTRA_PARAMETERS", json.dumps({"Prefix": prefix}))
    event = fleet.first_connect(fleet.device("sensor-5", san=["sensor-5.example"]))
    decision = decide(event)
    assert (decision["outcome"], decision["reason"]) == expected


def test_a_certificate_field_that_took_its_default_is_the_deployments_fault(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a template whose Default for a subject field the device lacks is no attribute value
    ou = "AWS::IoT::Certificate::OrganizationalUnit"
    document = facts_template(
        {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}, "AttributePayload": {"unit": {"Ref": ou}}},
        **{"AWS::IoT::Certificate::CommonName": {"Type": "String"}, ou: {"Type": "String", "Default": "no unit"}},
    )
    store_template(fleet, monkeypatch, document, "unit-default")
    event = fleet.first_connect(fleet.device("sensor-6"))
    # Then the device is not blamed for the template's own value
    decision = decide(event)
    assert (decision["outcome"], decision["reason"]) == ("RETRY", "CONFIGURATION")
    assert fleet.status(event["certificateId"]) == "PENDING_ACTIVATION"
