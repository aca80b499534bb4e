"""The decision hook's contract without AWS: what it is told about a certificate (facts, never the certificate), how
its answer is read (strictly: each malformed kind is `HookFailed`, never repeating the answer), its settings and the
time budget's client configuration."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from jitr.certificates import certificate_id
from jitr.hook import (
    ANSWER_MAX_BYTES,
    PARAMETER_VALUE_MAX_CHARS,
    REASON_MAX_CHARS,
    HookAnswer,
    HookDecision,
    HookFailed,
    HookRequest,
    HookSettings,
    budget_config,
)
from jitr_tools import pki

SETTABLE = ("Site", "Line")
SECRET = "s3cr3t-from-the-hook"


def certificate(issuer: pki.Issued, subject: x509.Name, *sans: x509.GeneralName) -> x509.Certificate:
    start = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(0x00AB_CDEF)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer.key, hashes.SHA256())


def request_about(cert: x509.Certificate) -> dict[str, Any]:
    payload = HookRequest.from_certificate(cert, certificate_id(cert), "ca-id", "sensor").payload()
    return json.loads(payload.decode("utf-8"))


# -- the request ---


def test_the_request_holds_the_certificates_facts(issuing_ca: pki.Issued) -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "meters"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, "SN-1"),
            x509.NameAttribute(NameOID.COMMON_NAME, "meter-1"),
        ]
    )
    cert = certificate(
        issuing_ca,
        subject,
        x509.DNSName("meter-1.example.com"),
        x509.DNSName("meter-1.local"),
        x509.UniformResourceIdentifier("urn:dev:meter-1"),
        x509.RFC822Name("ops@example.com"),
        x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
    )
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    assert request_about(cert) == {
        "version": "1.0",
        "product": "sensor",
        "certificateId": certificate_id(cert),
        "caCertificateId": "ca-id",
        "subject": {
            "rfc4514": "CN=meter-1,2.5.4.5=SN-1,OU=meters",
            "attributes": {"CommonName": "meter-1", "SerialNumber": "SN-1", "OrganizationalUnit": "meters"},
        },
        "issuer": issuing_ca.certificate.subject.rfc4514_string(),
        "subjectAltNames": {
            "dns": ["meter-1.example.com", "meter-1.local"],
            "uri": ["urn:dev:meter-1"],
            "email": ["ops@example.com"],
            "ip": ["2001:db8::1"],
        },
        "serialNumber": "abcdef",
        "fingerprints": {
            "certificateSha256": hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
            "publicKeySha256": hashlib.sha256(spki).hexdigest(),
        },
        "validity": {"notBefore": "2026-01-02T03:04:05Z", "notAfter": "2027-01-02T03:04:05Z"},
    }


def test_the_request_never_holds_the_certificate(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "sensor-1", san=["sensor-1.example.com"])
    payload = HookRequest.from_certificate(device.certificate, "id", "ca-id", "sensor").payload().decode()

    assert "BEGIN CERTIFICATE" not in payload
    for line in device.pem.splitlines()[1:-1]:
        assert line not in payload


def test_a_certificate_without_a_common_name_or_subjectaltname(issuing_ca: pki.Issued) -> None:
    cert = certificate(issuing_ca, x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "acme")]))

    request = request_about(cert)

    assert request["subject"] == {"rfc4514": "O=acme", "attributes": {"Organization": "acme"}}
    assert request["subjectAltNames"] == {"dns": [], "uri": [], "email": [], "ip": []}


def test_an_empty_subject(issuing_ca: pki.Issued) -> None:
    cert = certificate(issuing_ca, x509.Name([]), x509.DNSName("only-a-san.example.com"))

    assert request_about(cert)["subject"] == {"rfc4514": "", "attributes": {}}


def test_a_unicode_subject_travels_as_utf8_json(issuing_ca: pki.Issued) -> None:
    name = "capteur-é-温度-📡"
    cert = certificate(issuing_ca, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))

    request = request_about(cert)

    assert request["subject"] == {"rfc4514": f"CN={name}", "attributes": {"CommonName": name}}


# -- the answer ---


def read(answer: Any, raw: bytes | None = None) -> HookAnswer:
    return HookAnswer.read(raw if raw is not None else json.dumps(answer).encode(), SETTABLE, 0.25)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"decision": "allow"}, (HookDecision.ALLOW, "", {})),
        (
            {"decision": "allow", "parameters": {"Site": "plant-3", "Line": ""}},
            ("allow", "", {"Site": "plant-3", "Line": ""}),
        ),
        ({"decision": "deny", "reason": "returned unit"}, (HookDecision.DENY, "returned unit", {})),
        ({"decision": "hold", "reason": "é" * REASON_MAX_CHARS}, (HookDecision.HOLD, "é" * REASON_MAX_CHARS, {})),
        (
            {"decision": "allow", "parameters": {"Site": "x" * PARAMETER_VALUE_MAX_CHARS}},
            ("allow", "", {"Site": "x" * PARAMETER_VALUE_MAX_CHARS}),
        ),
    ],
    ids=["allow", "allow-with-parameters", "deny", "longest-reason", "longest-value"],
)
def test_a_sound_answer_is_read(answer: dict[str, Any], expected: tuple[str, str, dict[str, str]]) -> None:
    read_answer = read(answer)

    assert (read_answer.decision, read_answer.reason, dict(read_answer.parameters)) == expected
    assert read_answer.elapsed_seconds == 0.25


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"", "Invalid JSON"),
        (b"{'decision': 'allow'}", "Invalid JSON"),
        (b'"allow"', "Input should be an object"),
        (b"null", "Input should be an object"),
        (b'[{"decision": "allow"}]', "Input should be an object"),
        (b"{}", "decision: Field required"),
        (b'{"decision": "ALLOW"}', "decision: Input should be 'allow', 'deny' or 'hold'"),
        (b'{"decision": "approve"}', "decision: Input should be 'allow', 'deny' or 'hold'"),
        (b'{"decision": true}', "decision: Input should be 'allow', 'deny' or 'hold'"),
        (b'{"decision": "deny"}', "a deny needs a reason"),
        (b'{"decision": "hold", "reason": "   "}', "a hold needs a reason"),
        (b'{"decision": "deny", "reason": 42}', "reason: Input should be a valid string"),
        (b'{"decision": "deny", "reason": "x\\ny"}', "reason: String should match pattern"),
        (
            b'{"decision": "deny", "reason": "' + b"r" * (REASON_MAX_CHARS + 1) + b'"}',
            "reason: String should have at most 256",
        ),
        (b'{"decision": "allow", "parameters": ["Site"]}', "parameters: Input should be an object"),
        (b'{"decision": "allow", "parameters": {"Site": 3}}', "parameters.Site: Input should be a valid string"),
        (b'{"decision": "allow", "parameters": {"Site": null}}', "parameters.Site: Input should be a valid string"),
        (b'{"decision": "allow", "parameters": {"Site": ["a"]}}', "parameters.Site: Input should be a valid string"),
        (
            b'{"decision": "allow", "parameters": {"Site": "' + b"x" * (PARAMETER_VALUE_MAX_CHARS + 1) + b'"}}',
            "'Site' is longer than 2048",
        ),
        (
            b'{"decision": "allow", "parameters": {"PolicyName": "admin"}}',
            "sets 'PolicyName', not among the parameters",
        ),
        (
            b'{"decision": "deny", "reason": "r", "parameters": {"Other": "x"}}',
            "sets 'Other', not among the parameters",
        ),
        (b'{"decision": "allow", "allowProvisioning": true}', "allowProvisioning: Extra inputs are not permitted"),
        (b'{"decision": "allow", "reason": "' + b"r" * ANSWER_MAX_BYTES + b'"}', "larger than 16384 bytes"),
    ],
)
def test_a_malformed_answer_fails_naming_what_is_wrong(raw: bytes, problem: str) -> None:
    with pytest.raises(HookFailed) as failed:
        read(None, raw)

    assert problem in failed.value.message
    assert failed.value.elapsed_seconds == 0.25


@pytest.mark.parametrize(
    "answer",
    [
        {"decision": "deny", "reason": SECRET * 20},
        {"decision": "allow", "parameters": {"Site": 7, "Line": SECRET}, "note": SECRET},
        {"decision": SECRET},
    ],
)
def test_a_malformed_answer_is_never_repeated(answer: dict[str, Any]) -> None:
    with pytest.raises(HookFailed) as failed:
        read(answer)

    assert SECRET not in str(failed.value)


def test_an_undeclared_parameters_name_is_bounded() -> None:
    with pytest.raises(HookFailed) as failed:
        read({"decision": "allow", "parameters": {"P" * 10_000: "x"}})

    assert len(failed.value.message) < 300


# -- settings ---


def test_settings_read_from_the_configuration() -> None:
    settings = HookSettings.model_validate({"function": "fleet-hook", "timeoutSeconds": 2, "parameters": ["Site"]})

    assert (settings.function, settings.timeout_seconds, settings.parameters) == ("fleet-hook", 2.0, ("Site",))
    assert HookSettings(function="fleet-hook").timeout_seconds == 5.0


@pytest.mark.parametrize(
    "function",
    [
        "fleet-hook",
        "fleet-hook:live",
        "fleet-hook:$LATEST",
        "arn:aws:lambda:eu-west-1:123456789012:function:fleet-hook",
        "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:fleet-hook:7",
        "h" * 64,
    ],
)
def test_a_function_is_a_name_or_an_arn(function: str) -> None:
    assert HookSettings(function=function).function == function


@pytest.mark.parametrize(
    "function",
    [
        "",
        "*",
        "fleet-*",
        "h" * 65,
        "arn:aws:lambda:eu-west-1:123456789012:function:*",
        "arn:aws:lambda:*:123456789012:function:fleet-hook",
        "arn:aws:s3:::bucket",
        "fleet hook",
    ],
)
def test_a_wildcard_or_a_stranger_is_no_function(function: str) -> None:
    with pytest.raises(ValidationError, match="function"):
        HookSettings(function=function)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("timeoutSeconds", 0),
        ("timeoutSeconds", 5.001),
        ("timeoutSeconds", -1),
        ("parameters", ["AWS::IoT::Certificate::CommonName"]),
        ("parameters", ["Jitr::Certificate::NotAfter"]),
        ("parameters", ["AWS::Region"]),
        ("parameters", [""]),
        ("parameters", ["Site", "Site"]),
        ("retries", 3),
    ],
)
def test_settings_refuse(setting: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=setting):
        HookSettings.model_validate({"function": "fleet-hook", setting: value})


@pytest.mark.parametrize("budget", [0.5, 1.0, 5.0])
def test_the_clients_timeouts_fit_the_budget_with_no_retry(budget: float) -> None:
    config = budget_config(budget)

    assert config.connect_timeout + config.read_timeout == pytest.approx(budget)
    assert 0 < config.connect_timeout < config.read_timeout
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
