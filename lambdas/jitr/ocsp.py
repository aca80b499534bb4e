"""Whether the issuer has revoked a certificate, asked of its OCSP responder (RFC 6960), with pyca/cryptography
building the request and parsing the answer: never hand-written ASN.1.

The request names the certificate by a SHA-1 CertID (RFC 5019, the profile responders serve, requires SHA-1; it is
an identifier here, never a signature, and the answer is matched on the serial as well) and carries a fresh nonce.
An answer is trusted only when it is SUCCESSFUL, signed by the issuer itself or by a responder certificate the
issuer delegated to (issued by it, with extended key usage id-kp-OCSPSigning, valid now), about this certificate
(serial, issuer name hash and issuer key hash), current (thisUpdate not in the future beyond the clock skew,
nextUpdate plus the grace not past, or thisUpdate within the maximum age when it gives no nextUpdate) and, when the
responder echoes a nonce, echoing ours. cryptography has no signature check for OCSP responses, so it is done here
with the signer's key; a response signed with RSA-PSS (whose parameters cryptography does not expose), SHA-1 or an
algorithm that does not fit the key cannot be checked and is UNKNOWN. Every doubt is UNKNOWN with its cause.

The HTTP exchange is the caller's (`ask` takes the POST), so it goes through the same SSRF-safe fetcher as CRLs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, OCSPExtensionOID, SignatureAlgorithmOID

from .revocation import Revocation, Status

MAX_OCSP_BYTES = 64 * 1024  # an OCSP response is a few kilobytes, with its responder's certificate
CONTENT_TYPE = "application/ocsp-request"
ACCEPT = "application/ocsp-response"

_RSA = frozenset(
    {
        SignatureAlgorithmOID.RSA_WITH_SHA224,
        SignatureAlgorithmOID.RSA_WITH_SHA256,
        SignatureAlgorithmOID.RSA_WITH_SHA384,
        SignatureAlgorithmOID.RSA_WITH_SHA512,
        SignatureAlgorithmOID.RSA_WITH_SHA3_256,
        SignatureAlgorithmOID.RSA_WITH_SHA3_384,
        SignatureAlgorithmOID.RSA_WITH_SHA3_512,
    }
)
_ECDSA = frozenset(
    {
        SignatureAlgorithmOID.ECDSA_WITH_SHA224,
        SignatureAlgorithmOID.ECDSA_WITH_SHA256,
        SignatureAlgorithmOID.ECDSA_WITH_SHA384,
        SignatureAlgorithmOID.ECDSA_WITH_SHA512,
        SignatureAlgorithmOID.ECDSA_WITH_SHA3_256,
        SignatureAlgorithmOID.ECDSA_WITH_SHA3_384,
        SignatureAlgorithmOID.ECDSA_WITH_SHA3_512,
    }
)
_EDDSA = frozenset({SignatureAlgorithmOID.ED25519, SignatureAlgorithmOID.ED448})
_RESPONSE_STATUS = {  # RFC 6960 4.2.1 names
    ocsp.OCSPResponseStatus.MALFORMED_REQUEST: "malformedRequest",
    ocsp.OCSPResponseStatus.INTERNAL_ERROR: "internalError",
    ocsp.OCSPResponseStatus.TRY_LATER: "tryLater",
    ocsp.OCSPResponseStatus.SIG_REQUIRED: "sigRequired",
    ocsp.OCSPResponseStatus.UNAUTHORIZED: "unauthorized",
}
_CERT_ID_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class UnusableResponse(Exception):
    """The OCSP response cannot answer: the message says why (the status it gives is UNKNOWN)."""


@dataclass(frozen=True)
class Query:
    """One OCSP request: its DER, the nonce it carries and the CertID it names."""

    der: bytes
    nonce: bytes
    serial: int
    issuer_name_hash: bytes
    issuer_key_hash: bytes


@dataclass(frozen=True)
class Answer:
    """The status a response gives, and until when it may be reused (its nextUpdate, or thisUpdate plus the maximum
    age; None for an UNKNOWN)."""

    revocation: Revocation
    fresh_until: datetime | None = None


@dataclass(frozen=True)
class Freshness:
    """How current a response must be at `at`."""

    at: datetime
    grace: timedelta = timedelta(0)  # past nextUpdate, still taken as current
    skew: timedelta = timedelta(0)  # thisUpdate at most this far ahead of our clock
    max_age: timedelta = timedelta(hours=1)  # without nextUpdate: thisUpdate at most this old


def query(certificate: x509.Certificate, issuer: x509.Certificate) -> Query:
    """The request asking `issuer`'s responder about `certificate`, with a fresh 16-byte nonce."""
    nonce = os.urandom(16)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(certificate, issuer, hashes.SHA1())  # noqa: S303  # an identifier, as RFC 5019 asks
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    return Query(
        der=request.public_bytes(serialization.Encoding.DER),
        nonce=nonce,
        serial=certificate.serial_number,
        issuer_name_hash=request.issuer_name_hash,
        issuer_key_hash=request.issuer_key_hash,
    )


def ask(
    url: str,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    post: Callable[[str, bytes], bytes],
    freshness: Freshness,
) -> Answer:
    """Ask the responder at `url` (`post` sends the request and returns the response body, raising whatever its
    transport raises) about `certificate`."""
    asked = query(certificate, issuer)
    return read_response(post(url, asked.der), asked, certificate, issuer, url, freshness)


def read_response(
    data: bytes,
    asked: Query,
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    source: str,
    freshness: Freshness,
) -> Answer:
    """The status the response `data` from `source` gives `certificate` for the request `asked`."""
    try:
        response = _successful(data)
        _check_signer(response, issuer, freshness)
        _check_extensions(response, asked)
        single = _single(response, asked, certificate, issuer)
        fresh_until = _check_times(single, freshness)
        revocation = _status(single, source)
        return Answer(revocation, None if revocation.status == Status.UNKNOWN else fresh_until)
    except UnusableResponse as exc:
        return Answer(Revocation(Status.UNKNOWN, source, f"OCSP: {exc}"))
    except (ValueError, x509.DuplicateExtension, UnsupportedAlgorithm) as exc:  # parts are decoded on access
        return Answer(Revocation(Status.UNKNOWN, source, f"OCSP: the response cannot be decoded ({exc})"))


def _successful(data: bytes) -> ocsp.OCSPResponse:
    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError as exc:
        raise UnusableResponse(f"the response cannot be decoded ({exc})") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        name = _RESPONSE_STATUS.get(response.response_status, str(response.response_status.value))
        raise UnusableResponse(f"the responder answered {name}")
    return response


# -- who signed it ---


def _check_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate, freshness: Freshness) -> None:
    """The response is signed by the issuer, or by a responder certificate in it that the issuer delegated to."""
    if _identifies(response, issuer):
        return _check_signature(response, issuer.public_key(), "the issuer's")
    for candidate in response.certificates:
        if _identifies(response, candidate):
            _check_delegate(candidate, issuer, freshness)
            return _check_signature(response, candidate.public_key(), "its responder certificate's")
    raise UnusableResponse(
        "it is signed by a responder that is neither the issuer nor one the issuer delegated to (none in the response)"
    )


def _identifies(response: ocsp.OCSPResponse, certificate: x509.Certificate) -> bool:
    """The response's responder id (a key hash, or a name) is `certificate`'s."""
    if response.responder_key_hash is not None:
        return (
            response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
        )  # SHA-1 of the subjectPublicKey bits, as RFC 6960's KeyHash is
    return response.responder_name == certificate.subject


def _check_delegate(responder: x509.Certificate, issuer: x509.Certificate, freshness: Freshness) -> None:
    """RFC 6960 4.2.2.2: a delegated responder's certificate is issued by the CA and marked for OCSP signing."""
    try:
        responder.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise UnusableResponse("its responder certificate is not issued by the certificate's issuer") from None
    try:
        usages = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = x509.ExtendedKeyUsage([])
    if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
        raise UnusableResponse("its responder certificate may not sign OCSP responses (no id-kp-OCSPSigning)")
    if responder.not_valid_before_utc > freshness.at + freshness.skew or responder.not_valid_after_utc < freshness.at:
        raise UnusableResponse("its responder certificate is not valid now")


def _check_signature(response: ocsp.OCSPResponse, key: object, whose: str) -> None:
    algorithm = response.signature_algorithm_oid
    if algorithm == SignatureAlgorithmOID.RSASSA_PSS:
        raise UnusableResponse("it is signed with RSA-PSS, whose parameters jitr cannot read to check it")
    signature, signed = response.signature, response.tbs_response_bytes
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm in _RSA:
            key.verify(signature, signed, padding.PKCS1v15(), _hash(response))
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm in _ECDSA:
            key.verify(signature, signed, ec.ECDSA(_hash(response)))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey) and algorithm in _EDDSA:
            key.verify(signature, signed)  # a key of the other curve does not verify
        else:
            raise UnusableResponse(
                f"it is signed with {algorithm.dotted_string}, which jitr does not accept for {whose} key"
                " (SHA-1, DSA, or an algorithm of another key type)"
            )
    except InvalidSignature:
        raise UnusableResponse(f"its signature is not {whose} (signed by another key, or altered)") from None


def _hash(response: ocsp.OCSPResponse) -> hashes.HashAlgorithm:
    algorithm = response.signature_hash_algorithm
    if algorithm is None:
        raise UnusableResponse("its signature names no hash algorithm")
    return algorithm


# -- what it says ---

_UNDERSTOOD = frozenset({OCSPExtensionOID.NONCE})


def _check_extensions(response: ocsp.OCSPResponse, asked: Query) -> None:
    """A critical extension jitr does not understand makes the response unusable; an echoed nonce must be ours."""
    for extension in (*response.extensions, *response.single_extensions):
        if isinstance(extension.value, x509.OCSPNonce):
            if extension.value.nonce != asked.nonce:
                raise UnusableResponse("its nonce is not the one jitr sent (a replayed or misdirected response)")
        elif extension.critical and extension.oid not in _UNDERSTOOD:
            oid = extension.oid.dotted_string
            raise UnusableResponse(f"it has a critical extension jitr does not understand ({oid})")


def _single(
    response: ocsp.OCSPResponse, asked: Query, certificate: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse:
    """The response's answer about this certificate: its serial, by this issuer (name and key hashes)."""
    by_hash: dict[str, tuple[bytes, bytes]] = {"sha1": (asked.issuer_name_hash, asked.issuer_key_hash)}
    for single in response.responses:
        if single.serial_number != asked.serial:
            continue
        name = single.hash_algorithm.name
        if name not in by_hash and name in _CERT_ID_HASHES:  # a responder may answer with another hash
            other = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, _CERT_ID_HASHES[name]()).build()
            by_hash[name] = (other.issuer_name_hash, other.issuer_key_hash)
        if by_hash.get(name) == (single.issuer_name_hash, single.issuer_key_hash):
            return single
    raise UnusableResponse("it does not answer for this certificate (another serial number or issuer)")


def _check_times(single: ocsp.OCSPSingleResponse, freshness: Freshness) -> datetime:
    """Until when the answer is current; raises when it is not current now."""
    this_update, next_update = single.this_update_utc, single.next_update_utc
    if this_update > freshness.at + freshness.skew:
        raise UnusableResponse(f"its thisUpdate ({this_update:%Y-%m-%d %H:%M}Z) is in the future")
    if next_update is not None:
        if next_update + freshness.grace < freshness.at:
            raise UnusableResponse(f"it is stale: its nextUpdate ({next_update:%Y-%m-%d %H:%M}Z) plus the grace passed")
        return next_update
    if this_update + freshness.max_age < freshness.at:
        raise UnusableResponse(
            f"it is stale: it gives no nextUpdate and its thisUpdate ({this_update:%Y-%m-%d %H:%M}Z) is older than"
            f" {freshness.max_age.total_seconds():.0f} s (ocspMaxAgeSeconds)"
        )
    return this_update + freshness.max_age


def _status(single: ocsp.OCSPSingleResponse, source: str) -> Revocation:
    status = single.certificate_status
    if status == ocsp.OCSPCertStatus.GOOD:
        return Revocation(Status.GOOD, source, f"good by the OCSP response of {single.this_update_utc:%Y-%m-%d %H:%M}Z")
    if status == ocsp.OCSPCertStatus.UNKNOWN:
        return Revocation(Status.UNKNOWN, source, "OCSP: the responder does not know this certificate (unknown)")
    at = single.revocation_time_utc
    assert at is not None  # a REVOKED single response always carries its revocation time
    reason = (single.revocation_reason or x509.ReasonFlags.unspecified).value
    when = f"{at:%Y-%m-%d %H:%M:%S}Z"
    if reason == x509.ReasonFlags.certificate_hold.value:
        return Revocation(Status.ON_HOLD, source, f"on hold (certificateHold) since {when}, by OCSP", reason, at)
    if reason == x509.ReasonFlags.remove_from_crl.value:
        return Revocation(Status.UNKNOWN, source, "OCSP: the responder says revoked with reason removeFromCRL")
    return Revocation(Status.REVOKED, source, f"revoked by the issuer on {when}, reason {reason}, by OCSP", reason, at)
