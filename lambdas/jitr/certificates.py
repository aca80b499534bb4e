"""Device certificates: loading, AWS certificate ids, the parameters JITP derives from the subject, and the
validation of a device's chain and profile (`verify_device_certificate`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError

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


# -- validation ---


class CertificateRejected(Exception):
    """The device certificate is refused. `reason` is a stable code, `message` a sentence a person can act on."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class DeviceProfile:
    """What a device certificate must be, beyond a valid chain to the registered CA.

    `strict` (the default) is RFC 5280 / Web PKI shaped: version 3 certificates, CAs with keyUsage. `aws-openssl`
    also accepts what AWS's documented openssl commands make: a version 1 device certificate issued directly by the
    registered CA, and a CA without keyUsage.
    """

    name: str = "strict"
    allow_v1_leaf: bool = False
    allow_ca_without_key_usage: bool = False
    cn_pattern: str | None = None
    max_validity_days: int | None = None
    rsa_min_bits: int = 2048
    ec_curves: tuple[str, ...] = ("secp256r1", "secp384r1")
    hashes: tuple[str, ...] = ("sha256", "sha384", "sha512")

    def with_options(self, cn_pattern: str | None = None, max_validity_days: int | None = None) -> DeviceProfile:
        return replace(self, cn_pattern=cn_pattern, max_validity_days=max_validity_days)


PROFILES = {
    "strict": DeviceProfile(),
    "aws-openssl": DeviceProfile(name="aws-openssl", allow_v1_leaf=True, allow_ca_without_key_usage=True),
}


@dataclass(frozen=True)
class VerifiedChain:
    """The chain that verified, leaf first, ending at the trust anchor."""

    chain: tuple[x509.Certificate, ...]
    profile: str

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


def verify_device_certificate(
    leaf_pem: bytes | str,
    ca_pem: bytes | str,
    intermediates_pem: Sequence[bytes | str] = (),
    at: datetime | None = None,
    *,
    profile: DeviceProfile | str = "strict",
    root_pem: bytes | str | None = None,
) -> VerifiedChain:
    """Verify a device certificate for client authentication against the registered CA (the trust anchor).

    With `root_pem`, the registered CA must itself chain to that root, which becomes the anchor. Raises
    `CertificateRejected` with a stable reason: MALFORMED_CERTIFICATE, NOT_YET_VALID, EXPIRED, VALIDITY_TOO_LONG,
    WEAK_KEY, UNSUPPORTED_KEY, WEAK_SIGNATURE, NOT_CLIENT_AUTH, CN_MISMATCH, LEGACY_V1_CERTIFICATE, UNTRUSTED_CHAIN.
    """
    rules = PROFILES[profile] if isinstance(profile, str) else profile
    moment = at or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("`at` must be an aware datetime")
    try:
        leaf = load_certificate(leaf_pem)
        ca = load_certificate(ca_pem)
        intermediates = [c for pem in intermediates_pem for c in load_certificates(pem)]
        root = load_certificate(root_pem) if root_pem else None
    except BadCertificate as exc:
        raise CertificateRejected("MALFORMED_CERTIFICATE", str(exc)) from exc

    _check_profile(leaf, moment, rules)
    if leaf.version == x509.Version.v1:
        return _verify_v1(leaf, ca, moment, rules)

    anchors = [root] if root else [ca]
    untrusted = [*intermediates, ca] if root else intermediates
    ca_policy = ExtensionPolicy.webpki_defaults_ca()
    if rules.allow_ca_without_key_usage:
        ca_policy = ca_policy.may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, None)
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName,
        Criticality.AGNOSTIC,
        None,  # CN-only device certificates are the norm
    )
    verifier = (
        PolicyBuilder()
        .store(Store(anchors))
        .time(moment)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(leaf, untrusted)
    except VerificationError as exc:
        raise CertificateRejected(
            "UNTRUSTED_CHAIN",
            f"the certificate does not chain to the registered CA {_subject(ca)} for client authentication ({exc})",
        ) from exc
    chain = tuple(verified.chain)
    if root is not None and ca not in chain:
        raise CertificateRejected(
            "UNTRUSTED_CHAIN", f"the certificate chains to the root but not through the registered CA {_subject(ca)}"
        )
    return VerifiedChain(chain, rules.name)


def _subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


def _check_profile(leaf: x509.Certificate, moment: datetime, rules: DeviceProfile) -> None:
    """The checks that give a precise reason before path validation runs."""
    if leaf.version == x509.Version.v1 and not rules.allow_v1_leaf:
        raise CertificateRejected(
            "LEGACY_V1_CERTIFICATE",
            "the device certificate is X.509 version 1 (no extensions, so nothing says it is a client certificate); "
            "issue version 3 certificates, or configure the aws-openssl device profile",
        )
    if moment < leaf.not_valid_before_utc:
        raise CertificateRejected(
            "NOT_YET_VALID", f"the certificate is valid from {leaf.not_valid_before_utc.isoformat()}; check the clock"
        )
    if moment > leaf.not_valid_after_utc:
        raise CertificateRejected("EXPIRED", f"the certificate expired on {leaf.not_valid_after_utc.isoformat()}")
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    if rules.max_validity_days is not None and lifetime > timedelta(days=rules.max_validity_days):
        raise CertificateRejected(
            "VALIDITY_TOO_LONG",
            f"the certificate is valid for {lifetime.days} days; this fleet allows at most {rules.max_validity_days}",
        )
    key = leaf.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < rules.rsa_min_bits:
            raise CertificateRejected(
                "WEAK_KEY", f"RSA key of {key.key_size} bits; at least {rules.rsa_min_bits} bits are required"
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in rules.ec_curves:
            raise CertificateRejected(
                "WEAK_KEY", f"EC key on {key.curve.name}; use one of {', '.join(rules.ec_curves)}"
            )
    else:
        raise CertificateRejected("UNSUPPORTED_KEY", f"{type(key).__name__} keys are not accepted; use RSA or EC")
    try:
        digest = leaf.signature_hash_algorithm
    except UnsupportedAlgorithm:
        digest = None
    if digest is None or digest.name not in rules.hashes:
        name = digest.name if digest else leaf.signature_algorithm_oid.dotted_string
        raise CertificateRejected(
            "WEAK_SIGNATURE",
            f"signed with {name}; AWS IoT and this fleet accept {', '.join(h.upper() for h in rules.hashes)}",
        )
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise CertificateRejected(
            "NOT_CLIENT_AUTH", "the certificate's extended key usage does not allow client authentication"
        )
    if rules.cn_pattern is not None:
        names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = str(names[0].value) if names else ""
        if not re.fullmatch(rules.cn_pattern, common_name):
            raise CertificateRejected(
                "CN_MISMATCH", f"common name {common_name!r} does not match this fleet's pattern {rules.cn_pattern!r}"
            )


def _verify_v1(leaf: x509.Certificate, ca: x509.Certificate, moment: datetime, rules: DeviceProfile) -> VerifiedChain:
    """Version 1 leaves (aws-openssl profile only): x509.verification refuses them, so check the signature directly.

    Only a leaf issued directly by the registered CA is accepted, and the CA must be valid now.
    """
    if leaf.issuer != ca.subject:
        raise CertificateRejected(
            "UNTRUSTED_CHAIN", f"the certificate was not issued by the registered CA {_subject(ca)}"
        )
    if not ca.not_valid_before_utc <= moment <= ca.not_valid_after_utc:
        raise CertificateRejected("UNTRUSTED_CHAIN", f"the registered CA {_subject(ca)} is not valid now")
    try:
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CertificateRejected(
            "UNTRUSTED_CHAIN", f"the signature does not verify with the registered CA {_subject(ca)}'s key"
        ) from exc
    return VerifiedChain((leaf, ca), rules.name)
