"""jitr's certificate facts at their boundaries, one character either side: a subjectAltName at the longest thing
name and attribute value, an extension at RegisterThing's longest parameter value, non-ASCII values, and several
subjectAltNames of a kind. Each is checked where the template puts it, as the CN is, and a problem names the fact
it came from (so the handler blames the certificate for it)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography import x509

from jitr.facts import certificate_facts
from jitr.templates import Plan, TemplateError, render_template
from jitr.templates.limits import PARAMETER_VALUE_MAX_CHARS
from jitr_tools import pki

SAN = "Jitr::Certificate::SubjectAlternativeName::"
BATCH = "Jitr::Certificate::Extension::Batch"
BATCH_OID = "1.3.6.1.4.1.55555.1.1"


def template(thing_name: Any, attributes: dict[str, Any] | None = None, *declared: str) -> dict[str, Any]:
    names = {"AWS::IoT::Certificate::Id", *declared}
    return {
        "Parameters": {name: {"Type": "String"} for name in sorted(names)},
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {"ThingName": thing_name, "AttributePayload": attributes or {}},
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "jitr-device"}},
        },
    }


def render(document: dict[str, Any], device: pki.Issued) -> Plan:
    """Render as the handler does: the certificate's facts the template declares."""
    facts = certificate_facts(device.certificate, {"Batch": BATCH_OID})
    return render_template(document, facts.given(document["Parameters"]))


def problem(document: dict[str, Any], device: pki.Issued) -> tuple[str, frozenset[str]]:
    with pytest.raises(TemplateError) as caught:
        render(document, device)
    (found,) = caught.value.problems
    return found.code, found.parameters


def batch(text: str) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(BATCH_OID), pki.der_element(0x0C, text.encode()))


# -- lengths ---


@pytest.mark.parametrize(("length", "valid"), [(128, True), (129, False)])
def test_a_dns_name_as_thing_name_at_128_characters(issuing_ca: pki.Issued, length: int, valid: bool) -> None:
    device = pki.make_device(issuing_ca, "d", san=["a" * length])
    document = template({"Ref": SAN + "DNS"}, None, SAN + "DNS")
    if valid:
        assert render(document, device).thing.properties["ThingName"] == "a" * length  # type: ignore[union-attr]
    else:
        assert problem(document, device) == ("INVALID_NAME", {SAN + "DNS"})


@pytest.mark.parametrize(("length", "valid"), [(800, True), (801, False)])
def test_a_uri_as_attribute_value_at_800_characters(issuing_ca: pki.Issued, length: int, valid: bool) -> None:
    uri = "urn:" + "x" * (length - 4)
    device = pki.make_device(issuing_ca, "d", san=[x509.UniformResourceIdentifier(uri)])
    document = template("t1", {"uri": {"Ref": SAN + "URI"}}, SAN + "URI")
    if valid:
        assert render(document, device).thing.properties["AttributePayload"] == {"uri": uri}  # type: ignore[union-attr]
    else:
        assert problem(document, device) == ("INVALID_VALUE", {SAN + "URI"})


@pytest.mark.parametrize(
    ("length", "valid"), [(PARAMETER_VALUE_MAX_CHARS, True), (PARAMETER_VALUE_MAX_CHARS + 1, False)]
)
def test_an_extension_at_registerthings_longest_parameter_value(
    issuing_ca: pki.Issued, length: int, valid: bool
) -> None:
    device = pki.make_device(issuing_ca, "d", extensions=[batch("b" * length)])
    declared = template("t1", None, BATCH)  # declared, though put nowhere: RegisterThing is still given it
    if valid:
        assert render(declared, device).parameters[BATCH] == "b" * length
    else:
        assert problem(declared, device) == ("PARAMETER_TOO_LONG", {BATCH})
    assert render(template("t1"), device).parameters.keys() == {"AWS::IoT::Certificate::Id"}  # undeclared: not given


def test_an_empty_extension_is_a_valid_attribute_but_no_thing_name(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "d", extensions=[batch("")])
    attribute = template("t1", {"batch": {"Ref": BATCH}}, BATCH)
    assert render(attribute, device).thing.properties["AttributePayload"] == {"batch": ""}  # type: ignore[union-attr]
    assert problem(template({"Ref": BATCH}, None, BATCH), device) == ("INVALID_NAME", {BATCH})


# -- non-ASCII ---


def test_a_non_ascii_dns_name_is_read_and_is_no_thing_name(issuing_ca: pki.Issued) -> None:
    # an IA5String may not hold it, but a certificate can: the fact reads it, and the name check refuses it
    device = pki.make_device(issuing_ca, "d", san=[x509.DNSName._init_without_validation("bücher")])
    assert certificate_facts(device.certificate).values[SAN + "DNS"] == "bücher"
    assert problem(template({"Ref": SAN + "DNS"}, None, SAN + "DNS"), device) == ("INVALID_NAME", {SAN + "DNS"})


def test_a_non_ascii_extension_is_read_and_is_no_attribute_value(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "d", extensions=[batch("Zürich-7")])
    assert certificate_facts(device.certificate, {"Batch": BATCH_OID}).values[BATCH] == "Zürich-7"
    document = template("t1", {"batch": {"Ref": BATCH}}, BATCH)
    assert problem(document, device) == ("INVALID_VALUE", {BATCH})


def test_a_non_ascii_email_in_a_mixed_value_names_the_fact(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "d", san=[x509.RFC822Name._init_without_validation("jürgen@fleet.example")])
    document = template("t1", {"contact": {"Fn::Join": ["/", ["ops", {"Ref": SAN + "Email"}]]}}, SAN + "Email")
    assert problem(document, device) == ("INVALID_VALUE", {SAN + "Email"})


# -- several subjectAltNames ---


def test_several_names_of_a_kind_are_numbered_in_the_certificates_order(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(
        issuing_ca, "d", san=["first.example", "192.0.2.1", "second.example", "192.0.2.2", "third.example"]
    )
    values = certificate_facts(device.certificate).values
    assert [values[SAN + f"DNS::{i}"] for i in (1, 2, 3)] == ["first.example", "second.example", "third.example"]
    assert [values[SAN + f"IP::{i}"] for i in (1, 2)] == ["192.0.2.1", "192.0.2.2"]
    assert values[SAN + "DNS"] == values[SAN + "DNS::1"]
    assert SAN + "DNS::4" not in values
    assert SAN + "URI" not in values


def test_a_numbered_name_beyond_those_the_certificate_holds_is_missing(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "d", san=["first.example", "second.example"])
    three = template("t1", {"third": {"Ref": SAN + "DNS::3"}}, SAN + "DNS::3")
    assert problem(three, device) == ("MISSING_PARAMETER", {SAN + "DNS::3"})
    two = template("t1", {"second": {"Ref": SAN + "DNS::2"}}, SAN + "DNS::2")
    assert render(two, device).thing.properties["AttributePayload"] == {"second": "second.example"}  # type: ignore[union-attr]


def test_a_dns_names_first_label_names_a_thing(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "d", san=["sensor-0042.plant-7.fleet.example"])
    first_label = {"Fn::Select": [0, {"Fn::Split": [".", {"Ref": SAN + "DNS"}]}]}
    plan = render(template(first_label, None, SAN + "DNS"), device)
    assert plan.thing.properties["ThingName"] == "sensor-0042"  # type: ignore[union-attr]
