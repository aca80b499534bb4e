"""The issuer's OCSP responder, asked where the configuration names one, over the same SSRF-safe fetcher as CRLs (a
POST, only to allowed hosts and addresses, capped, timed out), on a local responder: its GOOD, REVOKED or ON_HOLD
answer is final and kept until its nextUpdate; an UNKNOWN one falls back to the CRLs; a failed responder is not
asked again at once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp as x509_ocsp

from jitr.revocation import Status
from jitr.revocation_sources import CrlSources
from jitr.settings import RevocationSource
from jitr_tools import pki
from jitr_tools.pki.crl_server import CrlServer, Served
from jitr_tools.pki.ocsp_responder import OcspResponder, impostor, make_responder

OCSP_PATH = "/ocsp"
CRL_PATH = "/ca.crl"


@pytest.fixture
def server() -> Iterator[CrlServer]:
    with CrlServer() as served:
        yield served


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.make_ca("ocsp sources test CA")


@pytest.fixture
def responder(server: CrlServer, ca: pki.Issued) -> OcspResponder:
    """The CA's responder, answering POSTs at `OCSP_PATH` (nothing revoked yet)."""
    answering = OcspResponder(ca)
    server.answer(OCSP_PATH, answering)
    return answering


def url(server: CrlServer, path: str, host: str = "ocsp.test") -> str:
    return server.url(path, host)


def crl(ca: pki.Issued, revoked: list[pki.RevokedEntry] | None = None) -> bytes:
    return pki.make_crl(ca, revoked or []).public_bytes(serialization.Encoding.DER)


def to_loopback(host: str, port: int) -> list[str]:
    """Every test host resolves to the test server's address (a rehearsal's 127.0.0.1)."""
    return ["127.0.0.1"]


def sources(**options: object) -> CrlSources:
    return CrlSources(loopback_ok=True, resolve=to_loopback, **options)  # type: ignore[arg-type]


def test_the_responder_is_asked_with_a_post_and_its_good_answer_is_final(
    server: CrlServer, ca: pki.Issued, responder: OcspResponder
) -> None:
    # Given a CA with a responder and a CRL
    server.paths[CRL_PATH] = Served(body=crl(ca))
    source = RevocationSource(ocsp=(url(server, OCSP_PATH),), crl=(url(server, CRL_PATH, "crl.test"),))
    device = pki.make_device(ca, "ocsp-src-1")
    # When a device's status is asked
    answer = sources().status(device.certificate, ca.certificate, source)
    # Then the responder answers (an OCSP request, POSTed by name to the checked address), and the CRL is not read
    assert (answer.status, answer.source) == (Status.GOOD, url(server, OCSP_PATH))
    assert responder.asked == [device.certificate.serial_number]
    assert server.content_types == ["application/ocsp-request"]
    assert server.hosts == [f"ocsp.test:{server.port}"]
    assert CRL_PATH not in server.hits


@pytest.mark.parametrize(
    ("reason", "status", "name"),
    [
        (x509.ReasonFlags.key_compromise, Status.REVOKED, "keyCompromise"),
        (x509.ReasonFlags.certificate_hold, Status.ON_HOLD, "certificateHold"),
    ],
)
def test_a_revoked_or_held_answer_is_final_with_its_reason_and_date(
    server: CrlServer, ca: pki.Issued, responder: OcspResponder, reason: x509.ReasonFlags, status: Status, name: str
) -> None:
    device = pki.make_device(ca, "ocsp-src-2")
    revoked_at = pki.now() - pki.dt.timedelta(days=1)
    responder.revoke(device.certificate, reason, revoked_at)
    server.paths[CRL_PATH] = Served(body=crl(ca))  # the CRL says nothing of it yet (published before)
    source = RevocationSource(ocsp=(url(server, OCSP_PATH),), crl=(url(server, CRL_PATH, "crl.test"),))
    answer = sources().status(device.certificate, ca.certificate, source)
    assert (answer.status, answer.reason, answer.revoked_at) == (status, name, revoked_at)
    assert CRL_PATH not in server.hits


def test_an_answer_is_kept_until_its_next_update_and_at_most_cache_seconds(
    server: CrlServer, ca: pki.Issued, responder: OcspResponder
) -> None:
    device = pki.make_device(ca, "ocsp-src-3")
    now = [time.time()]
    crls = sources(clock=lambda: now[0])
    source = RevocationSource(ocsp=(url(server, OCSP_PATH),))
    for _ in range(3):
        assert crls.status(device.certificate, ca.certificate, source).status == Status.GOOD
    assert len(responder.asked) == 1  # kept: its nextUpdate is about 55 minutes away
    now[0] += 56 * 60
    crls.status(device.certificate, ca.certificate, source)
    assert len(responder.asked) == 2  # past its nextUpdate: asked again
    brief = RevocationSource(ocsp=(url(server, OCSP_PATH),), cache_seconds=60)
    crls.status(device.certificate, ca.certificate, brief)
    now[0] += 61
    crls.status(device.certificate, ca.certificate, brief)
    assert len(responder.asked) == 4  # cacheSeconds bounds it
    crls.status(pki.make_device(ca, "ocsp-src-3b").certificate, ca.certificate, source)
    assert len(responder.asked) == 5  # kept per certificate


@pytest.mark.parametrize(
    ("bend", "cause"),
    [
        ({"unknown": "device"}, "does not know this certificate"),
        ({"status": x509_ocsp.OCSPResponseStatus.TRY_LATER}, "answered tryLater"),
        ({"delegate": "impostor", "by_name": True}, "not the issuer's"),  # the CA's name, another key
        ({"delegate": "no-ocsp-signing"}, "no id-kp-OCSPSigning"),
        ({"serial": "another"}, "does not answer for this certificate"),
        ({"this_update": "yesterday"}, "stale"),
        ({"nonce": b"\x01" * 16}, "nonce"),
    ],
)
def test_an_unknown_answer_falls_back_to_the_crl(
    server: CrlServer, ca: pki.Issued, bend: dict[str, object], cause: str
) -> None:
    # Given a responder whose answer jitr cannot use, and a CRL that lists the device
    device = pki.make_device(ca, "ocsp-src-4")
    options = {
        "unknown": lambda value: {device.certificate.serial_number},
        "delegate": lambda value: impostor(ca) if value == "impostor" else make_responder(ca, ocsp_signing=False),
        "serial": lambda value: device.certificate.serial_number + 1,
        "this_update": lambda value: pki.now() - pki.dt.timedelta(days=1),
    }
    bent = {key: options.get(key, lambda value: value)(value) for key, value in bend.items()}
    server.answer(OCSP_PATH, OcspResponder(ca, **bent))  # type: ignore[arg-type]
    server.paths[CRL_PATH] = Served(body=crl(ca, [(device.certificate, x509.ReasonFlags.key_compromise)]))
    source = RevocationSource(ocsp=(url(server, OCSP_PATH),), crl=(url(server, CRL_PATH, "crl.test"),))
    # When its status is asked: Then the CRL answers
    answer = sources().status(device.certificate, ca.certificate, source)
    assert (answer.status, answer.source) == (Status.REVOKED, url(server, CRL_PATH, "crl.test"))
    # And without the CRL the status is UNKNOWN, with the responder's cause
    alone = sources().status(device.certificate, ca.certificate, RevocationSource(ocsp=(url(server, OCSP_PATH),)))
    assert alone.status == Status.UNKNOWN
    assert cause in alone.detail


def test_a_responder_down_falls_back_to_the_crl_and_is_not_asked_again_at_once(
    server: CrlServer, ca: pki.Issued
) -> None:
    # Given a responder that is down (nothing listens) and a CRL that answers
    server.paths[CRL_PATH] = Served(body=crl(ca))
    down = "http://ocsp.test:9/ocsp"
    source = RevocationSource(ocsp=(down,), crl=(url(server, CRL_PATH, "crl.test"),), timeout_seconds=1)
    now = [time.time()]
    crls = sources(clock=lambda: now[0])
    device = pki.make_device(ca, "ocsp-src-5")
    # When devices connect: the CRL answers
    answer = crls.status(device.certificate, ca.certificate, source)
    assert (answer.status, answer.source) == (Status.GOOD, url(server, CRL_PATH, "crl.test"))
    # and the responder's failure is remembered for a while, for every certificate (no new connect attempt)
    other = crls.ocsp(down, pki.make_device(ca, "ocsp-src-5b").certificate, ca.certificate, source)
    assert (other.status, "not asked again" in other.detail) == (Status.UNKNOWN, True)
    # And with every source down the status is UNKNOWN, naming each cause
    server.paths[CRL_PATH] = Served(503)
    both = sources().status(device.certificate, ca.certificate, source)
    assert both.status == Status.UNKNOWN
    assert f"{down}: OCSP: ocsp.test did not answer" in both.detail
    assert "HTTP 503" in both.detail


@pytest.mark.parametrize(
    ("served", "cause"),
    [
        (Served(body=b"\x30" * 70_000), "over the 65536-byte cap"),
        (Served(body=b"\x30" * 70_000, headers={"Content-Length": "70000"}), "the OCSP response is 70000 bytes"),
        (Served(302, headers={"Location": "http://169.254.169.254/"}), "redirects are not followed"),
        (Served(500), "HTTP 500"),
        (Served(body=b"<html>busy</html>"), "cannot be decoded"),
        (Served(body=b"x", delay_s=2.0), "did not answer"),
    ],
)
def test_a_responder_that_gives_no_usable_answer_is_unknown_with_its_cause(
    server: CrlServer, ca: pki.Issued, served: Served, cause: str
) -> None:
    server.paths[OCSP_PATH] = served  # what the path answers to a POST, instead of a responder
    source = RevocationSource(ocsp=(url(server, OCSP_PATH),), timeout_seconds=0.5)
    answer = sources().status(pki.make_device(ca, "ocsp-src-6").certificate, ca.certificate, source)
    assert answer.status == Status.UNKNOWN
    assert cause in answer.detail


def test_the_certificates_own_responder_is_asked_only_when_allowed(
    server: CrlServer, ca: pki.Issued, responder: OcspResponder
) -> None:
    device = pki.make_device(ca, "ocsp-src-7", ocsp_urls=[url(server, OCSP_PATH, "ocsp.maker.example")])
    not_asked = [
        RevocationSource(certificate_hosts=("ocsp.maker.example",)),  # ocspFromCertificate not set
        RevocationSource(ocsp_from_certificate=True),  # its host not allowed
        RevocationSource(ocsp_from_certificate=True, certificate_hosts=("crl.maker.example",)),
    ]
    for source in not_asked:
        answer = sources().status(device.certificate, ca.certificate, source)
        assert answer.status == Status.UNKNOWN
    assert responder.asked == []
    allowed = RevocationSource(ocsp_from_certificate=True, certificate_hosts=("ocsp.maker.example",))
    assert sources().status(device.certificate, ca.certificate, allowed).status == Status.GOOD
    assert server.hosts == [f"ocsp.maker.example:{server.port}"]


def test_a_responder_on_a_refused_address_is_never_connected_to(server: CrlServer, ca: pki.Issued) -> None:
    def metadata(host: str, port: int) -> list[str]:
        return ["169.254.169.254"]

    source = RevocationSource(ocsp=("http://ocsp.rebinding.example/",))
    answer = CrlSources(resolve=metadata).status(pki.make_device(ca, "ocsp-src-8").certificate, ca.certificate, source)
    assert (answer.status, "instance metadata" in answer.detail) == (Status.UNKNOWN, True)
    source = RevocationSource(ocsp=(url(server, OCSP_PATH),))
    answer = CrlSources(resolve=to_loopback).status(
        pki.make_device(ca, "ocsp-src-9").certificate, ca.certificate, source
    )
    assert (answer.status, "loopback" in answer.detail) == (Status.UNKNOWN, True)  # outside a rehearsal
    assert server.hits == {}
