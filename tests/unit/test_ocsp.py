"""The issuer's OCSP responder, its answer read and checked as RFC 6960 asks: trusted only when SUCCESSFUL, signed by
the issuer or a responder it delegated to, about this certificate, current and answering our nonce; whatever jitr
cannot check is UNKNOWN, never GOOD."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import ObjectIdentifier
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitr.ocsp import Answer, Freshness, Query, query, read_response
from jitr.revocation import Status
from jitr_tools import pki
from jitr_tools.pki.ocsp_responder import OcspResponder, impostor, make_responder

URL = "http://ocsp.maker.example/"


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.make_ca("ocsp test CA")


@pytest.fixture(scope="module")
def device(ca: pki.Issued) -> pki.Issued:
    return pki.make_device(ca, "ocsp-1")


def answer_of(
    responder: OcspResponder, device: pki.Issued, ca: pki.Issued, freshness: Freshness | None = None
) -> Answer:
    """Ask `responder` about `device` as jitr asks, and read its response as jitr reads it."""
    asked = query(device.certificate, ca.certificate)
    data = responder(asked.der)
    return read_response(data, asked, device.certificate, ca.certificate, URL, freshness or Freshness(pki.now()))


# -- the answers ---


def test_a_good_answer_is_good_until_its_next_update(ca: pki.Issued, device: pki.Issued) -> None:
    responder = OcspResponder(ca)
    answer = answer_of(responder, device, ca)
    assert (answer.revocation.status, answer.revocation.source) == (Status.GOOD, URL)
    assert answer.fresh_until is not None
    assert answer.fresh_until - pki.now() > dt.timedelta(minutes=50)  # thisUpdate 5 min ago, nextUpdate an hour on
    assert responder.asked == [device.certificate.serial_number]


@pytest.mark.parametrize(
    ("reason", "name"),
    [
        (x509.ReasonFlags.key_compromise, "keyCompromise"),
        (x509.ReasonFlags.superseded, "superseded"),
        (None, "unspecified"),
    ],
)
def test_a_revoked_answer_carries_the_reason_and_date(
    ca: pki.Issued, device: pki.Issued, reason: x509.ReasonFlags | None, name: str
) -> None:
    responder = OcspResponder(ca)
    revoked_at = pki.now() - dt.timedelta(days=2)
    responder.revoke(device.certificate, reason, revoked_at)
    revocation = answer_of(responder, device, ca).revocation
    assert (revocation.status, revocation.reason, revocation.revoked_at) == (Status.REVOKED, name, revoked_at)
    assert f"{revoked_at:%Y-%m-%d %H:%M:%S}Z" in revocation.detail
    assert "OCSP" in revocation.detail


def test_a_certificate_on_hold_is_on_hold_not_revoked(ca: pki.Issued, device: pki.Issued) -> None:
    responder = OcspResponder(ca)
    responder.revoke(device.certificate, x509.ReasonFlags.certificate_hold)
    revocation = answer_of(responder, device, ca).revocation
    assert (revocation.status, revocation.reason) == (Status.ON_HOLD, "certificateHold")


def test_remove_from_crl_is_unknown(ca: pki.Issued, device: pki.Issued) -> None:
    responder = OcspResponder(ca)
    responder.revoke(device.certificate, x509.ReasonFlags.remove_from_crl)
    assert answer_of(responder, device, ca).revocation.status == Status.UNKNOWN


def test_a_certificate_the_responder_does_not_know_is_unknown(ca: pki.Issued, device: pki.Issued) -> None:
    answer = answer_of(OcspResponder(ca, unknown={device.certificate.serial_number}), device, ca)
    assert (answer.revocation.status, answer.fresh_until) == (Status.UNKNOWN, None)
    assert "does not know this certificate" in answer.revocation.detail


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (x509_ocsp.OCSPResponseStatus.TRY_LATER, "tryLater"),
        (x509_ocsp.OCSPResponseStatus.INTERNAL_ERROR, "internalError"),
        (x509_ocsp.OCSPResponseStatus.UNAUTHORIZED, "unauthorized"),
        (x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST, "malformedRequest"),
        (x509_ocsp.OCSPResponseStatus.SIG_REQUIRED, "sigRequired"),
    ],
)
def test_an_unsuccessful_response_is_unknown_with_its_status(
    ca: pki.Issued, device: pki.Issued, status: x509_ocsp.OCSPResponseStatus, name: str
) -> None:
    revocation = answer_of(OcspResponder(ca, status=status), device, ca).revocation
    assert revocation.status == Status.UNKNOWN
    assert f"answered {name}" in revocation.detail


def test_an_rsa_issuer_signs_with_pkcs1(device: pki.Issued) -> None:
    rsa_ca = pki.make_ca("ocsp RSA CA", key="rsa2048")
    rsa_device = pki.make_device(rsa_ca, "ocsp-rsa")
    responder = OcspResponder(rsa_ca)
    assert answer_of(responder, rsa_device, rsa_ca).revocation.status == Status.GOOD
    responder.revoke(rsa_device.certificate, x509.ReasonFlags.key_compromise)
    assert answer_of(responder, rsa_device, rsa_ca).revocation.status == Status.REVOKED


def test_an_answer_naming_the_certificate_with_another_hash_is_matched(ca: pki.Issued, device: pki.Issued) -> None:
    answer = answer_of(OcspResponder(ca, cert_id_hash=hashes.SHA256()), device, ca)
    assert answer.revocation.status == Status.GOOD


def test_a_responder_named_by_name_is_recognised(ca: pki.Issued, device: pki.Issued) -> None:
    assert answer_of(OcspResponder(ca, by_name=True), device, ca).revocation.status == Status.GOOD


# -- who signed it ---


def test_a_responder_the_issuer_delegated_to_may_answer(ca: pki.Issued, device: pki.Issued) -> None:
    responder = OcspResponder(ca, delegate=make_responder(ca))
    responder.revoke(device.certificate, x509.ReasonFlags.key_compromise)
    assert answer_of(responder, device, ca).revocation.status == Status.REVOKED


@pytest.mark.parametrize(
    ("signer", "cause"),
    [
        ("impostor", "not the issuer's"),  # claims the CA's name, signed with another key
        ("stranger", "neither the issuer nor one the issuer delegated to"),  # names a key it does not show
        ("no-ocsp-signing", "no id-kp-OCSPSigning"),  # issued by the CA, but for TLS
        ("other-ca", "not issued by the certificate's issuer"),  # a responder another CA delegated to
    ],
)
def test_a_response_not_signed_by_the_issuer_or_its_delegate_is_unknown(
    ca: pki.Issued, device: pki.Issued, signer: str, cause: str
) -> None:
    responder = {
        "impostor": lambda: OcspResponder(ca, delegate=impostor(ca), by_name=True),
        "stranger": lambda: OcspResponder(ca, delegate=pki.make_ca("stranger"), show_delegate=False),
        "no-ocsp-signing": lambda: OcspResponder(ca, delegate=make_responder(ca, ocsp_signing=False)),
        "other-ca": lambda: OcspResponder(ca, delegate=make_responder(pki.make_ca("another maker"))),
    }[signer]()
    responder.revoke(device.certificate, x509.ReasonFlags.key_compromise)  # a forger would say revoked, or good
    revocation = answer_of(responder, device, ca).revocation
    assert revocation.status == Status.UNKNOWN
    assert cause in revocation.detail


def test_a_delegated_responder_out_of_its_validity_is_unknown(ca: pki.Issued, device: pki.Issued) -> None:
    later = pki.now() + dt.timedelta(days=31)
    responder = OcspResponder(ca, delegate=make_responder(ca, days=30), this_update=later - dt.timedelta(minutes=5))
    revocation = answer_of(responder, device, ca, Freshness(later)).revocation
    assert (revocation.status, "not valid now" in revocation.detail) == (Status.UNKNOWN, True)


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    length = bytes([size]) if size < 0x80 else bytes([0x80 | 2]) + size.to_bytes(2, "big")
    return bytes([tag]) + length + content


def _signed_as(response: bytes, algorithm_identifier: bytes, signature: bytes) -> bytes:
    """`response` (a successful OCSP response) signed again: cryptography's builder signs with neither RSA-PSS nor
    SHA-1, so the BasicOCSPResponse is assembled around the same signed part here."""
    signed = x509_ocsp.load_der_ocsp_response(response).tbs_response_bytes
    basic = _der(0x30, signed + algorithm_identifier + _der(0x03, b"\x00" + signature))
    ocsp_basic = bytes.fromhex("06092b0601050507300101")  # id-pkix-ocsp-basic
    return _der(0x30, bytes.fromhex("0a0100") + _der(0xA0, _der(0x30, ocsp_basic + _der(0x04, basic))))


# RSASSA-PSS with SHA-256, MGF1 with SHA-256, salt 32, as cryptography writes it; ecdsa-with-SHA1
_PSS = bytes.fromhex(
    "3041 06092a864886f70d01010a 3034 a00f300d06096086480165030402010500"
    " a11c301a06092a864886f70d010108300d06096086480165030402010500 a203020120"
)
_ECDSA_SHA1 = bytes.fromhex("3009 06072a8648ce3d0401")


@pytest.mark.parametrize(("kind", "cause"), [("rsa-pss", "RSA-PSS"), ("ecdsa-sha1", "does not accept")])
def test_a_response_signed_in_a_way_jitr_does_not_check_is_unknown(kind: str, cause: str) -> None:
    # Given a responder signing with RSA-PSS (parameters cryptography does not expose) or with SHA-1
    issuer = pki.make_ca("ocsp odd signer CA", key="rsa2048" if kind == "rsa-pss" else "ec256")
    device = pki.make_device(issuer, "ocsp-odd")
    asked = query(device.certificate, issuer.certificate)
    response = OcspResponder(issuer)(asked.der)
    signed = x509_ocsp.load_der_ocsp_response(response).tbs_response_bytes
    if kind == "rsa-pss":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        data = _signed_as(response, _PSS, issuer.key.sign(signed, pss, hashes.SHA256()))  # type: ignore[call-arg, arg-type]
    else:
        data = _signed_as(response, _ECDSA_SHA1, issuer.key.sign(signed, ec.ECDSA(hashes.SHA1())))  # type: ignore[call-arg, arg-type]  # noqa: S303
    # When jitr reads it, Then it is UNKNOWN, though the signature is the issuer's: jitr does not guess
    fresh = Freshness(pki.now())
    revocation = read_response(data, asked, device.certificate, issuer.certificate, URL, fresh).revocation
    assert (revocation.status, cause in revocation.detail) == (Status.UNKNOWN, True)


# -- about what, and when ---


def test_an_answer_about_another_serial_is_unknown(ca: pki.Issued, device: pki.Issued) -> None:
    revocation = answer_of(OcspResponder(ca, serial=device.certificate.serial_number + 1), device, ca).revocation
    assert (revocation.status, "does not answer for this certificate" in revocation.detail) == (Status.UNKNOWN, True)


def test_an_answer_about_the_same_serial_of_another_issuer_is_unknown(ca: pki.Issued, device: pki.Issued) -> None:
    # the CA's responder, naming another CA's key in the CertID (its hash of another issuer's key)
    responder = OcspResponder(ca, cert_id_issuer=pki.make_ca("namesake"))
    revocation = answer_of(responder, device, ca).revocation
    assert (revocation.status, "does not answer for this certificate" in revocation.detail) == (Status.UNKNOWN, True)


def test_a_nonce_that_is_not_ours_is_unknown_and_none_is_accepted(ca: pki.Issued, device: pki.Issued) -> None:
    other = answer_of(OcspResponder(ca, nonce=b"\x01" * 16), device, ca).revocation
    assert (other.status, "nonce" in other.detail) == (Status.UNKNOWN, True)
    assert answer_of(OcspResponder(ca, nonce=None), device, ca).revocation.status == Status.GOOD  # pre-signed


def test_a_critical_extension_jitr_does_not_understand_is_unknown(ca: pki.Issued, device: pki.Issued) -> None:
    odd = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    assert answer_of(OcspResponder(ca, extensions=[(odd, False)]), device, ca).revocation.status == Status.GOOD
    revocation = answer_of(OcspResponder(ca, extensions=[(odd, True)]), device, ca).revocation
    assert (revocation.status, "1.3.6.1.4.1.55555.1" in revocation.detail) == (Status.UNKNOWN, True)


@pytest.mark.parametrize(("past_s", "status"), [(-1, Status.GOOD), (0, Status.GOOD), (1, Status.UNKNOWN)])
def test_an_answer_is_current_until_its_next_update_plus_the_grace(
    ca: pki.Issued, device: pki.Issued, past_s: int, status: Status
) -> None:
    this_update = pki.now() - dt.timedelta(days=1)
    responder = OcspResponder(ca, this_update=this_update, next_update=dt.timedelta(hours=2))
    grace = dt.timedelta(minutes=30)
    at = this_update + dt.timedelta(hours=2) + grace + dt.timedelta(seconds=past_s)
    revocation = answer_of(responder, device, ca, Freshness(at, grace=grace)).revocation
    assert revocation.status == status
    assert status == Status.GOOD or "stale" in revocation.detail


@pytest.mark.parametrize(("ahead_s", "status"), [(-1, Status.GOOD), (0, Status.GOOD), (1, Status.UNKNOWN)])
def test_an_answer_from_the_future_beyond_the_clock_skew_is_unknown(
    ca: pki.Issued, device: pki.Issued, ahead_s: int, status: Status
) -> None:
    at, skew = pki.now(), dt.timedelta(minutes=5)
    responder = OcspResponder(ca, this_update=at + skew + dt.timedelta(seconds=ahead_s))
    revocation = answer_of(responder, device, ca, Freshness(at, skew=skew)).revocation
    assert revocation.status == status
    assert status == Status.GOOD or "in the future" in revocation.detail


@pytest.mark.parametrize(("older_s", "status"), [(-1, Status.GOOD), (0, Status.GOOD), (1, Status.UNKNOWN)])
def test_an_answer_without_next_update_is_current_for_the_maximum_age(
    ca: pki.Issued, device: pki.Issued, older_s: int, status: Status
) -> None:
    this_update, max_age = pki.now() - dt.timedelta(days=1), dt.timedelta(hours=1)
    responder = OcspResponder(ca, this_update=this_update, next_update=None)
    at = this_update + max_age + dt.timedelta(seconds=older_s)
    answer = answer_of(responder, device, ca, Freshness(at, max_age=max_age))
    assert answer.revocation.status == status
    if status == Status.GOOD:
        assert answer.fresh_until == this_update + max_age  # kept no longer than that
    else:
        assert "ocspMaxAgeSeconds" in answer.revocation.detail


@pytest.mark.parametrize("data", [b"", b"not OCSP", b"\x30\x03\x0a\x01"])
def test_an_undecodable_response_is_unknown(ca: pki.Issued, device: pki.Issued, data: bytes) -> None:
    asked = query(device.certificate, ca.certificate)
    answer = read_response(data, asked, device.certificate, ca.certificate, URL, Freshness(pki.now()))
    assert (answer.revocation.status, "cannot be decoded" in answer.revocation.detail) == (Status.UNKNOWN, True)


def test_the_request_names_the_certificate_by_a_sha1_cert_id_with_a_fresh_nonce(
    ca: pki.Issued, device: pki.Issued
) -> None:
    first, second = query(device.certificate, ca.certificate), query(device.certificate, ca.certificate)
    request = x509_ocsp.load_der_ocsp_request(first.der)
    assert (request.serial_number, request.hash_algorithm.name) == (device.certificate.serial_number, "sha1")
    assert request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == first.nonce
    assert first.nonce != second.nonce
    assert len(first.nonce) == 16


@pytest.fixture(scope="module")
def exchange(ca: pki.Issued, device: pki.Issued) -> tuple[Query, bytes]:
    """One request and the responder's good answer, the same for every example."""
    asked = query(device.certificate, ca.certificate)
    return asked, OcspResponder(ca)(asked.der)


@given(data=st.data())
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
def test_a_truncated_or_altered_response_is_unknown_never_an_error(
    ca: pki.Issued, device: pki.Issued, exchange: tuple[Query, bytes], data: st.DataObject
) -> None:
    asked, response = exchange
    if data.draw(st.booleans(), label="truncate"):
        altered = response[: data.draw(st.integers(0, len(response) - 1), label="length")]
    else:
        bit = data.draw(st.integers(0, len(response) * 8 - 1), label="bit")
        altered = bytearray(response)
        altered[bit // 8] ^= 1 << (bit % 8)
    answer = read_response(bytes(altered), asked, device.certificate, ca.certificate, URL, Freshness(pki.now()))
    assert answer.revocation.status == Status.UNKNOWN
