"""One thing, one owner: a certificate never gets a thing another ACTIVE certificate holds, whatever CA issued it,
unless the fleet rotates (`JITR_EXISTING_THING=replace`), and two certificates decided at the same moment never
both get it."""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any

import pytest

from jitr.certificates import certificate_id
from jitr_handlers.registration import current
from jitr_tools import pki
from jitr_tools.embedded.errors import ServiceUnavailableException
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


def _race(fleet: Fleet, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decide the events at once, one execution environment each, all past the check before any is attached."""
    fleet.account.iot.set_latency("RegisterThing", 0.2)
    barrier = threading.Barrier(len(events))
    decisions: list[dict[str, Any]] = []

    def environment(event: dict[str, Any]) -> None:
        barrier.wait()
        decisions.append(decide(event))

    threads = [threading.Thread(target=environment, args=(e,)) for e in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fleet.account.iot.set_latency("RegisterThing", 0)
    return decisions


def _other_fleet(fleet: Fleet) -> Fleet:
    other_ca = pki.make_ca("another maker's CA")
    return Fleet(fleet.account, other_ca, fleet.account.register_ca(other_ca))


def _one_owner(fleet: Fleet, thing: str, ids: list[str]) -> str:
    """Exactly one of `ids` is ACTIVE, and it alone is attached to the thing; the owner's id."""
    active = [i for i in ids if fleet.status(i) == "ACTIVE"]
    assert len(active) == 1, {i: fleet.status(i) for i in ids}
    assert principals(fleet, thing) == active
    return active[0]


@pytest.mark.parametrize("mode", ["refuse", "replace"])
def test_two_certificates_from_two_cas_decided_at_the_same_moment_never_both_keep_the_thing(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # Given two certificates for one thing from two CAs, decided at once
    monkeypatch.setenv("JITR_EXISTING_THING", mode)
    other = _other_fleet(fleet)
    devices = [(fleet, fleet.device("twin")), (other, other.device("twin"))]
    events = [f.first_connect(d) for f, d in devices]
    # When both are decided at the same moment
    _race(fleet, events)
    # Then both were provisioned (the race happened), yet only one certificate keeps the thing
    assert fleet.account.iot.state.succeeded["RegisterThing"] == 2
    ids = [certificate_id(d.certificate) for _, d in devices]
    owner = _one_owner(fleet, "twin", ids)
    (loser,) = set(ids) - {owner}
    assert fleet.status(loser) == ("INACTIVE" if mode == "replace" else "REVOKED")


# Each call that settles who keeps a thing, and how many of its calls pass before the one aimed at (a rotation:
# the new certificate's own describe and the check's come before the settlement's; RegisterThing's own
# UpdateCertificate comes before the settlement's).
SETTLING_CALLS = {
    "ListThingPrincipals": 1,
    "DescribeCertificate": 2,
    "UpdateCertificate": 1,
    "DetachThingPrincipal": 0,
}


@pytest.mark.parametrize("operation", SETTLING_CALLS)
def test_a_rotation_whose_settlement_fails_midway_is_finished_by_the_redelivery(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    # Given a device rotating its certificate (replace mode), and one settling call failing past botocore's retries
    monkeypatch.setenv("JITR_EXISTING_THING", "replace")
    old = fleet.device("rotating")
    assert decide(fleet.first_connect(old))["outcome"] == "PROVISIONED"
    new = fleet.device("rotating")
    event = fleet.first_connect(new)
    attempts = int(os.environ.get("JITR_MAX_ATTEMPTS", "5"))
    faults = [ServiceUnavailableException("down") for _ in range(attempts)]
    fleet.account.iot.inject_faults(operation, *faults, after=SETTLING_CALLS[operation])
    # When the new certificate is decided: RegisterThing succeeded, the settlement did not
    first = decide(event)
    assert (first["outcome"], first["reason"]) == ("RETRY", "OWNERSHIP_NOT_SETTLED")
    assert fleet.account.iot.state.faults[operation] == deque()  # the fault was spent where it was aimed
    # Then its redelivery finds the certificate ACTIVE, and finishes the work instead of stopping there
    again = decide(event)
    assert again["outcome"] == "ALREADY_ACTIVE"
    assert _one_owner(fleet, "rotating", [certificate_id(c.certificate) for c in (old, new)]) == certificate_id(
        new.certificate
    )
    assert fleet.status(certificate_id(old.certificate)) == "INACTIVE"
    # ...and a later duplicate has nothing left to do
    assert decide(event)["message"] == "the certificate is already ACTIVE"


@pytest.mark.parametrize(("operation", "after"), [("UpdateCertificate", 2), ("DetachThingPrincipal", 0)])
@pytest.mark.parametrize("mode", ["refuse", "replace"])
def test_a_race_whose_settlement_fails_ends_with_one_owner_after_redelivery(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, mode: str, operation: str, after: int
) -> None:
    # Given two certificates for one thing from two CAs raced at once, the first settling call of `operation`
    # failing past botocore's retries (RegisterThing's own UpdateCertificate calls pass)
    monkeypatch.setenv("JITR_EXISTING_THING", mode)
    other = _other_fleet(fleet)
    devices = [(fleet, fleet.device("twin")), (other, other.device("twin"))]
    events = [f.first_connect(d) for f, d in devices]
    attempts = int(os.environ.get("JITR_MAX_ATTEMPTS", "5"))
    fleet.account.iot.inject_faults(
        operation, *[ServiceUnavailableException("down") for _ in range(attempts)], after=after
    )
    decisions = _race(fleet, events)
    assert fleet.account.iot.state.succeeded["RegisterThing"] == 2
    # When every record that failed is delivered again, as SQS does
    retried = [e for e, d in zip(events, decisions, strict=True) if d["outcome"] == "RETRY"]
    for event in retried:
        assert decide(event)["outcome"] != "RETRY"
    # Then exactly one certificate is ACTIVE and attached; the other is neither
    _one_owner(fleet, "twin", [certificate_id(d.certificate) for _, d in devices])
