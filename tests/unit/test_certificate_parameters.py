"""The parameters a certificate gives a template: AWS's `AWS::IoT::Certificate::*` (what JITP derives from the
subject) and jitr's `Jitr::Certificate::*` facts (subjectAltName, notAfter, the public key's SHA-256, declared
extensions)."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from jitr.certificates import SUBJECT_PARAMETERS, certificate_parameters
from jitr.facts import certificate_facts, extension_text, subject_public_key_info
from jitr.templates.fields import (
    AWS_SUBJECT_NAMES,
    is_certificate_field,
    neutral_parameters,
    unknown_field_problem,
)
from jitr_tools import pki

SAN = "Jitr::Certificate::SubjectAlternativeName::"
BATCH_OID = "1.3.6.1.4.1.55555.1.1"


def extension(value: bytes, oid: str = BATCH_OID) -> x509.UnrecognizedExtension:
    """An extension cryptography does not know, whose extnValue is `value` (DER)."""
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value)


def test_parameters_are_those_in_the_subject_plus_the_id(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "sensor-1", serial_number="SN-1", organization="Acme", country="DE")
    params = certificate_parameters(device.certificate)
    assert params == {
        "AWS::IoT::Certificate::CommonName": "sensor-1",
        "AWS::IoT::Certificate::SerialNumber": "SN-1",
        "AWS::IoT::Certificate::Organization": "Acme",
        "AWS::IoT::Certificate::Country": "DE",
        "AWS::IoT::Certificate::Id": hashlib.sha256(device.certificate.public_bytes(Encoding.DER)).hexdigest(),
    }


def test_absent_subject_fields_are_absent(issuing_ca: pki.Issued) -> None:
    params = certificate_parameters(pki.make_device(issuing_ca, "only-cn").certificate)
    assert set(params) == {"AWS::IoT::Certificate::CommonName", "AWS::IoT::Certificate::Id"}


def test_the_subject_attributes_read_are_the_names_the_templates_know() -> None:
    assert tuple(SUBJECT_PARAMETERS) == AWS_SUBJECT_NAMES


# -- jitr's facts ---


def test_facts_hold_awss_parameters_and_jitrs(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(
        issuing_ca,
        "sensor-1",
        san=[
            "sensor-1.fleet.example",
            x509.UniformResourceIdentifier("urn:dev:ops:32473-sensor-1"),
            "192.0.2.7",
            x509.RFC822Name("ops@fleet.example"),
            "2001:db8:0:0:0:0:0:7",
        ],
        extensions=[extension(pki.der_element(0x0C, b"B-2031-07"))],
    )
    facts = certificate_facts(device.certificate, {"Batch": BATCH_OID})
    not_after = device.certificate.not_valid_after_utc
    assert facts.values == certificate_parameters(device.certificate) | {
        SAN + "DNS": "sensor-1.fleet.example",
        SAN + "DNS::1": "sensor-1.fleet.example",
        SAN + "URI": "urn:dev:ops:32473-sensor-1",
        SAN + "URI::1": "urn:dev:ops:32473-sensor-1",
        SAN + "Email": "ops@fleet.example",
        SAN + "Email::1": "ops@fleet.example",
        SAN + "IP": "192.0.2.7",
        SAN + "IP::1": "192.0.2.7",
        SAN + "IP::2": "2001:db8::7",  # as Python's ipaddress writes it: compressed
        "Jitr::Certificate::NotAfter": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Jitr::Certificate::NotAfter::Epoch": str(int(not_after.timestamp())),
        "Jitr::Certificate::PublicKey::SHA256": hashlib.sha256(
            device.certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        ).hexdigest(),
        "Jitr::Certificate::Extension::Batch": "B-2031-07",
    }
    assert facts.unreadable == {}


def test_a_certificate_without_a_subject_alternative_name_gives_none(issuing_ca: pki.Issued) -> None:
    facts = certificate_facts(pki.make_device(issuing_ca, "plain").certificate)
    assert not [name for name in facts.values if name.startswith(SAN)]


def test_an_extension_declared_but_not_carried_is_absent_not_unreadable(issuing_ca: pki.Issued) -> None:
    facts = certificate_facts(pki.make_device(issuing_ca, "plain").certificate, {"Batch": BATCH_OID})
    assert "Jitr::Certificate::Extension::Batch" not in facts.values
    assert facts.unreadable == {}


def test_an_extension_carried_but_not_declared_is_not_given(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "d", extensions=[extension(pki.der_element(0x0C, b"B-1"))])
    assert not [name for name in certificate_facts(device.certificate).values if "Extension" in name]


@pytest.mark.parametrize(
    ("der", "text"),
    [
        (pki.der_element(0x0C, "Zürich-7".encode()), "Zürich-7"),  # UTF8String
        (pki.der_element(0x13, b"Model 7 (rev. B)"), "Model 7 (rev. B)"),  # PrintableString
        (pki.der_element(0x16, b"ops@fleet.example"), "ops@fleet.example"),  # IA5String
        (pki.der_element(0x1A, b"a~b"), "a~b"),  # VisibleString
        (pki.der_element(0x04, b"plant-7"), "plant-7"),  # OCTET STRING of UTF-8 text
        (pki.der_element(0x0C, b""), ""),
        (pki.der_element(0x0C, b"x" * 200), "x" * 200),  # a long-form length
    ],
)
def test_extension_values_that_are_text(der: bytes, text: str) -> None:
    assert extension_text(der) == text


@pytest.mark.parametrize(
    ("der", "said"),
    [
        (pki.der_element(0x02, b"\x07"), "holds an INTEGER, not text"),
        (pki.der_element(0x30, pki.der_element(0x0C, b"a")), "holds a SEQUENCE, not text"),
        (pki.der_element(0x0C, b"\xff\xfe"), "holds a UTF8String that is not valid UTF-8"),
        (pki.der_element(0x04, b"\x00\xff"), "holds an OCTET STRING that is not valid UTF-8"),
        (pki.der_element(0x16, "é".encode()), "holds an IA5String that is not valid ASCII"),
        (pki.der_element(0x13, b"a@b"), "holds a PrintableString with characters its type does not allow"),
        (pki.der_element(0x1A, b"a\x07"), "holds a VisibleString with characters its type does not allow"),
        (pki.der_element(0x0C, b"a") + b"\x00", "holds more than one DER value, not text"),
        (b"\x0c\x05ab", "is not DER: truncated"),
        (b"\x0c\x81\x05abcde", "is not DER: a length not in its shortest form"),
        (b"\x1f\x81\x01\x00", "is not DER: a multi-byte tag"),
        (b"", "is not DER: truncated"),
    ],
)
def test_extension_values_that_are_not_text_say_what_they_hold(der: bytes, said: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(said) + "$"):
        extension_text(der)


def test_an_extension_that_is_not_text_is_unreadable_not_a_bad_certificate(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "d", extensions=[extension(pki.der_element(0x02, b"\x07"))])
    facts = certificate_facts(device.certificate, {"Batch": BATCH_OID})
    assert facts.unreadable == {
        "Jitr::Certificate::Extension::Batch": f"the certificate's extension {BATCH_OID} (Batch) holds an INTEGER,"
        " not text"
    }
    assert facts.given({"Jitr::Certificate::Extension::Batch"}) == {}
    assert facts.unreadable_in({"AWS::IoT::Certificate::CommonName"}) == []  # a template that does not read it
    assert facts.unreadable_in({"Jitr::Certificate::Extension::Batch"}) == [
        f"the certificate's extension {BATCH_OID} (Batch) holds an INTEGER, not text; the template reads it as"
        " Jitr::Certificate::Extension::Batch"
    ]


def test_an_extension_cryptography_knows_is_read_from_its_der(issuing_ca: pki.Issued) -> None:
    # subjectKeyIdentifier is an OCTET STRING: declared, its bytes are read as text when they are UTF-8
    device = pki.make_device(issuing_ca, "d", extensions=[x509.SubjectKeyIdentifier(b"kid-7")])
    assert certificate_facts(device.certificate, {"Kid": "2.5.29.14"}).values["Jitr::Certificate::Extension::Kid"] == (
        "kid-7"
    )


# -- the public key's SHA-256 ---


@pytest.mark.parametrize("key", ["ec256", "ec384", "rsa2048"])
def test_the_public_key_digest_is_over_the_certificates_subject_public_key_info(
    issuing_ca: pki.Issued, key: pki.KeyKind
) -> None:
    certificate = pki.make_device(issuing_ca, "d", key=key).certificate
    assert subject_public_key_info(certificate) == certificate.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )


def test_the_public_key_digest_reads_a_version_1_certificate(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "d")
    v1 = pki.resign(device, issuing_ca.key, version1=True).certificate
    assert subject_public_key_info(v1) == subject_public_key_info(device.certificate)


def test_the_public_key_digest_is_of_the_bytes_the_certificate_holds_not_a_re_encoding(
    issuing_ca: pki.Issued,
) -> None:
    # Given a certificate whose EC key is written as a compressed point (a re-encoding writes it uncompressed)
    device = pki.make_device(issuing_ca, "d", key="ec256")
    children = pki.der_children(device.certificate.tbs_certificate_bytes)
    spki_at = 6  # version, serial, signature, issuer, validity, subject, then subjectPublicKeyInfo
    algorithm = pki.der_children(children[spki_at])[0]
    point = device.certificate.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    compressed = pki.der_element(0x30, algorithm + pki.der_element(0x03, b"\x00" + point))
    children[spki_at] = compressed
    tbs = pki.der_element(0x30, b"".join(children))
    certificate = x509.load_der_x509_certificate(pki.sign_tbs(tbs, issuing_ca.key))
    # Then the digest is of the certificate's own bytes, which is what a manifest made from the certificate holds
    facts = certificate_facts(certificate)
    assert facts.values["Jitr::Certificate::PublicKey::SHA256"] == hashlib.sha256(compressed).hexdigest()
    assert compressed != certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


# -- names ---


@pytest.mark.parametrize(
    ("name", "filled"),
    [
        ("AWS::IoT::Certificate::CommonName", True),
        ("AWS::IoT::Certificate::Id", True),
        ("AWS::IoT::Certificate::Email", False),  # not one AWS documents
        (SAN + "DNS", True),
        (SAN + "DNS::1", True),
        (SAN + "IP::12", True),
        (SAN + "Email::3", True),
        (SAN + "DNS::0", False),  # numbered from 1
        (SAN + "DNS::01", False),
        (SAN + "dns", False),
        (SAN + "OtherName", False),
        ("Jitr::Certificate::NotAfter", True),
        ("Jitr::Certificate::NotAfter::Epoch", True),
        ("Jitr::Certificate::PublicKey::SHA256", True),
        ("Jitr::Certificate::Extension::Batch", True),  # declared below
        ("Jitr::Certificate::Extension::Other", False),  # not declared
        ("Site", False),
    ],
)
def test_which_names_the_certificate_fills(name: str, filled: bool) -> None:
    assert is_certificate_field(name, {"Batch": BATCH_OID}) is filled


@pytest.mark.parametrize(
    ("name", "known"),
    [
        (SAN + "URI::2", True),
        ("Jitr::Certificate::Extension::Anything_7", True),  # its declaration is synth's to check
        ("Jitr::Certificate::Extension::not valid", False),
        ("Jitr::Certificate::Extension::", False),
        ("Jitr::Certificate::SubjectAltName::DNS", False),
        ("Jitr::Certificate::NotBefore", False),
        ("AWS::IoT::Certificate::Anything", True),  # AWS's names are not jitr's to judge
        ("Site", True),
    ],
)
def test_a_jitr_name_no_certificate_fills_is_named(name: str, known: bool) -> None:
    assert (unknown_field_problem(name) is None) is known


def test_neutral_values_cover_every_certificate_field_a_template_declares() -> None:
    declared = ["AWS::IoT::Certificate::Id", SAN + "DNS::2", "Jitr::Certificate::Extension::Batch", "Site"]
    assert neutral_parameters(declared, {"Batch": BATCH_OID}) == {
        "AWS::IoT::Certificate::Id": "0" * 64,
        SAN + "DNS::2": "0",
        "Jitr::Certificate::Extension::Batch": "0",
    }


def test_an_ip_subject_alternative_name_is_written_as_python_writes_the_address(issuing_ca: pki.Issued) -> None:
    address = ipaddress.ip_address("::ffff:192.0.2.1")
    device = pki.make_device(issuing_ca, "d", san=[x509.IPAddress(address)])
    assert certificate_facts(device.certificate).values[SAN + "IP"] == str(address)


def test_not_after_past_2049_is_written_the_same_way(issuing_ca: pki.Issued) -> None:
    # 2049 is encoded as UTCTime, 2050 on as GeneralizedTime (RFC 5280 4.1.2.5); the fact reads the same
    for year in (2049, 2050):
        start = dt.datetime(year, 12, 31, 23, 59, 59, tzinfo=dt.UTC) - dt.timedelta(days=1)
        device = pki.make_device(issuing_ca, "d", not_before=start, days=1)
        values = certificate_facts(device.certificate).values
        assert values["Jitr::Certificate::NotAfter"] == f"{year}-12-31T23:59:59Z"
        assert values["Jitr::Certificate::NotAfter::Epoch"] == str(
            int(dt.datetime(year, 12, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp())
        )
