"""Device certificates: loading, AWS certificate ids, the parameters JITP derives from the subject, and the
validation of a device's chain and profile (`verify_device_certificate`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    ClientVerifier,
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from .outcomes import Reason
from .templates.fields import AWS_PREFIX, ID

# Subject attributes AWS IoT exposes as AWS::IoT::Certificate::<name> in JITP (documented list, `AWS_SUBJECT_NAMES`).
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
    except (ValueError, x509.InvalidVersion) as exc:
        raise BadCertificate(f"not a readable PEM certificate: {exc}") from exc


def load_certificates(pem: bytes | str) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (possibly none)."""
    data = pem.encode() if isinstance(pem, str) else pem
    if not data.strip():
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except (ValueError, x509.InvalidVersion) as exc:
        raise BadCertificate(f"not a readable PEM bundle: {exc}") from exc


def certificate_id(certificate: x509.Certificate) -> str:
    """AWS IoT's certificate id: the SHA-256 of the DER encoding, in lower-case hex."""
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def certificate_parameters(certificate: x509.Certificate) -> dict[str, str]:
    """The `AWS::IoT::Certificate::*` parameters JITP derives from a certificate: those in its subject, plus Id.

    An attribute that appears more than once contributes its first value. Raises `BadCertificate` when the subject
    cannot be decoded. jitr's own facts (`Jitr::Certificate::*`) are `jitr.facts.certificate_facts`.
    """
    parameters: dict[str, str] = {}
    try:
        for name, oid in SUBJECT_PARAMETERS.items():
            attributes = certificate.subject.get_attributes_for_oid(oid)
            if attributes:
                value = attributes[0].value
                parameters[AWS_PREFIX + name] = value if isinstance(value, str) else value.decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCertificate(f"the certificate's subject cannot be decoded: {exc}") from exc
    parameters[ID] = certificate_id(certificate)
    return parameters


# -- validation ---


class CertificateRejected(Exception):
    """The device certificate is refused. `reason` is a stable code, `message` a sentence a person can act on."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class Undecided(Exception):
    """No verdict can be given now, and the device is not at fault: the registered CA (or the trust root above it)
    can never accept a device under this profile, or the certificate becomes valid within the allowed clock skew.
    `reason` is a stable code (CA_UNUSABLE, CLOCK_SKEW), `message` a sentence a person can act on."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


# What cryptography's verifier (and AWS IoT, for device keys) accepts: RSA of at least 2048 bits, EC on these curves.
RSA_MIN_BITS = 2048
EC_CURVES = ("secp256r1", "secp384r1", "secp521r1")
SIGNATURE_HASHES = ("sha256", "sha384", "sha512")


@dataclass(frozen=True)
class DeviceProfile:
    """What a device certificate must be, beyond a valid chain to the registered CA.

    `strict` (the default) is RFC 5280 / Web PKI shaped: version 3 certificates, CAs with keyUsage. `aws-openssl`
    also accepts what AWS's documented openssl commands make: a version 1 device certificate issued directly by the
    registered CA, and a CA without keyUsage. Both accept the keys and signatures AWS IoT documents for device
    certificates, except DSA, which cryptography's verifier does not implement (refused as UNSUPPORTED_KEY).
    """

    name: str = "strict"
    allow_v1_leaf: bool = False
    allow_ca_without_key_usage: bool = False
    cn_pattern: str | None = None
    max_validity_days: int | None = None
    rsa_min_bits: int = RSA_MIN_BITS
    ec_curves: tuple[str, ...] = EC_CURVES
    hashes: tuple[str, ...] = SIGNATURE_HASHES

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
    clock_skew: timedelta = timedelta(0),
) -> VerifiedChain:
    """Verify a device certificate for client authentication against the registered CA (the trust anchor).

    With `root_pem`, the registered CA must itself be issued by that root, which becomes the anchor. Validity is
    compared at the one-second resolution X.509 encodes. Raises `Undecided` when the fault is not the device's (the
    CA or root can never accept a device under `profile`; a `notBefore` at most `clock_skew` ahead), and
    `CertificateRejected` with a stable reason for the certificate's own faults: MALFORMED_CERTIFICATE,
    NOT_YET_VALID, EXPIRED, VALIDITY_TOO_LONG, WEAK_KEY, UNSUPPORTED_KEY, WEAK_SIGNATURE, NOT_CLIENT_AUTH,
    CN_MISMATCH, EMPTY_SUBJECT, LEGACY_V1_CERTIFICATE, UNTRUSTED_CHAIN.
    """
    rules = PROFILES[profile] if isinstance(profile, str) else profile
    moment = at or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("`at` must be an aware datetime")
    moment = moment.replace(microsecond=0)  # X.509 times have whole seconds; notAfter itself is still valid
    try:
        ca = load_certificate(ca_pem)
        root = load_certificate(root_pem) if root_pem else None
    except BadCertificate as exc:
        raise Undecided(Reason.CA_UNUSABLE, f"the registered CA or the trust root cannot be read: {exc}") from exc
    problem = ca_problem(ca, rules, moment, root)
    if problem:
        raise Undecided(Reason.CA_UNUSABLE, problem)
    try:
        leaf = load_certificate(leaf_pem)
        decode_certificate(leaf)
        intermediates = [c for pem in intermediates_pem for c in load_certificates(pem)]
    except BadCertificate as exc:
        raise CertificateRejected(Reason.MALFORMED_CERTIFICATE, str(exc)) from exc

    _check_profile(leaf, moment, rules, clock_skew)
    if leaf.version == x509.Version.v1:
        return _verify_v1(leaf, ca, moment, rules, root)

    anchors = [root] if root else [ca]
    untrusted = [*intermediates, ca] if root else intermediates
    try:
        verified = _client_verifier(anchors, moment, _ca_policy(rules)).verify(leaf, untrusted)
    except VerificationError as exc:
        _blame_the_ca_if_relaxing_it_helps(leaf, anchors, untrusted, moment, rules, ca, exc)
        raise CertificateRejected(
            Reason.UNTRUSTED_CHAIN,
            f"the certificate does not chain to the registered CA {_subject(ca)} for client authentication ({exc})",
        ) from exc
    except ValueError as exc:  # something in the certificate the verifier cannot read
        raise CertificateRejected(Reason.MALFORMED_CERTIFICATE, f"the certificate cannot be verified: {exc}") from exc
    chain = tuple(verified.chain)
    if root is not None and ca not in chain:
        raise CertificateRejected(
            Reason.UNTRUSTED_CHAIN,
            f"the certificate chains to the root but not through the registered CA {_subject(ca)}",
        )
    return VerifiedChain(chain, rules.name)


_E = TypeVar("_E", bound=x509.ExtensionType)

# What cryptography raises for a certificate whose parts cannot be decoded (it parses them lazily, on access).
_UNDECODABLE = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


def decode_certificate(certificate: x509.Certificate) -> None:
    """Decode every part of `certificate` that validation reads. cryptography parses lazily, so a certificate whose
    outer structure loads can still hold a duplicate extension, an undecodable extension value or a subject string
    that is not valid UTF-8; raises `BadCertificate` for any of them instead of failing later, mid-decision."""
    try:
        _ = certificate.version
        for name in (certificate.subject, certificate.issuer):
            for attribute in name:
                _ = attribute.value
        for extension in certificate.extensions:
            _ = extension.value
        _ = certificate.not_valid_before_utc, certificate.not_valid_after_utc, certificate.serial_number
        certificate.public_key()
    except _UNDECODABLE as exc:
        raise BadCertificate(f"the certificate cannot be decoded: {exc}") from exc


def ca_problem(
    ca: x509.Certificate, rules: DeviceProfile, at: datetime, root: x509.Certificate | None = None
) -> str | None:
    """Why the registered CA (with `root` as the trust anchor above it) can never accept a device certificate under
    `rules`, or None. Every device it signed would fail for a reason that is the deployment's, not the device's."""
    where = f"the registered CA {_subject(ca)}"
    try:
        decode_certificate(ca)
    except BadCertificate as exc:
        return f"{where} cannot be decoded: {exc}"
    constraints = _extension(ca, x509.BasicConstraints)
    if constraints is None or not constraints.value.ca:
        return f"{where} is not a CA certificate (it needs basicConstraints CA:TRUE)"
    usage = _extension(ca, x509.KeyUsage)
    if usage is None and not rules.allow_ca_without_key_usage:
        return (
            f"{where} has no keyUsage extension, which the {rules.name} profile requires of a CA (RFC 5280); CAs made"
            " with AWS's documented openssl commands have none: choose the aws-openssl device profile, or re-issue"
            " the CA with keyUsage keyCertSign"
        )
    if usage is not None and not usage.value.key_cert_sign:
        return f"{where}'s keyUsage does not allow keyCertSign, so it cannot issue device certificates"
    if not ca.not_valid_before_utc <= at <= ca.not_valid_after_utc:
        return (
            f"{where} is not valid at {at.isoformat()} (valid from {ca.not_valid_before_utc.isoformat()} to"
            f" {ca.not_valid_after_utc.isoformat()})"
        )
    key = ca.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < RSA_MIN_BITS:
        return f"{where} has an RSA key of {key.key_size} bits; the verifier needs at least {RSA_MIN_BITS}"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in EC_CURVES:
        return f"{where} has an EC key on {key.curve.name}; the verifier accepts {', '.join(EC_CURVES)}"
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return f"{where} has a {type(key).__name__}; the verifier accepts RSA and EC CAs only"
    if root is None or root == ca:
        return None
    anchor = f"the trust root {_subject(root)}"
    if not root.not_valid_before_utc <= at <= root.not_valid_after_utc:
        return f"{anchor} is not valid at {at.isoformat()}"
    if ca.issuer != root.subject:
        return f"{anchor} did not issue {where} (its issuer is {ca.issuer.rfc4514_string() or '(empty)'})"
    try:
        ca.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return f"{anchor} did not issue {where}: the CA's signature does not verify with the root's key"
    digest = _hash_name(ca)
    if digest not in SIGNATURE_HASHES:
        return f"{where} is signed with {digest}; the verifier accepts {', '.join(SIGNATURE_HASHES)}"
    return None


def _extension(certificate: x509.Certificate, kind: type[_E]) -> x509.Extension[_E] | None:
    """The certificate's extension of this type, or None."""
    try:
        return certificate.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def _hash_name(certificate: x509.Certificate) -> str:
    try:
        digest = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:
        digest = None
    return digest.name if digest else certificate.signature_algorithm_oid.dotted_string


def _ca_policy(rules: DeviceProfile) -> ExtensionPolicy:
    ca_policy = ExtensionPolicy.webpki_defaults_ca()
    if rules.allow_ca_without_key_usage:
        ca_policy = ca_policy.may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, None)
    return ca_policy


# CN-only device certificates are the norm, so a subjectAltName is optional; cryptography's own rule that a leaf with
# an empty subject needs a critical subjectAltName (RFC 5280 4.2.1.6) is kept in `_check_profile`.
_EE_POLICY = ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
)


def _client_verifier(anchors: list[x509.Certificate], moment: datetime, ca_policy: ExtensionPolicy) -> ClientVerifier:
    return (
        PolicyBuilder()
        .store(Store(anchors))
        .time(moment)
        .extension_policies(ca_policy=ca_policy, ee_policy=_EE_POLICY)
        .build_client_verifier()
    )


def _blame_the_ca_if_relaxing_it_helps(
    leaf: x509.Certificate,
    anchors: list[x509.Certificate],
    untrusted: list[x509.Certificate],
    moment: datetime,
    rules: DeviceProfile,
    ca: x509.Certificate,
    failure: VerificationError,
) -> None:
    """A chain failure is the device's only if the device's certificate is at fault. Verify once more with every CA
    extension rule relaxed: if the leaf then verifies, what failed was the CA, and no device may be blamed for it."""
    try:
        _client_verifier(anchors, moment, ExtensionPolicy.permit_all()).verify(leaf, untrusted)
    except (VerificationError, ValueError):
        return
    raise Undecided(
        Reason.CA_UNUSABLE,
        f"the device's certificate is sound, but the registered CA {_subject(ca)} fails the {rules.name} profile's"
        f" rules for a CA ({failure})",
    )


def _subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


def _check_profile(leaf: x509.Certificate, moment: datetime, rules: DeviceProfile, clock_skew: timedelta) -> None:
    """The checks that give a precise reason before path validation runs."""
    if leaf.version == x509.Version.v1 and not rules.allow_v1_leaf:
        raise CertificateRejected(
            Reason.LEGACY_V1_CERTIFICATE,
            "the device certificate is X.509 version 1 (no extensions, so nothing says it is a client certificate); "
            "issue version 3 certificates, or configure the aws-openssl device profile",
        )
    if moment < leaf.not_valid_before_utc:
        ahead = leaf.not_valid_before_utc - moment
        if ahead <= clock_skew:
            raise Undecided(
                Reason.CLOCK_SKEW,
                f"the certificate is valid from {leaf.not_valid_before_utc.isoformat()}, {ahead.total_seconds():.0f} s"
                f" from now, within the allowed clock skew of {clock_skew.total_seconds():.0f} s; it is decided again"
                " when redelivered",
            )
        raise CertificateRejected(
            Reason.NOT_YET_VALID,
            f"the certificate is valid from {leaf.not_valid_before_utc.isoformat()}; check the clock",
        )
    if moment > leaf.not_valid_after_utc:
        raise CertificateRejected(Reason.EXPIRED, f"the certificate expired on {leaf.not_valid_after_utc.isoformat()}")
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    if rules.max_validity_days is not None and lifetime > timedelta(days=rules.max_validity_days):
        raise CertificateRejected(
            Reason.VALIDITY_TOO_LONG,
            f"the certificate is valid for {lifetime.days} days; this fleet allows at most {rules.max_validity_days}",
        )
    key = leaf.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < rules.rsa_min_bits:
            raise CertificateRejected(
                Reason.WEAK_KEY, f"RSA key of {key.key_size} bits; at least {rules.rsa_min_bits} bits are required"
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in rules.ec_curves:
            raise CertificateRejected(
                Reason.WEAK_KEY, f"EC key on {key.curve.name}; use one of {', '.join(rules.ec_curves)}"
            )
    elif isinstance(key, dsa.DSAPublicKey):
        raise CertificateRejected(
            Reason.UNSUPPORTED_KEY,
            "DSA key: AWS IoT accepts DSA with SHA-256, but jitr's profiles do not (cryptography's verifier does not"
            " implement DSA); use RSA or EC",
        )
    else:
        raise CertificateRejected(Reason.UNSUPPORTED_KEY, f"{type(key).__name__} keys are not accepted; use RSA or EC")
    digest = _hash_name(leaf)
    if digest not in rules.hashes:
        raise CertificateRejected(
            Reason.WEAK_SIGNATURE,
            f"signed with {digest}; AWS IoT and this fleet accept {', '.join(h.upper() for h in rules.hashes)}",
        )
    if len(leaf.subject) == 0:
        san = _extension(leaf, x509.SubjectAlternativeName)
        if san is None or not san.critical:
            raise CertificateRejected(
                Reason.EMPTY_SUBJECT,
                "the certificate has an empty subject and no critical subjectAltName (RFC 5280 4.2.1.6), so it names"
                " no device",
            )
    usages = _extension(leaf, x509.ExtendedKeyUsage)
    if usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usages.value:
        raise CertificateRejected(
            Reason.NOT_CLIENT_AUTH, "the certificate's extended key usage does not allow client authentication"
        )
    if rules.cn_pattern is not None:
        names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = str(names[0].value) if names else ""
        if not re.fullmatch(rules.cn_pattern, common_name):
            raise CertificateRejected(
                Reason.CN_MISMATCH,
                f"common name {common_name!r} does not match this fleet's pattern {rules.cn_pattern!r}",
            )


def _verify_v1(
    leaf: x509.Certificate,
    ca: x509.Certificate,
    moment: datetime,
    rules: DeviceProfile,
    root: x509.Certificate | None,
) -> VerifiedChain:
    """Version 1 leaves (aws-openssl profile only): x509.verification refuses them, so check the signature directly.

    Only a leaf issued directly by the registered CA is accepted; the CA (and the trust root above it, when one is
    configured) passed `ca_problem` already, so it is valid now and, with a root, issued by it.
    """
    if leaf.issuer != ca.subject:
        raise CertificateRejected(
            Reason.UNTRUSTED_CHAIN, f"the certificate was not issued by the registered CA {_subject(ca)}"
        )
    try:
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as exc:
        raise CertificateRejected(
            Reason.UNTRUSTED_CHAIN, f"the signature does not verify with the registered CA {_subject(ca)}'s key"
        ) from exc
    chain = (leaf, ca, root) if root is not None and root != ca else (leaf, ca)
    return VerifiedChain(chain, rules.name)
