"""Device certificates: loading, AWS certificate ids and the parameters JITP derives from the subject."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from .templates.limits import CERTIFICATE_PARAMETER_PREFIX

# Subject attributes AWS IoT exposes as AWS::IoT::Certificate::<name> in JITP (documented list).
SUBJECT_PARAMETERS = {
    "CommonName": NameOID.COMMON_NAME,
    "SerialNumber": NameOID.SERIAL_NUMBER,
    "Country": NameOID.COUNTRY_NAME,
    "Organization": NameOID.ORGANIZATION_NAME,
    "OrganizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "DistinguishedNameQualifier": NameOID.DN_QUALIFIER,
    "StateName": NameOID.STATE_OR_PROVINCE_NAME,
}


class BadCertificate(ValueError):
    """The bytes are not one readable X.509 certificate."""


def load_certificate(pem: bytes | str) -> x509.Certificate:
    """One certificate from PEM text; raises `BadCertificate` with a readable reason."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise BadCertificate(f"not a readable PEM certificate: {exc}") from exc


def load_certificates(pem: bytes | str) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (possibly none)."""
    data = pem.encode() if isinstance(pem, str) else pem
    if not data.strip():
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise BadCertificate(f"not a readable PEM bundle: {exc}") from exc


def certificate_id(certificate: x509.Certificate) -> str:
    """AWS IoT's certificate id: the SHA-256 of the DER encoding, in lower-case hex."""
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def certificate_parameters(certificate: x509.Certificate) -> dict[str, str]:
    """The `AWS::IoT::Certificate::*` parameters JITP derives from a certificate: those in its subject, plus Id.

    An attribute that appears more than once contributes its first value.
    """
    parameters: dict[str, str] = {}
    for name, oid in SUBJECT_PARAMETERS.items():
        attributes = certificate.subject.get_attributes_for_oid(oid)
        if attributes:
            value = attributes[0].value
            parameters[CERTIFICATE_PARAMETER_PREFIX + name] = value if isinstance(value, str) else value.decode()
    parameters[CERTIFICATE_PARAMETER_PREFIX + "Id"] = certificate_id(certificate)
    return parameters
