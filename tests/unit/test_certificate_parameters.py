"""The AWS::IoT::Certificate::* parameters JITP derives from a certificate's subject."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.serialization import Encoding

from jitr.certificates import certificate_parameters
from jitr_tools import pki


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
