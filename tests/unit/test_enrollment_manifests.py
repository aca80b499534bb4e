"""A certificate's enrollment identity, and manifests read and checked before anything is imported: CSV and JSON, each
malformed row named by its line, duplicates within a file, the edges of each identity's format."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import ValidationError

from jitr.enrollment import EnrollmentSettings, ManifestError, Row, identity, normalized, read_manifest
from jitr_tools import pki

FINGERPRINT = "ab" * 32


@pytest.fixture(scope="module")
def device(issuing_ca: pki.Issued) -> pki.Issued:
    return pki.make_device(issuing_ca, "sensor-0001")


def test_identity_is_what_a_manifest_lists(device: pki.Issued) -> None:
    certificate = device.certificate
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert identity(certificate, "serialNumber") == f"{certificate.serial_number:x}"
    assert identity(certificate, "commonName") == "sensor-0001"
    assert identity(certificate, "publicKeySha256") == hashlib.sha256(spki).hexdigest()
    assert identity(certificate, "serialNumber") == normalized("serialNumber", f"000{certificate.serial_number:X}")


def test_the_product_setting_takes_only_the_three_identities() -> None:
    assert EnrollmentSettings.model_validate({"by": "commonName"}).by == "commonName"
    with pytest.raises(ValidationError):
        EnrollmentSettings.model_validate({"by": "macAddress"})
    with pytest.raises(ValidationError):
        EnrollmentSettings.model_validate({"by": "commonName", "batch": "b1"})


@pytest.mark.parametrize(
    ("by", "value", "kept"),
    [
        ("serialNumber", "0A1b", "a1b"),
        ("serialNumber", "0", "0"),
        ("serialNumber", "00" + "f" * 40, "f" * 40),  # 20 octets, leading zeros aside
        ("publicKeySha256", FINGERPRINT.upper(), FINGERPRINT),
        ("commonName", "sensor 7.example", "sensor 7.example"),
        ("commonName", "x" * 64, "x" * 64),
    ],
)
def test_values_are_kept_as_identity_gives_them(by: str, value: str, kept: str) -> None:
    assert normalized(by, value) == kept


@pytest.mark.parametrize(
    ("by", "value", "why"),
    [
        ("serialNumber", "", "empty"),
        ("serialNumber", "12:34", "not hexadecimal"),
        ("serialNumber", "0x12", "not hexadecimal"),
        ("serialNumber", "f" * 41, "longer than 40"),
        ("publicKeySha256", "ab" * 31 + "a", "not a SHA-256"),
        ("publicKeySha256", "ab" * 32 + "a", "not a SHA-256"),
        ("publicKeySha256", "g" * 64, "not a SHA-256"),
        ("commonName", "x" * 65, "longer than 64"),
        ("commonName", "a\tb", "control character"),
    ],
)
def test_malformed_values_say_why(by: str, value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        normalized(by, value)


def test_a_csv_manifest_names_its_column_and_may_carry_a_batch() -> None:
    text = 'batch,serialNumber,note\nB1,0A,first\n\nB2,"0b",second\n'
    manifest = read_manifest("batch-1.csv", text)
    assert manifest.by == "serialNumber"
    assert manifest.rows == (Row(2, "a", "B1"), Row(4, "b", "B2"))
    assert manifest.total == 2
    assert manifest.problems == ()


def test_every_malformed_csv_row_is_named_by_its_line() -> None:
    text = "\ufeffserialNumber\n01\nzz\n\n,\n0001\n" + "3\n"
    manifest = read_manifest("m.csv", text)
    assert manifest.problems == (
        "line 3: serial number 'zz' is not hexadecimal",
        "line 5: empty",
        "line 6: duplicate of line 2 (1)",
    )
    assert manifest.total == 5  # the blank line is no row


def test_a_quoted_value_over_two_lines_is_named_by_the_line_it_starts_on() -> None:
    manifest = read_manifest("m.csv", 'commonName\n"a\nb"\nc\nc\n')
    assert manifest.problems == ("line 2: common name holds a control character", "line 5: duplicate of line 4 (c)")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "no header row"),
        ("serial\n01\n", "must name one of"),
        ("serialNumber,commonName\n01,a\n", r"or give --by"),
        ("serialNumber,serialNumber\n01,02\n", "twice"),
        ('serialNumber\n"' + "1" * 200_000 + '"\n', "not a CSV file"),
    ],
)
def test_a_csv_file_that_cannot_be_read_is_refused_whole(text: str, why: str) -> None:
    with pytest.raises(ManifestError, match=why):
        read_manifest("m.csv", text)


def test_by_picks_a_column_and_must_be_in_the_header() -> None:
    assert read_manifest("m.csv", "serialNumber,commonName\n01,a\n", by="commonName").rows == (Row(2, "a"),)
    with pytest.raises(ManifestError, match="no publicKeySha256 column"):
        read_manifest("m.csv", "serialNumber\n01\n", by="publicKeySha256")
    with pytest.raises(ManifestError, match="unknown identity"):
        read_manifest("m.csv", "serialNumber\n01\n", by="mac")


def test_a_json_manifest_of_objects_or_of_strings() -> None:
    objects = read_manifest("m.json", f'[{{"publicKeySha256": "{FINGERPRINT}", "batch": "B9"}}]')
    assert (objects.by, objects.rows) == ("publicKeySha256", (Row(1, FINGERPRINT, "B9"),))
    strings = read_manifest("list.txt", '["sensor-1", "sensor-2"]', by="commonName")
    assert strings.rows == (Row(1, "sensor-1"), Row(2, "sensor-2"))


def test_every_malformed_json_entry_is_named_by_its_number() -> None:
    text = '[{"serialNumber": "01"}, {"serialNumber": 2}, {"serialNumber": "x"}, {"serialNumber": "1"}, {}]'
    assert read_manifest("m.json", text).problems == (
        "entry 2: not a string (the serialNumber must be one)",
        "entry 3: serial number 'x' is not hexadecimal",
        "entry 4: duplicate of entry 1 (1)",
        "entry 5: not a string (the serialNumber must be one)",
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[1, 2", "not JSON"),
        ('{"serialNumber": "01"}', "a list of strings or of objects"),
        ('["01"]', "needs --by"),
        ('[{"serial": "01"}]', "must name one of"),
    ],
)
def test_a_json_file_that_cannot_be_read_is_refused_whole(text: str, why: str) -> None:
    with pytest.raises(ManifestError, match=why):
        read_manifest("m.json", text)
