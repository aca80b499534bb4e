"""AWS IoT policy evaluation for MQTT actions, with the device policy every provisioned device gets."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jitr.policy import account_arn, device_policy_document
from jitr_tools.iot.authorization import (
    Connection,
    Decision,
    PolicyError,
    Thing,
    Verdict,
    action_name,
    evaluate,
    resource_arn,
)

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


# -- AWS's own example policies, with the answers AWS documents ------------------------------------------------------
# Thing policy examples (developer guide, thing-policy-examples) and the example policies of "Using X.509 certificate
# policy variables" and "X.509 Certificate AWS IoT Core policy variables", copied as AWS prints them.

AWS_ARN = "arn:aws:iot:us-east-1:123456789012"
THING_TYPE_AND_ATTRIBUTE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:Publish"],
            "Resource": f"{AWS_ARN}:topic/device/stats",
            "Condition": {
                "StringEquals": {
                    "iot:Connection.Thing.Attributes[attributeName]": "attributeValue",
                    "iot:Connection.Thing.ThingTypeName": "Thing_Type_Name",
                },
                "Bool": {"iot:Connection.Thing.IsAttached": "true"},
            },
        }
    ],
}
TOPIC_FROM_ATTRIBUTE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:Publish"],
            "Resource": f"{AWS_ARN}:topic/${{iot:Connection.Thing.Attributes[attributeName]}}/*",
        }
    ],
}
SERIAL_AND_ORGANIZATION = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:Connect"],
            "Resource": [f"{AWS_ARN}:client/${{iot:Certificate.SerialNumber}}"],
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Publish"],
            "Resource": [f"{AWS_ARN}:topic/${{iot:Certificate.Subject.Organization}}/device-stats/${{iot:ClientId}}/*"],
        },
    ],
}
NULL_CHECK = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:Connect"],
            "Resource": [f"{AWS_ARN}:client/*"],
            "Condition": {
                "Null": {"iot:Certificate.SerialNumber": "false", "iot:Certificate.Subject.CommonName": "false"}
            },
        }
    ],
}
ORGANIZATION_LIST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:Connect"],
            "Resource": [f"{AWS_ARN}:client/${{iot:Connection.Thing.ThingName}}"],
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Publish"],
            "Resource": [f"{AWS_ARN}:topic/my/topic/${{iot:Connection.Thing.ThingName}}"],
            "Condition": {
                "ForAllValues:StringEquals": {
                    "iot:Certificate.Subject.Organization.List": ["Example Corp", "AnyCompany"]
                }
            },
        },
    ],
}


def _name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


def _directory(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.DirectoryName:
    return x509.DirectoryName(_name(*attributes))


def aws_example_certificate(subject: x509.Name | None = None, serial: int = 0x921285CBB7A5E086) -> str:
    """The certificate "Using X.509 certificate policy variables" shows (serial 92:12:85:cb:b7:a5:e0:86)."""
    issuer = _name(
        (NameOID.COUNTRY_NAME, "US"),
        (NameOID.ORGANIZATION_NAME, "IoT Devices"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "SmartHome"),
        (NameOID.STATE_OR_PROVINCE_NAME, "WA"),
        (NameOID.COMMON_NAME, "IoT Devices Primary CA"),
        (NameOID.GIVEN_NAME, "Primary CA1"),
        (NameOID.INITIALS, "XY"),
        (NameOID.DN_QUALIFIER, "Example corp"),
        (NameOID.SURNAME, "SmartHome"),
        (NameOID.TITLE, "CA1"),
        (NameOID.PSEUDONYM, "Primary_CA"),
        (NameOID.GENERATION_QUALIFIER, "2"),
        (NameOID.SERIAL_NUMBER, "987"),
    )
    subject = subject or _name(
        (NameOID.COUNTRY_NAME, "US"),
        (NameOID.ORGANIZATION_NAME, "IoT Devices"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "LightBulb"),
        (NameOID.STATE_OR_PROVINCE_NAME, "NY"),
        (NameOID.COMMON_NAME, "LightBulb Device Cert"),
        (NameOID.GIVEN_NAME, "Bulb"),
        (NameOID.INITIALS, "ZZ"),
        (NameOID.DN_QUALIFIER, "Bulb001"),
        (NameOID.SURNAME, "Multi Color"),
        (NameOID.TITLE, "RGB"),
        (NameOID.PSEUDONYM, "RGB Device"),
        (NameOID.GENERATION_QUALIFIER, "4"),
        (NameOID.SERIAL_NUMBER, "123"),
    )
    san = [
        x509.DNSName("example.com"),
        x509.IPAddress(ipaddress.ip_address("1.2.3.4")),
        x509.UniformResourceIdentifier("ResourceIdentifier001"),
        x509.RFC822Name("device1@example.com"),
        _directory(
            (NameOID.COUNTRY_NAME, "US"),
            (NameOID.ORGANIZATION_NAME, "IoT"),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, "SmartHome"),
            (NameOID.COMMON_NAME, "LightBulbCert"),
        ),
    ]
    ian = [
        x509.DNSName("issuer.com"),
        x509.IPAddress(ipaddress.ip_address("5.6.7.8")),
        x509.UniformResourceIdentifier("PrimarySignerCA"),
        x509.RFC822Name("primary@issuer.com"),
        _directory(
            (NameOID.COUNTRY_NAME, "US"),
            (NameOID.ORGANIZATION_NAME, "Issuer"),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, "IoT Devices"),
            (NameOID.COMMON_NAME, "Primary Issuer CA"),
        ),
    ]
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(dt.datetime(2024, 3, 26, 3, 25, 40, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2025, 4, 28, 3, 25, 40, tzinfo=dt.UTC))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.IssuerAlternativeName(ian), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_the_certificate_variables_are_those_awss_table_shows_for_its_example_certificate() -> None:
    device = Connection("c", certificate_pem=aws_example_certificate())
    documented = {
        "iot:Certificate.Issuer.Country": "US",
        "iot:Certificate.Issuer.Organization": "IoT Devices",
        "iot:Certificate.Issuer.OrganizationalUnit": "SmartHome",
        "iot:Certificate.Issuer.State": "WA",
        "iot:Certificate.Issuer.CommonName": "IoT Devices Primary CA",
        "iot:Certificate.Issuer.GivenName": "Primary CA1",
        "iot:Certificate.Issuer.initials": "XY",  # AWS's table spells it so: names match whatever their case
        "iot:Certificate.Issuer.DistinguishedNameQualifier": "Example corp",
        "iot:Certificate.Issuer.Surname": "SmartHome",
        "iot:Certificate.Issuer.Title": "CA1",
        "iot:Certificate.Issuer.Pseudonym": "Primary_CA",
        "iot:Certificate.Issuer.GenerationQualifier": "2",
        "iot:Certificate.Issuer.SerialNumber": "987",
        "iot:Certificate.Subject.Country": "US",
        "iot:Certificate.Subject.Organization": "IoT Devices",
        "iot:Certificate.Subject.State": "NY",
        "iot:Certificate.Subject.CommonName": "LightBulb Device Cert",
        "iot:Certificate.Subject.GivenName": "Bulb",
        "iot:Certificate.Subject.Initials": "ZZ",
        "iot:Certificate.Subject.DistinguishedNameQualifier": "Bulb001",
        "iot:Certificate.Subject.Surname": "Multi Color",
        "iot:Certificate.Subject.Title": "RGB",
        "iot:Certificate.Subject.Pseudonym": "RGB Device",
        "iot:Certificate.Subject.GenerationQualifier": "4",
        "iot:Certificate.Subject.SerialNumber": "123",
        "iot:Certificate.Issuer.AlternativeName.DNSName": "issuer.com",
        "iot:Certificate.Issuer.AlternativeName.IPAddress": "5.6.7.8",
        "iot:Certificate.Issuer.AlternativeName.UniformResourceIdentifier": "PrimarySignerCA",
        "iot:Certificate.Issuer.AlternativeName.RFC822Name": "primary@issuer.com",
        "iot:Certificate.Issuer.AlternativeName.DirectoryName": "cn=Primary Issuer CA,ou=IoT Devices,o=Issuer,c=US",
        "iot:Certificate.Subject.AlternativeName.DNSName": "example.com",
        "iot:Certificate.Subject.AlternativeName.IPAddress": "1.2.3.4",
        "iot:Certificate.Subject.AlternativeName.UniformResourceIdentifier": "ResourceIdentifier001",
        "iot:Certificate.Subject.AlternativeName.RFC822Name": "device1@example.com",
        "iot:Certificate.Subject.AlternativeName.DirectoryName": "cn=LightBulbCert,ou=SmartHome,o=IoT,c=US",
        "iot:Certificate.SerialNumber": "10525622389124227206",
    }
    assert {name: device.values(name) for name in documented} == {name: (v,) for name, v in documented.items()}
    assert "iot:Certificate.Subject.AlternativeName.DNSName" in (device.values("iot:Certificate.AvailableKeys") or ())


def test_awss_thing_type_and_attribute_example_allows_only_that_thing() -> None:
    policy = [("aws-example", THING_TYPE_AND_ATTRIBUTE)]
    typed = Thing("bulb-1", "Thing_Type_Name", {"attributeName": "attributeValue"})
    assert check("publish", "device/stats", Connection("bulb-1", thing=typed), policy).allowed
    other_type = Thing("bulb-1", "Other_Type", {"attributeName": "attributeValue"})
    assert not check("publish", "device/stats", Connection("bulb-1", thing=other_type), policy).allowed
    assert not check("publish", "device/stats", Connection("bulb-1"), policy).allowed  # no thing attached


def test_awss_topic_from_an_attribute_example_and_its_access_denied_without_the_thing() -> None:
    policy = [("aws-example", TOPIC_FROM_ATTRIBUTE)]
    thing = Thing("bulb-1", None, {"attributeName": "attributeValue"})
    assert check("publish", "attributeValue/reading", Connection("bulb-1", thing=thing), policy).allowed
    # "If the device certificate is not associated with the thing, this variable won't be resolved and will result
    # in an access denied error."
    verdict = check("publish", "attributeValue/reading", Connection("bulb-1"), policy)
    assert verdict.decision == Decision.IMPLICIT_DENY
    assert verdict.missing == ("iot:Connection.Thing.Attributes[attributeName]",)


def test_awss_serial_number_and_organization_example() -> None:
    policy = [("aws-example", SERIAL_AND_ORGANIZATION)]
    device = Connection("10525622389124227206", certificate_pem=aws_example_certificate())
    assert check("connect", "10525622389124227206", device, policy).allowed  # the serial number, in decimal
    hex_id = Connection("92:12:85:cb:b7:a5:e0:86", certificate_pem=aws_example_certificate())
    assert not check("connect", "92:12:85:cb:b7:a5:e0:86", hex_id, policy).allowed
    assert check("publish", "IoT Devices/device-stats/10525622389124227206/t", device, policy).allowed


def test_awss_null_condition_example_needs_a_common_name() -> None:
    policy = [("aws-example", NULL_CHECK)]
    assert check("connect", "any", Connection("any", certificate_pem=aws_example_certificate()), policy).allowed
    no_common_name = aws_example_certificate(subject=_name((NameOID.ORGANIZATION_NAME, "IoT Devices")))
    assert not check("connect", "any", Connection("any", certificate_pem=no_common_name), policy).allowed


@pytest.mark.parametrize(
    ("organizations", "allowed"),
    [(["Example Corp"], True), (["AnyCompany", "Example Corp"], True), (["Example Corp", "Rival Inc"], False)],
)
def test_awss_organization_list_example(organizations: list[str], allowed: bool) -> None:
    subject = _name(*((NameOID.ORGANIZATION_NAME, o) for o in organizations), (NameOID.COMMON_NAME, "bulb-1"))
    device = Connection("bulb-1", thing=Thing("bulb-1"), certificate_pem=aws_example_certificate(subject))
    assert check("publish", "my/topic/bulb-1", device, [("aws-example", ORGANIZATION_LIST)]).allowed is allowed


# -- a Deny on a variable is never skipped unannounced --------------------------------------------------------------

QUARANTINE = (
    "quarantine",
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": "iot:*",
                "Resource": "*",
                "Condition": {"StringEquals": {"iot:Connection.Thing.Attributes[quarantined]": "true"}},
            },
            {
                "Effect": "Deny",
                "Action": "iot:Publish",
                "Resource": f"{AWS_ARN}:topic/things/*/${{iot:Connection.Thing.ThingTypeName}}-firmware",
            },
        ],
    },
)


def test_a_deny_on_a_thing_attribute_or_type_applies() -> None:
    quarantined = Connection("sensor-1", thing=Thing("sensor-1", "lamp", {"quarantined": "true"}))
    verdict = check("publish", "things/sensor-1/telemetry", quarantined, [*DEVICE_POLICY, QUARANTINE])
    assert (verdict.decision, verdict.policy, verdict.statement) == (Decision.EXPLICIT_DENY, "quarantine", 0)
    healthy = Connection("sensor-1", thing=Thing("sensor-1", "lamp", {"quarantined": "false"}))
    assert check("publish", "things/sensor-1/telemetry", healthy, [*DEVICE_POLICY, QUARANTINE]).allowed
    verdict = check("publish", "things/sensor-1/lamp-firmware", healthy, [*DEVICE_POLICY, QUARANTINE])
    assert (verdict.decision, verdict.statement) == (Decision.EXPLICIT_DENY, 1)


def test_a_deny_whose_variable_has_no_value_does_not_apply_as_on_aws_but_the_answer_says_so() -> None:
    untyped = Connection("sensor-1", thing=Thing("sensor-1"))  # no type, no attributes
    verdict = check("publish", "things/sensor-1/-firmware", untyped, [*DEVICE_POLICY, QUARANTINE])
    assert verdict.allowed
    assert verdict.missing == ("iot:Connection.Thing.Attributes[quarantined]", "iot:Connection.Thing.ThingTypeName")
    assert any("ThingTypeName has no value" in note for note in verdict.notes)


def test_a_deny_jitr_cannot_resolve_is_taken_to_apply_and_an_allow_is_not() -> None:
    named_only = Connection("sensor-1", thing_name="sensor-1")  # a thing is attached; its attributes are not known
    verdict = check("publish", "things/sensor-1/telemetry", named_only, [*DEVICE_POLICY, QUARANTINE])
    assert verdict.decision == Decision.EXPLICIT_DENY
    assert (verdict.decision, verdict.policy, verdict.assumed) == (Decision.EXPLICIT_DENY, "quarantine", True)
    assert "taken to apply" in verdict.describe()
    assert any("this Deny is taken to apply" in n and "quarantined" in n for n in verdict.notes)
    unknown = (
        "p",
        {
            "Statement": [
                {"Effect": "Allow", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/${iot:Made.Up}"}
            ]
        },
    )
    verdict = check("publish", "x", ATTACHED, [unknown])
    assert verdict.decision == Decision.IMPLICIT_DENY
    assert verdict.notes == (
        "policy p, statement 0: this Allow is taken not to apply: jitr cannot resolve iot:Made.Up"
        " (not a variable AWS IoT documents)",
    )


def test_an_undecided_deny_that_cannot_match_the_request_is_not_assumed() -> None:
    deny = (
        "d",
        {
            "Statement": [
                {"Effect": "Deny", "Action": "iot:Publish", "Resource": "arn:aws:iot:*:*:topic/${iot:DomainName}/x"}
            ]
        },
    )
    assert check("publish", "things/sensor-1/telemetry", ATTACHED, [*DEVICE_POLICY, deny]).allowed  # not .../x
    assert check("subscribe", "things/sensor-1/x", ATTACHED, [*DEVICE_POLICY, deny]).allowed  # another action
    verdict = check("publish", "things/sensor-1/x", ATTACHED, [*DEVICE_POLICY, deny])
    assert verdict.decision == Decision.EXPLICIT_DENY
    assert verdict.assumed


@pytest.mark.parametrize(
    ("source_ip", "decision"), [(None, "EXPLICIT_DENY"), ("10.1.2.3", "ALLOWED"), ("8.8.8.8", "EXPLICIT_DENY")]
)
def test_a_source_ip_condition_is_decided_when_the_address_is_known(source_ip: str | None, decision: str) -> None:
    outside = (
        "outside",
        {
            "Statement": [
                {
                    "Effect": "Deny",
                    "Action": "iot:*",
                    "Resource": "*",
                    "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
                }
            ]
        },
    )
    device = Connection("sensor-1", thing_name="sensor-1", source_ip=source_ip)
    verdict = check("connect", "sensor-1", device, [*DEVICE_POLICY, outside])
    assert verdict.decision == decision
    assert (verdict.decision, verdict.assumed) == (decision, source_ip is None)


def test_multi_valued_certificate_attributes_index_list_and_what_is_not_substituted() -> None:
    subject = _name(
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "north"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "south"),
        (NameOID.COMMON_NAME, "lamp*1"),
    )
    device = Connection("d", certificate_pem=aws_example_certificate(subject))
    assert device.values("iot:Certificate.Subject.OrganizationalUnit") == ("north",)
    assert device.values("iot:Certificate.Subject.OrganizationalUnit.1") == ("south",)  # AWS: .1 is the second
    assert device.values("iot:Certificate.Subject.OrganizationalUnit.2") == ()  # past the end: no value
    assert device.values("iot:Certificate.Subject.OrganizationalUnit.List") == ("north", "south")
    policy = (
        "p",
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "iot:Publish",
                    "Resource": "arn:aws:iot:*:*:topic/${iot:Certificate.Subject.OrganizationalUnit.1}/*",
                },
                {
                    "Effect": "Allow",
                    "Action": "iot:Subscribe",
                    "Resource": "arn:aws:iot:*:*:topicfilter/${iot:Certificate.Subject.CommonName}",
                },
            ]
        },
    )
    assert check("publish", "south/t", device, [policy]).allowed
    assert not check("publish", "north/t", device, [policy]).allowed
    # a certificate value with a wildcard character is not substituted: the ${...} text stays, as AWS IoT documents
    assert not check("subscribe", "lamp*1", device, [policy]).allowed
    assert check("subscribe", "${iot:Certificate.Subject.CommonName}", device, [policy]).allowed


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "a policy document is a JSON object"),
        ({"Statement": "Allow"}, "Statement is an object or a non-empty list"),
        ({"Statement": []}, "Statement is an object or a non-empty list"),
        ({"Statement": ["Allow"]}, "statement 0: a statement is a JSON object"),
        ({"Statement": {"Effect": "allow", "Action": "*", "Resource": "*"}}, 'Effect is "Allow" or "Deny"'),
        ({"Statement": {"Effect": "Allow", "Resource": "*"}}, "one of Action or NotAction"),
        ({"Statement": {"Effect": "Allow", "Action": "*", "NotAction": "*", "Resource": "*"}}, "one of Action"),
        ({"Statement": {"Effect": "Allow", "Action": 7, "Resource": "*"}}, "Action is a string or a non-empty list"),
        ({"Statement": {"Effect": "Allow", "Action": "*", "Resource": [None]}}, "Resource is a string"),
        ({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": []}}, "Condition is an object"),
        (
            {"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": "x"}}},
            'Condition "StringEquals" takes an object of keys',
        ),
        (
            {"Statement": {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"Bool": {"k": {"a": 1}}}}},
            'Condition "Bool" "k" takes a string, number or boolean',
        ),
    ],
)
def test_a_malformed_document_is_a_policy_error_naming_where(document: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=re.escape(message)):
        check("connect", "sensor-1", ATTACHED, [("bad", document)])
