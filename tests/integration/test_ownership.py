"""One thing, one owner: a certificate never gets a thing another ACTIVE certificate holds, whatever CA issued it,
unless the fleet rotates (`JITR_EXISTING_THING=replace`), and two certificates decided at the same moment never
both get it."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from jitr.certificates import certificate_id
from jitr_handlers.registration import current
from jitr_tools import pki
from tests.integration.support import Fleet


def principals(fleet: Fleet, thing: str) -> list[str]:
    arns = fleet.account.client.list_thing_principals(thingName=thing)["principals"]
    return sorted(arn.rsplit("/", 1)[-1] for arn in arns)


def decide(event: dict[str, Any]) -> dict[str, Any]:
    return current().handle_one(event).to_dict()


def test_a_second_certificate_cannot_take_an_existing_things_name(fleet: Fleet) -> None:
    # Given a device provisioned as sensor-1
    first = fleet.device("sensor-1")
    assert decide(fleet.first_connect(first))["outcome"] == "PROVISIONED"
    # When another certificate (another key, the same CA) with the same CN connects
    clone = fleet.device("sensor-1")
    decision = decide(fleet.first_connect(clone))
    # Then it is refused and revoked, and the existing device is untouched
    assert (decision["outcome"], decision["reason"]) == ("REJECTED", "THING_ALREADY_CLAIMED")
    assert certificate_id(first.certificate) in decision["message"]
    assert fleet.status(certificate_id(clone.certificate)) == "REVOKED"
    assert fleet.status(certificate_id(first.certificate)) == "ACTIVE"
    assert principals(fleet, "sensor-1") == [certificate_id(first.certificate)]


def test_a_second_registered_ca_cannot_take_a_thing_either(fleet: Fleet) -> None:
    first = fleet.device("sensor-1")
    assert decide(fleet.first_connect(first))["outcome"] == "PROVISIONED"
    other_ca = pki.make_ca("another maker's CA")
    other_ca_id = fleet.account.register_ca(other_ca)
    other = Fleet(fleet.account, other_ca, other_ca_id)
    impostor = other.device("sensor-1")
    decision = decide(other.first_connect(impostor))
    assert (decision["outcome"], decision["reason"]) == ("REJECTED", "THING_ALREADY_CLAIMED")
    assert principals(fleet, "sensor-1") == [certificate_id(first.certificate)]


def test_a_thing_whose_certificates_are_all_inactive_can_be_claimed(fleet: Fleet) -> None:
    first = fleet.device("sensor-1")
    assert decide(fleet.first_connect(first))["outcome"] == "PROVISIONED"
    fleet.account.client.update_certificate(certificateId=certificate_id(first.certificate), newStatus="INACTIVE")
    assert decide(fleet.first_connect(fleet.device("sensor-1")))["outcome"] == "PROVISIONED"


def test_replace_rotates_a_certificate_from_the_same_ca(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITR_EXISTING_THING", "replace")
    old = fleet.device("sensor-1")
    assert decide(fleet.first_connect(old))["outcome"] == "PROVISIONED"
    new = fleet.device("sensor-1")
    decision = decide(fleet.first_connect(new))
    assert decision["outcome"] == "PROVISIONED"
    assert decision["replacedCertificateIds"] == [certificate_id(old.certificate)]
    assert fleet.status(certificate_id(old.certificate)) == "INACTIVE"
    assert principals(fleet, "sensor-1") == [certificate_id(new.certificate)]


def test_replace_never_crosses_cas(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JITR_EXISTING_THING", "replace")
    first = fleet.device("sensor-1")
    assert decide(fleet.first_connect(first))["outcome"] == "PROVISIONED"
    other_ca = pki.make_ca("another maker's CA")
    other = Fleet(fleet.account, other_ca, fleet.account.register_ca(other_ca))
    decision = decide(other.first_connect(other.device("sensor-1")))
    assert (decision["outcome"], decision["reason"]) == ("REJECTED", "THING_ALREADY_CLAIMED")
    assert fleet.status(certificate_id(first.certificate)) == "ACTIVE"


@pytest.mark.parametrize("mode", ["refuse", "replace"])
def test_two_certificates_decided_at_the_same_moment_never_both_get_the_thing(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # Given two certificates for one thing, decided at once in two execution environments, both past the check
    # before either is attached (RegisterThing is slow)
    monkeypatch.setenv("JITR_EXISTING_THING", mode)
    fleet.account.iot.set_latency("RegisterThing", 0.2)
    devices = [fleet.device("twin"), fleet.device("twin")]
    events = [fleet.first_connect(d) for d in devices]
    barrier = threading.Barrier(2)
    decisions: list[dict[str, Any]] = []

    def environment(event: dict[str, Any]) -> None:
        barrier.wait()
        decisions.append(decide(event))

    threads = [threading.Thread(target=environment, args=(e,)) for e in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then both passed the check and were provisioned (the race happened)...
    assert len(decisions) == 2
    assert fleet.account.iot.state.succeeded["RegisterThing"] == 2
    # ...yet exactly one certificate is ACTIVE and attached; the other is neither
    ids = [certificate_id(d.certificate) for d in devices]
    statuses = {i: fleet.status(i) for i in ids}
    assert sorted(statuses.values()) == ["ACTIVE", "INACTIVE" if mode == "replace" else "REVOKED"]
    owner = next(i for i, s in statuses.items() if s == "ACTIVE")
    assert principals(fleet, "twin") == [owner]
