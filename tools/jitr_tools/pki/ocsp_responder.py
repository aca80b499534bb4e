"""An OCSP responder for a development CA (RFC 6960), built with cryptography's `OCSPResponseBuilder`: served on
127.0.0.1 by `CrlServer.answer(path, responder)`, it answers what the CA says of each serial, signed by the CA or by
a responder certificate the CA delegated to. Its fields bend it into what a real responder may answer on a bad day
(tryLater, a stale or misdirected answer, another nonce, a forged signature)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from jitr_tools import pki

Status = ocsp.OCSPResponseStatus


def make_responder(issuer: pki.Issued, *, ocsp_signing: bool = True, days: int = 30) -> pki.Issued:
    """A responder certificate `issuer` delegates OCSP signing to (extended key usage id-kp-OCSPSigning, unless
    `ocsp_signing` is False)."""
    usage = ExtendedKeyUsageOID.OCSP_SIGNING if ocsp_signing else ExtendedKeyUsageOID.SERVER_AUTH
    return pki.make_device(issuer, "OCSP responder", eku=[usage], days=days)


def impostor(issuer: pki.Issued) -> pki.Issued:
    """A self-signed certificate with `issuer`'s name and another key: signs responses that claim to be the CA's."""
    key = pki.new_key()
    start = pki.now() - dt.timedelta(days=1)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(issuer.certificate.subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return pki.Issued(certificate, key)


@dataclass
class OcspResponder:
    """Answers an OCSP request (DER) with a response (DER) about the serial it names: REVOKED if `revoked` lists it,
    UNKNOWN if `unknown` does, else GOOD; signed by `issuer`, or by `delegate` (its certificate in the response)."""

    issuer: pki.Issued
    revoked: dict[int, tuple[x509.ReasonFlags | None, dt.datetime]] = field(default_factory=dict)
    unknown: set[int] = field(default_factory=set)
    delegate: pki.Issued | None = None  # signs in the issuer's place (see `make_responder`, `impostor`)
    show_delegate: bool = True  # put the delegate's certificate in the response
    by_name: bool = False  # name the signer in the responder id (default: its key hash)
    status: Status = Status.SUCCESSFUL  # anything else: an unsuccessful response (tryLater, ...)
    this_update: dt.datetime | None = None  # default: five minutes ago
    next_update: dt.timedelta | None = dt.timedelta(hours=1)  # after thisUpdate; None: the response gives none
    nonce: bytes | Literal["echo"] | None = "echo"  # echo the request's, send this one, or none
    serial: int | None = None  # answer about this serial, whatever was asked
    cert_id_hash: hashes.HashAlgorithm | None = None  # name the certificate with this hash (default: the request's)
    cert_id_issuer: pki.Issued | None = None  # name the certificate as this issuer's (default: `issuer`)
    signature_hash: hashes.HashAlgorithm = field(default_factory=hashes.SHA256)
    extensions: list[tuple[x509.ExtensionType, bool]] = field(default_factory=list)  # more, as (value, critical)
    asked: list[int] = field(default_factory=list)  # the serial of each request

    def revoke(
        self, item: x509.Certificate | int, reason: x509.ReasonFlags | None = None, at: dt.datetime | None = None
    ) -> None:
        serial = item.serial_number if isinstance(item, x509.Certificate) else item
        self.revoked[serial] = (reason, at or pki.now() - dt.timedelta(hours=1))

    def __call__(self, request_der: bytes) -> bytes:
        request = ocsp.load_der_ocsp_request(request_der)
        self.asked.append(request.serial_number)
        if self.status != Status.SUCCESSFUL:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(self.status).public_bytes(serialization.Encoding.DER)
        builder = self._single(ocsp.OCSPResponseBuilder(), request)
        signer = self.delegate or self.issuer
        encoding = ocsp.OCSPResponderEncoding.NAME if self.by_name else ocsp.OCSPResponderEncoding.HASH
        builder = builder.responder_id(encoding, signer.certificate)
        if self.delegate is not None and self.show_delegate:
            builder = builder.certificates([self.delegate.certificate])
        nonce = self._nonce(request)
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        for value, critical in self.extensions:
            builder = builder.add_extension(value, critical)
        return builder.sign(signer.key, self.signature_hash).public_bytes(serialization.Encoding.DER)

    def _single(self, builder: ocsp.OCSPResponseBuilder, request: ocsp.OCSPRequest) -> ocsp.OCSPResponseBuilder:
        serial = request.serial_number if self.serial is None else self.serial
        algorithm, name_hash, key_hash = request.hash_algorithm, request.issuer_name_hash, request.issuer_key_hash
        if self.cert_id_hash is not None or self.cert_id_issuer is not None:
            algorithm = self.cert_id_hash or algorithm
            name_hash, key_hash = _issuer_hashes(self.cert_id_issuer or self.issuer, algorithm)
        this_update = self.this_update or pki.now() - dt.timedelta(minutes=5)
        next_update = this_update + self.next_update if self.next_update is not None else None
        status, at, reason = ocsp.OCSPCertStatus.GOOD, None, None
        if serial in self.revoked:
            status, (reason, at) = ocsp.OCSPCertStatus.REVOKED, self.revoked[serial]
        elif serial in self.unknown:
            status = ocsp.OCSPCertStatus.UNKNOWN
        return builder.add_response_by_hash(
            name_hash, key_hash, serial, algorithm, status, this_update, next_update, at, reason
        )

    def _nonce(self, request: ocsp.OCSPRequest) -> bytes | None:
        if self.nonce != "echo":
            return self.nonce
        try:
            return request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            return None


def _issuer_hashes(issuer: pki.Issued, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """The issuer's name and key hashes in a CertID made with `algorithm`."""
    anyone = pki.make_device(issuer, "cert id")
    request = ocsp.OCSPRequestBuilder().add_certificate(anyone.certificate, issuer.certificate, algorithm).build()
    return request.issuer_name_hash, request.issuer_key_hash
