"""The validator's boundaries, one second or one bit either side: validity at X.509's one-second resolution, clock
skew, key sizes and curves as AWS IoT documents them, the empty-subject rule, and whose fault a chain failure is."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from jitr.certificates import CertificateRejected, Undecided, VerifiedChain, verify_device_certificate
from jitr_tools import pki

SECOND = dt.timedelta(seconds=1)
HALF_SECOND = dt.timedelta(milliseconds=500)


def leaf(
    ca: pki.Issued,
    public_key: CertificatePublicKeyTypes,
    *,
    subject: x509.Name | None = None,
    san: x509.SubjectAlternativeName | None = None,
    san_critical: bool = False,
) -> str:
    """A device certificate for any public key, signed by `ca`."""
    start = pki.now() - dt.timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge")]) if subject is None else subject)
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)  # type: ignore[arg-type]
    )
    if san is not None:
        builder = builder.add_extension(san, critical=san_critical)
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def verdict(device_pem: str, ca: pki.Issued, **kwargs: object) -> str:
    try:
        verify_device_certificate(device_pem, ca.pem, **kwargs)  # type: ignore[arg-type]
    except (CertificateRejected, Undecided) as exc:
        return exc.reason
    return "ACCEPTED"


# -- validity ---


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (-SECOND, "NOT_YET_VALID"),
        (-HALF_SECOND, "NOT_YET_VALID"),  # 11:59:59.5 is second 11:59:59, before a notBefore of 12:00:00
        (dt.timedelta(0), "ACCEPTED"),
        (HALF_SECOND, "ACCEPTED"),
    ],
)
def test_not_before_at_one_second_resolution(issuing_ca: pki.Issued, offset: dt.timedelta, expected: str) -> None:
    device = pki.make_device(issuing_ca, "d", not_before=pki.now() + dt.timedelta(days=1))
    moment = device.certificate.not_valid_before_utc + offset
    assert verdict(device.pem, issuing_ca, at=moment) == expected


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (-SECOND, "ACCEPTED"),
        (dt.timedelta(0), "ACCEPTED"),
        (HALF_SECOND, "ACCEPTED"),  # still second notAfter, which RFC 5280 includes
        (SECOND, "EXPIRED"),
    ],
)
def test_not_after_at_one_second_resolution(issuing_ca: pki.Issued, offset: dt.timedelta, expected: str) -> None:
    device = pki.make_device(issuing_ca, "d", days=2)
    assert verdict(device.pem, issuing_ca, at=device.certificate.not_valid_after_utc + offset) == expected


@pytest.mark.parametrize(
    ("ahead_s", "skew_s", "expected"),
    [(300, 300, "CLOCK_SKEW"), (301, 300, "NOT_YET_VALID"), (1, 0, "NOT_YET_VALID"), (60, 300, "CLOCK_SKEW")],
)
def test_clock_skew_is_not_the_devices_fault(issuing_ca: pki.Issued, ahead_s: int, skew_s: int, expected: str) -> None:
    device = pki.make_device(issuing_ca, "d", not_before=pki.now() + dt.timedelta(days=1))
    moment = device.certificate.not_valid_before_utc - dt.timedelta(seconds=ahead_s)
    assert verdict(device.pem, issuing_ca, at=moment, clock_skew=dt.timedelta(seconds=skew_s)) == expected


# -- keys, as AWS IoT documents them for device certificates ---


@pytest.mark.parametrize(("bits", "expected"), [(2047, "WEAK_KEY"), (2048, "ACCEPTED"), (3072, "ACCEPTED")])
def test_rsa_key_size_one_bit_either_side(issuing_ca: pki.Issued, bits: int, expected: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    assert verdict(leaf(issuing_ca, key.public_key()), issuing_ca) == expected


@pytest.mark.parametrize(
    ("curve", "expected"),
    [
        (ec.SECP256R1(), "ACCEPTED"),
        (ec.SECP384R1(), "ACCEPTED"),
        (ec.SECP521R1(), "ACCEPTED"),  # AWS IoT accepts P-521: it is never called WEAK_KEY
        (ec.SECP224R1(), "WEAK_KEY"),
        (ec.SECP256K1(), "WEAK_KEY"),
    ],
)
def test_ec_curves_are_those_aws_iot_accepts(issuing_ca: pki.Issued, curve: ec.EllipticCurve, expected: str) -> None:
    key = ec.generate_private_key(curve)
    assert verdict(leaf(issuing_ca, key.public_key()), issuing_ca) == expected


def test_keys_jitr_does_not_verify_have_their_own_reason(issuing_ca: pki.Issued) -> None:
    dsa_key = dsa.generate_private_key(key_size=2048).public_key()
    assert verdict(leaf(issuing_ca, dsa_key), issuing_ca) == "UNSUPPORTED_KEY"  # AWS accepts DSA; jitr does not
    assert verdict(leaf(issuing_ca, ed25519.Ed25519PrivateKey.generate().public_key()), issuing_ca) == (
        "UNSUPPORTED_KEY"
    )


# -- names ---


@pytest.mark.parametrize(
    ("san", "critical", "expected"),
    [(None, False, "EMPTY_SUBJECT"), ("d.example", False, "EMPTY_SUBJECT"), ("d.example", True, "ACCEPTED")],
)
def test_an_empty_subject_needs_a_critical_subject_alt_name(
    issuing_ca: pki.Issued, san: str | None, critical: bool, expected: str
) -> None:
    names = x509.SubjectAlternativeName([x509.DNSName(san)]) if san else None
    device = leaf(
        issuing_ca,
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        subject=x509.Name([]),
        san=names,
        san_critical=critical,
    )
    assert verdict(device, issuing_ca) == expected


def test_subject_alt_name_stays_optional_with_a_subject(issuing_ca: pki.Issued) -> None:
    assert verdict(pki.make_device(issuing_ca, "cn-only").pem, issuing_ca) == "ACCEPTED"


# -- whose fault a chain failure is ---


def test_a_ca_the_profile_can_never_accept_is_not_the_devices_fault() -> None:
    tutorial_ca = pki.make_ca("tutorial CA", key_usage=False)
    device = pki.make_device(tutorial_ca, "d")
    with pytest.raises(Undecided) as caught:
        verify_device_certificate(device.pem, tutorial_ca.pem)
    assert caught.value.reason == "CA_UNUSABLE"
    assert "aws-openssl" in caught.value.message
    assert verdict(device.pem, tutorial_ca, profile="aws-openssl") == "ACCEPTED"
    forged = pki.make_device(tutorial_ca, "forged", signer=pki.new_key())
    assert verdict(forged.pem, tutorial_ca, profile="aws-openssl") == "UNTRUSTED_CHAIN"  # still the device's fault


def test_an_expired_ca_is_not_the_devices_fault(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "d", days=7300)
    later = issuing_ca.certificate.not_valid_after_utc + SECOND
    assert verdict(device.pem, issuing_ca, at=later) == "CA_UNUSABLE"


def test_version1_leaves_honour_the_trust_root(root_ca: pki.Issued) -> None:
    tutorial_ca = pki.make_ca("tutorial issuing CA", issuer=root_ca, key_usage=False)
    device = pki.resign(pki.make_device(tutorial_ca, "v1"), tutorial_ca.key, version1=True)
    verified = verify_device_certificate(device.pem, tutorial_ca.pem, profile="aws-openssl", root_pem=root_ca.pem)
    assert isinstance(verified, VerifiedChain)
    assert [c.subject for c in verified.chain] == [
        device.certificate.subject,
        tutorial_ca.certificate.subject,
        root_ca.certificate.subject,
    ]
    stranger = pki.make_ca("stranger root")
    assert verdict(device.pem, tutorial_ca, profile="aws-openssl", root_pem=stranger.pem) == "CA_UNUSABLE"
