"""Keeping AWS IoT in step with the issuer, on the embedded IoT: the sync revokes what the CA's CRL lists among the
certificates the handler provisioned (found through the serial index, no DescribeCertificate per device), holds and
releases, resumes after a failure, and leaves the things in place; the backfill indexes what came before."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jitr.certificates import certificate_id
from jitr.enrollment import Enrollments
from jitr.revocation_index import RevocationIndex
from jitr.settings import Settings
from jitr_handlers.registration import handler
from jitr_handlers.revocation_sync import run
from jitr_tools import pki
from jitr_tools.cli import main
from jitr_tools.embedded.errors import ServiceUnavailableException
from jitr_tools.pki.crl_server import CrlServer
from jitr_tools.rehearsing.rehearsal import create_decision_table
from tests.integration.support import FakeLambdaContext, Fleet, sqs_event

CRL_PATH = "/crl/issuing.crl"


@pytest.fixture
def crl_server() -> Iterator[CrlServer]:
    with CrlServer() as server:
        yield server


@pytest.fixture
def synced(fleet: Fleet, crl_server: CrlServer, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    """A fleet whose CA is synced with the CRL the test server publishes, with the stack's decision table."""
    table = create_decision_table(boto3.client("dynamodb", region_name="us-east-1"))
    monkeypatch.setenv("JITR_DECISION_TABLE", table)
    url = crl_server.publish(CRL_PATH, der(pki.make_crl(fleet.ca)))
    monkeypatch.setenv("JITR_REVOCATION", json.dumps({fleet.ca_id: {"crl": [url]}}))
    monkeypatch.setenv("JITR_REVOCATION_ALLOW_LOOPBACK", "true")
    return fleet


def der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def provision(fleet: Fleet, *names: str) -> list[pki.Issued]:
    devices = [fleet.device(name) for name in names]
    events = [fleet.first_connect(d) for d in devices]
    assert handler(sqs_event(*events), FakeLambdaContext()) == {"batchItemFailures": []}
    assert all(fleet.status(certificate_id(d.certificate)) == "ACTIVE" for d in devices)
    return devices


def publish(server: CrlServer, fleet: Fleet, revoked: list[pki.RevokedEntry], number: int) -> None:
    server.publish(CRL_PATH, der(pki.make_crl(fleet.ca, revoked, number=number)))


def index() -> RevocationIndex:
    settings = Settings.from_environment()
    assert settings.decision_table
    return RevocationIndex(settings.decision_table, boto3.client("dynamodb", region_name="us-east-1"))


def status(fleet: Fleet, device: pki.Issued) -> str:
    return fleet.status(certificate_id(device.certificate))


def test_a_device_revoked_after_it_was_provisioned_is_revoked_by_the_next_sync(
    synced: Fleet, crl_server: CrlServer
) -> None:
    # Given three provisioned devices, then a CRL revoking one (a returned unit) and holding another
    returned, investigated, fine = provision(synced, "sync-1", "sync-2", "sync-3")
    publish(
        crl_server,
        synced,
        [
            (returned.certificate, x509.ReasonFlags.cessation_of_operation),
            (investigated.certificate, x509.ReasonFlags.certificate_hold),
            (12345, None),
        ],
        number=2,
    )
    calls_before = dict(synced.account.iot.state.calls)
    # When the sync runs
    (ca,) = run(Settings.from_environment()).cas
    calls = {k: v - calls_before.get(k, 0) for k, v in synced.account.iot.state.calls.items()}
    # Then the revoked one is REVOKED, the held one INACTIVE, the other untouched; the thing is left in place
    assert (status(synced, returned), status(synced, investigated), status(synced, fine)) == (
        "REVOKED",
        "INACTIVE",
        "ACTIVE",
    )
    assert ca.revoked == [certificate_id(returned.certificate)]
    assert ca.held == [certificate_id(investigated.certificate)]
    assert (ca.listed, ca.registered, ca.error) == (3, 2, None)
    things = synced.account.client.list_thing_principals(thingName="sync-1")["principals"]
    assert [arn.rsplit("/", 1)[-1] for arn in things] == [certificate_id(returned.certificate)]
    # found through the index: one DescribeCertificate for the hold (is it ACTIVE?), none per listed serial
    assert calls["DescribeCertificate"] == 1, {k: v for k, v in calls.items() if v}
    # and who revoked it and why is recorded beside the serial
    item = index().item(synced.ca_id, f"{returned.certificate.serial_number:x}")
    assert item is not None
    assert (item["syncedStatus"], item["syncedReason"]) == ("REVOKED", "cessationOfOperation")
    assert item["syncedSource"].endswith(CRL_PATH)
    state = index().sync_state(synced.ca_id)
    assert state is not None
    assert (state["crlNumber"], state["revokedTotal"], "lastError" in state) == (2, 1, False)


def test_an_unchanged_crl_is_not_read_again_and_a_hold_lifted_is_released(synced: Fleet, crl_server: CrlServer) -> None:
    (held,) = provision(synced, "held-1")
    publish(crl_server, synced, [(held.certificate, x509.ReasonFlags.certificate_hold)], number=2)
    assert run(Settings.from_environment()).cas[0].held == [certificate_id(held.certificate)]
    updates = synced.account.iot.state.calls["UpdateCertificate"]
    # the same CRL again: nothing read, nothing done
    (again,) = run(Settings.from_environment()).cas
    assert again.unchanged
    assert synced.account.iot.state.calls["UpdateCertificate"] == updates
    # the issuer lifts the hold: ACTIVE again
    publish(crl_server, synced, [], number=3)
    (released,) = run(Settings.from_environment()).cas
    assert released.released == [certificate_id(held.certificate)]
    assert status(synced, held) == "ACTIVE"
    # and later revokes it for good
    publish(crl_server, synced, [(held.certificate, x509.ReasonFlags.key_compromise)], number=4)
    run(Settings.from_environment())
    assert status(synced, held) == "REVOKED"


def test_a_failed_update_is_finished_by_the_next_run(synced: Fleet, crl_server: CrlServer) -> None:
    first, second = provision(synced, "fail-1", "fail-2")
    publish(crl_server, synced, [(first.certificate, None), (second.certificate, None)], number=2)
    attempts = Settings.from_environment().max_attempts
    synced.account.iot.inject_faults("UpdateCertificate", *[ServiceUnavailableException("down")] * attempts, after=1)
    (failed,) = run(Settings.from_environment()).cas
    assert failed.error
    assert not failed.complete
    assert sorted([status(synced, first), status(synced, second)]) == ["ACTIVE", "REVOKED"]
    (finished,) = run(Settings.from_environment()).cas  # the CRL's number was not taken as read
    assert (finished.error, len(finished.revoked)) == (None, 1)
    assert [status(synced, first), status(synced, second)] == ["REVOKED", "REVOKED"]


def test_an_unusable_crl_revokes_nothing_and_says_why(synced: Fleet, crl_server: CrlServer) -> None:
    (device,) = provision(synced, "safe-1")
    crl_server.publish(CRL_PATH, der(pki.make_crl(synced.ca, [(device.certificate, None)], signer=pki.new_key())))
    (ca,) = run(Settings.from_environment()).cas
    assert ca.error is not None
    assert "signature" in ca.error
    assert status(synced, device) == "ACTIVE"
    state = index().sync_state(synced.ca_id)
    assert state is not None
    assert "signature" in state["lastError"]


def test_a_run_short_of_time_stops_and_the_next_goes_on(synced: Fleet, crl_server: CrlServer) -> None:
    from jitr.iot import IoT
    from jitr.revocation_sources import CrlSources
    from jitr.revocation_sync import sync

    devices = provision(synced, "slow-1", "slow-2", "slow-3")
    publish(crl_server, synced, [(d.certificate, None) for d in devices], number=2)
    settings = Settings.from_environment()
    iot = IoT(boto3.client("iot", region_name="us-east-1"), template_ttl_s=0)
    left = iter([300.0, 300.0, 300.0, 10.0])  # time for the CA and two updates, then too little
    (partial,) = sync(settings, iot, index(), CrlSources(loopback_ok=True), time_left_s=lambda: next(left, 10.0)).cas
    assert (len(partial.revoked), partial.complete) == (2, False)
    (rest,) = run(settings).cas
    assert (len(rest.revoked), rest.complete) == (1, True)


def test_the_backfill_indexes_certificates_decided_before_the_index(
    synced: Fleet, crl_server: CrlServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given devices provisioned while no revocation was configured (so not indexed)
    table = Settings.from_environment().decision_table
    monkeypatch.delenv("JITR_REVOCATION")
    from jitr_handlers import registration

    registration.use(None)
    earlier = provision(synced, "early-1", "early-2")
    monkeypatch.setenv("JITR_REVOCATION", json.dumps({synced.ca_id: {"crl": [crl_server.url(CRL_PATH)]}}))
    publish(crl_server, synced, [(earlier[0].certificate, None)], number=2)
    assert run(Settings.from_environment()).cas[0].revoked == []  # not found: never indexed
    # When an operator backfills the CA's index (resumable, paced), then the sync runs again
    env = ["--env", f"JITR_DECISION_TABLE={table}"]
    assert main(["revocation", "backfill", "--ca", synced.ca_id, "--describe-tps", "100", *env]) == 0
    assert "indexed 2, skipped 0; done" in capsys.readouterr().out
    publish(crl_server, synced, [(earlier[0].certificate, None)], number=3)
    env += ["--env", f"JITR_REVOCATION={json.dumps({synced.ca_id: {'crl': [crl_server.url(CRL_PATH)]}})}"]
    env += ["--env", "JITR_REVOCATION_ALLOW_LOOPBACK=true"]
    assert main(["revocation", "sync", *env]) == 0
    assert "revoked 1, held 0, released 0" in capsys.readouterr().out
    assert status(synced, earlier[0]) == "REVOKED"
    assert status(synced, earlier[1]) == "ACTIVE"


def test_the_sync_without_a_table_or_sources_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["revocation", "sync"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["revocation", "sync", "--env", "JITR_DECISION_TABLE=t"]) == 2
    assert "no CA has revocation sources" in capsys.readouterr().err


def test_the_scheduled_function_counts_what_it_did_per_ca(
    synced: Fleet, crl_server: CrlServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from jitr_handlers import revocation_sync

    (device,) = provision(synced, "scheduled-1")
    publish(crl_server, synced, [(device.certificate, x509.ReasonFlags.superseded)], number=2)
    capsys.readouterr()
    result = revocation_sync.handler({}, FakeLambdaContext())
    assert result["cas"][0]["revoked"] == [certificate_id(device.certificate)]
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    values = {name: doc[name] for doc in metrics for name in doc if name[0].isupper() and name != "CA"}
    assert values["CertificatesRevokedBySync"] in (1, [1.0], 1.0)
    assert values["RevocationsFound"] in (1, [1.0], 1.0)
    assert values["RevocationSyncFailed"] in (0, [0.0], 0.0)
    assert {doc.get("CA") for doc in metrics if "RevocationsFound" in doc} == {synced.ca_id}


def test_a_ca_with_no_crl_url_is_not_a_sync_failure(synced: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    # OCSP alone, or the certificates' own distribution points: asked per certificate, there is no list to read
    monkeypatch.setenv("JITR_REVOCATION", json.dumps({synced.ca_id: {"ocsp": ["http://ocsp.maker.example/"]}}))
    (ca,) = run(Settings.from_environment()).cas
    assert (ca.error, ca.note) == (None, "no CRL URL is configured for this CA: nothing to sync")


def enrolled(fleet: Fleet, monkeypatch: pytest.MonkeyPatch, name: str) -> tuple[Enrollments, pki.Issued]:
    """A product that requires enrollment by common name, with the enrolled device `name` provisioned."""
    from jitr.enrollment import EnrollmentSettings, import_manifest, read_manifest
    from jitr.products import Product
    from jitr_handlers import registration
    from jitr_tools.rehearsing.rehearsal import create_enrollment_table

    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    enrollments = Enrollments(create_enrollment_table(dynamodb), dynamodb)
    product = Product(
        name="sensor", cas=(fleet.ca_id,), template="jitr-device", enrollment=EnrollmentSettings(by="commonName")
    )
    products = Settings(template_name="jitr-device", products=(product,)).to_environment()["JITR_PRODUCTS"]
    monkeypatch.setenv("JITR_PRODUCTS", products)
    monkeypatch.setenv("JITR_ENROLLMENT_TABLE", enrollments.table_name)
    registration.use(None)
    import_manifest(enrollments, "sensor", read_manifest("b1.csv", f"commonName\n{name}\n"))
    (device,) = provision(fleet, name)
    return enrollments, device


def test_a_hold_lifted_from_a_disabled_device_leaves_it_quarantined_until_it_is_enabled(
    synced: Fleet, crl_server: CrlServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jitr.enrollment import disable, enable
    from jitr.iot import IoT

    # Given a product that requires enrollment, and its enrolled device provisioned
    enrollments, device = enrolled(synced, monkeypatch, "held-1")
    # When the issuer holds it, an operator disables it meanwhile, and the issuer lifts the hold
    publish(crl_server, synced, [(device.certificate, x509.ReasonFlags.certificate_hold)], number=2)
    assert run(Settings.from_environment()).cas[0].held == [certificate_id(device.certificate)]
    iot = IoT(synced.account.client)
    disable(enrollments, iot, "sensor", "commonName", "held-1")
    publish(crl_server, synced, [], number=3)
    (ca,) = run(Settings.from_environment()).cas
    # Then the lifted hold does not make a disabled device ACTIVE: the disable's quarantine keeps it INACTIVE
    assert (ca.released, ca.error) == ([], None)
    assert status(synced, device) == "INACTIVE"
    assert enrollments.look_up("sensor", "commonName", "held-1").quarantined
    # and enabling it releases it
    enable(enrollments, iot, "sensor", "commonName", "held-1", None)
    assert status(synced, device) == "ACTIVE"


def test_a_device_enabled_while_its_issuer_holds_it_stays_inactive_until_the_issuer_lifts_the_hold(
    synced: Fleet, crl_server: CrlServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from jitr.enrollment import disable
    from jitr.iot import IoT

    # Given an enrolled device an operator disabled (its certificate quarantined: INACTIVE), and then its issuer
    # holds it: the sync leaves it as it is (it holds only an ACTIVE certificate)
    enrollments, device = enrolled(synced, monkeypatch, "held-2")
    disable(enrollments, IoT(synced.account.client), "sensor", "commonName", "held-2")
    publish(crl_server, synced, [(device.certificate, x509.ReasonFlags.certificate_hold)], number=2)
    assert run(Settings.from_environment()).cas[0].held == []
    assert status(synced, device) == "INACTIVE"

    # When the operator enables it while the issuer still holds it
    table = Settings.from_environment().decision_table
    command = ["enroll", "enable", "held-2", "--product", "sensor", "--table", enrollments.table_name, "--json"]
    capsys.readouterr()  # what the handler and the sync logged
    assert main([*command, "--decision-table", str(table)]) == 0

    # Then the enable takes (no longer quarantined), but the certificate stays INACTIVE: the issuer's word holds
    change = json.loads(capsys.readouterr().out)
    assert (change["issuerHold"], change["action"]) == (True, None)
    assert not enrollments.look_up("sensor", "commonName", "held-2").quarantined
    assert status(synced, device) == "INACTIVE"
    # and when the issuer lifts the hold, the sync sets it ACTIVE
    publish(crl_server, synced, [], number=3)
    (ca,) = run(Settings.from_environment()).cas
    assert (ca.released, ca.error) == ([certificate_id(device.certificate)], None)
    assert status(synced, device) == "ACTIVE"
