"""The issuer's word at registration, end to end on the embedded IoT with the CA's CRL served on 127.0.0.1: revoked
by the issuer is the certificate's fault; on hold is held, never revoked; a status jitr cannot learn is never the
device's fault (RETRY, or provisioned and counted where the fleet accepts it)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.ocsp import OCSPResponseStatus

from jitr.certificates import certificate_id
from jitr.provisioning import Decision
from jitr.settings import Settings
from jitr_handlers import registration
from jitr_handlers.registration import Registration, handler
from jitr_tools import pki
from jitr_tools.pki.crl_server import CrlServer, Served
from jitr_tools.pki.ocsp_responder import OcspResponder
from tests.integration.support import FakeLambdaContext, Fleet, sqs_event
from tests.support import Account

CRL_PATH = "/crl/issuing.crl"


@pytest.fixture
def crl_server() -> Iterator[CrlServer]:
    with CrlServer() as server:
        yield server


def der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def configure(monkeypatch: pytest.MonkeyPatch, ca_id: str, url: str, **options: Any) -> None:
    monkeypatch.setenv("JITR_REVOCATION", json.dumps({ca_id: {"crl": [url], **options}}))
    monkeypatch.setenv("JITR_REVOCATION_ALLOW_LOOPBACK", "true")  # the rehearsal's CRL server is on 127.0.0.1


@pytest.fixture
def revoking_fleet(fleet: Fleet, crl_server: CrlServer, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    """The fleet, its CA configured with the CRL the test server publishes (nothing revoked yet)."""
    configure(monkeypatch, fleet.ca_id, crl_server.publish(CRL_PATH, der(pki.make_crl(fleet.ca))))
    return fleet


@pytest.fixture
def decided(handler_env: None) -> list[Decision]:
    """Every decision the handler makes in this test (the rehearsal's hook), in order."""
    made: list[Decision] = []
    registration.use(Registration(Settings.from_environment(), on_decision=made.append))
    return made


def test_a_device_the_issuer_revoked_before_its_first_connect_is_refused(
    revoking_fleet: Fleet, crl_server: CrlServer, decided: list[Decision]
) -> None:
    # Given a device whose certificate the maker revoked (a cloned key) before it ever connected
    device = revoking_fleet.device("cloned-1")
    crl = pki.make_crl(revoking_fleet.ca, [(device.certificate, x509.ReasonFlags.key_compromise)])
    crl_server.publish(CRL_PATH, der(crl))
    # When it connects for the first time
    event = revoking_fleet.first_connect(device)
    batch = handler(sqs_event(event), FakeLambdaContext())
    # Then it is refused for the issuer's reason, with the date, and revoked in AWS IoT
    assert batch == {"batchItemFailures": []}
    assert revoking_fleet.status(event["certificateId"]) == "REVOKED"
    assert revoking_fleet.account.client.list_things()["things"] == []  # no thing made
    (decision,) = decided
    assert (decision.outcome, decision.reason) == ("REJECTED", "REVOKED_BY_ISSUER")
    assert "keyCompromise" in decision.message
    assert f"{crl[0].revocation_date_utc:%Y-%m-%d %H:%M:%S}" in decision.message
    assert decision.revocation[0].status == "REVOKED"


def _recorded_decision(account: Account, event: dict[str, Any]) -> dict[str, Any]:
    """The decision as an operator sees it: decided again now, changing nothing (`jitr explain`)."""
    from jitr.settings import Settings
    from jitr_tools.operating.explain import explain

    return explain(event["certificateId"], Settings.from_environment(), account.client).now


def test_a_good_device_is_provisioned_with_its_status_in_the_decision(revoking_fleet: Fleet) -> None:
    event = revoking_fleet.first_connect(revoking_fleet.device("good-1"))
    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": []}
    assert revoking_fleet.status(event["certificateId"]) == "ACTIVE"


def test_a_device_on_hold_is_held_not_revoked_and_provisioned_once_released(
    revoking_fleet: Fleet, crl_server: CrlServer
) -> None:
    # Given a device the maker put on hold (a unit under investigation)
    device = revoking_fleet.device("held-1")
    crl_server.publish(
        CRL_PATH, der(pki.make_crl(revoking_fleet.ca, [(device.certificate, x509.ReasonFlags.certificate_hold)]))
    )
    event = revoking_fleet.first_connect(device)
    # When it connects: held, the record done (no redelivery, nothing in the DLQ), the certificate left pending
    from jitr_handlers.registration import current

    decision = current().handle_one(event)
    assert (decision.outcome, decision.reason) == ("HELD", "CERTIFICATE_ON_HOLD")
    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": []}
    assert revoking_fleet.status(event["certificateId"]) == "PENDING_ACTIVATION"
    # Then once the maker releases it (a new CRL) its next connect provisions it
    crl_server.publish(CRL_PATH, der(pki.make_crl(revoking_fleet.ca, number=2)))
    current().crls._crls.clear()  # the environment's cache: as after the old CRL's nextUpdate
    assert current().handle_one(event).outcome == "PROVISIONED"


@pytest.mark.parametrize(
    ("served", "cause"),
    [
        (None, "did not answer"),  # the CRL server is down
        ("stale", "stale"),
        ("forged", "signature"),
        ("truncated", "cannot be decoded"),
        ("enormous", "cap"),
    ],
)
def test_a_status_that_cannot_be_learned_leaves_the_device_pending_and_retries(
    fleet: Fleet, crl_server: CrlServer, monkeypatch: pytest.MonkeyPatch, served: str | None, cause: str
) -> None:
    # Given the CA's CRL unreachable, stale, signed by another key, truncated or enormous
    good = der(pki.make_crl(fleet.ca))
    bodies = {
        "stale": der(pki.make_crl(fleet.ca, this_update=pki.now() - dt.timedelta(days=3))),
        "forged": der(pki.make_crl(fleet.ca, signer=pki.new_key())),
        "truncated": good[:-20],
        "enormous": b"\x30" * (2 * 1024 * 1024),
    }
    url = crl_server.url(CRL_PATH) if served else "http://127.0.0.1:9/crl.crl"
    if served:
        crl_server.paths[CRL_PATH] = Served(body=bodies[served])
    configure(monkeypatch, fleet.ca_id, url, maxBytes=1024 * 1024, timeoutSeconds=1)
    event = fleet.first_connect(fleet.device("unknown-1"))
    # When the device connects
    batch = handler(sqs_event(event), FakeLambdaContext())
    # Then the record fails (redelivered, then the DLQ and its alarm), nothing is revoked, and the reason says why
    assert batch == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert fleet.status(event["certificateId"]) == "PENDING_ACTIVATION"
    decision = _recorded_decision(fleet.account, event)
    assert (decision["outcome"], decision["reason"]) == ("RETRY", "REVOCATION_UNKNOWN")
    assert cause in decision["message"]


def test_a_fleet_may_accept_an_unknown_status_and_each_is_counted(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(monkeypatch, fleet.ca_id, "http://127.0.0.1:9/crl.crl", onUnknown="accept", timeoutSeconds=1)
    made: list[Decision] = []
    registration.use(Registration(Settings.from_environment(), on_decision=made.append))
    event = fleet.first_connect(fleet.device("accepted-1"))
    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": []}
    assert fleet.status(event["certificateId"]) == "ACTIVE"
    assert '"RevocationUnknownAccepted"' in capsys.readouterr().out  # the EMF metric, every time
    (decision,) = made
    assert decision.outcome == "PROVISIONED"
    assert "revocation status unknown, accepted (onUnknown: accept)" in decision.message


def test_an_intermediate_the_root_revoked_refuses_its_devices(
    fleet: Fleet, crl_server: CrlServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a registered CA that is an intermediate under a configured trust root, which has revoked it
    root = pki.make_ca("maker root")
    intermediate = pki.make_ca("maker issuing CA", issuer=root)
    account = fleet.account  # the stack's template and policy, with another CA registered beside the fleet's
    ca_id = account.register_ca(intermediate)
    monkeypatch.setenv("JITR_TRUST_ROOT_PEM", root.pem)
    url = crl_server.publish(
        "/root.crl", der(pki.make_crl(root, [(intermediate.certificate, x509.ReasonFlags.ca_compromise)]))
    )
    configure(monkeypatch, certificate_id(root.certificate), url)
    under = Fleet(account, intermediate, ca_id)
    event = under.first_connect(under.device("under-a-revoked-ca"))
    # When one of its devices connects
    decision = _recorded_decision(account, event)
    # Then it is refused, naming the CA the root revoked
    assert (decision["outcome"], decision["reason"]) == ("REJECTED", "REVOKED_BY_ISSUER")
    assert decision["message"].startswith("its CA: revoked by the issuer")
    assert "cACompromise" in decision["message"]


def test_a_ca_without_revocation_sources_is_not_checked(fleet: Fleet) -> None:
    event = fleet.first_connect(fleet.device("unchecked-1"))
    from jitr_handlers.registration import current

    decision = current().handle_one(event)
    assert decision.outcome == "PROVISIONED"
    assert decision.revocation == ()


# -- the issuer's OCSP responder ---


def test_a_device_the_issuers_responder_says_is_revoked_is_refused(
    fleet: Fleet, crl_server: CrlServer, monkeypatch: pytest.MonkeyPatch, decided: list[Decision]
) -> None:
    # Given a CA configured with its OCSP responder (no CRL), which says the device's certificate is revoked
    device = fleet.device("cloned-ocsp-1")
    responder = OcspResponder(fleet.ca)
    revoked_at = pki.now() - dt.timedelta(hours=3)
    responder.revoke(device.certificate, x509.ReasonFlags.key_compromise, revoked_at)
    url = crl_server.answer("/ocsp", responder)
    monkeypatch.setenv("JITR_REVOCATION", json.dumps({fleet.ca_id: {"ocsp": [url]}}))
    monkeypatch.setenv("JITR_REVOCATION_ALLOW_LOOPBACK", "true")
    registration.use(Registration(Settings.from_environment(), on_decision=decided.append))
    # When it connects for the first time
    event = fleet.first_connect(device)
    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": []}
    # Then it is refused for the responder's reason, with the date and the responder, and revoked in AWS IoT
    assert fleet.status(event["certificateId"]) == "REVOKED"
    (decision,) = decided
    assert (decision.outcome, decision.reason) == ("REJECTED", "REVOKED_BY_ISSUER")
    assert "keyCompromise" in decision.message
    assert f"{revoked_at:%Y-%m-%d %H:%M:%S}" in decision.message
    assert f"by OCSP (from {url})" in decision.message
    assert responder.asked == [device.certificate.serial_number]


def test_a_responder_that_answers_try_later_leaves_the_device_pending_and_retries(
    fleet: Fleet, crl_server: CrlServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = crl_server.answer("/ocsp", OcspResponder(fleet.ca, status=OCSPResponseStatus.TRY_LATER))
    monkeypatch.setenv("JITR_REVOCATION", json.dumps({fleet.ca_id: {"ocsp": [url]}}))
    monkeypatch.setenv("JITR_REVOCATION_ALLOW_LOOPBACK", "true")
    event = fleet.first_connect(fleet.device("busy-ocsp-1"))
    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert fleet.status(event["certificateId"]) == "PENDING_ACTIVATION"
    decision = _recorded_decision(fleet.account, event)
    assert (decision["outcome"], decision["reason"]) == ("RETRY", "REVOCATION_UNKNOWN")
    assert "tryLater" in decision["message"]
