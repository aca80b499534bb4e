"""One decision per certificate id (Powertools' Idempotency utility on moto's DynamoDB): a duplicate of a decided
certificate makes no AWS IoT call; one being decided elsewhere is acknowledged, and the device still ends provisioned
when that environment fails midway; only final decisions are remembered."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest

from jitr.certificates import certificate_id
from jitr.settings import Settings
from jitr_handlers.registration import Registration, entry_point, handler
from jitr_tools import pki
from jitr_tools.embedded import Connect
from jitr_tools.embedded.errors import ServiceUnavailableException
from jitr_tools.rehearsing.rehearsal import create_decision_table
from tests.integration.support import FakeLambdaContext, Fleet, sqs_event
from tests.support import DEVICE_POLICY


@pytest.fixture
def decisions(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Any:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    monkeypatch.setenv("JITR_DECISION_TABLE", create_decision_table(dynamodb))
    return dynamodb


def iot_calls(fleet: Fleet) -> int:
    return sum(fleet.account.iot.state.calls.values())


def test_a_duplicate_of_a_decided_certificate_makes_no_aws_iot_call(fleet: Fleet, decisions: Any) -> None:
    event = fleet.first_connect(fleet.device("once-1"))
    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": []}
    assert fleet.status(event["certificateId"]) == "ACTIVE"
    before = iot_calls(fleet)
    decision = handler(event, FakeLambdaContext())
    assert (decision["outcome"], decision["reason"]) == ("DUPLICATE", "ALREADY_DECIDED")
    assert decision["message"].startswith("decided PROVISIONED at ")
    assert iot_calls(fleet) == before  # not a single AWS IoT call
    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": []}  # acknowledged


def test_the_record_tells_an_operator_what_was_decided_when_and_why(fleet: Fleet, decisions: Any) -> None:
    device = fleet.device("weak", key="rsa1024")
    handler(fleet.first_connect(device), FakeLambdaContext())
    (item,) = decisions.scan(TableName="jitr-decisions")["Items"]
    data = item["data"]["S"]
    assert certificate_id(device.certificate) in data
    assert '"outcome": "REJECTED"' in data
    assert '"reason": "WEAK_KEY"' in data
    assert "decidedAt" in data
    days = (int(item["expiration"]["N"]) - time.time()) / 86_400
    assert 29.9 < days <= 30  # the retention the stack sets, 30 days by default


def test_a_retry_is_not_remembered_so_the_redelivery_decides_again(fleet: Fleet, decisions: Any) -> None:
    fleet.account.client.delete_policy(policyName="jitr-device")
    event = fleet.first_connect(fleet.device("later-1"))
    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    fleet.account.client.create_policy(policyName="jitr-device", policyDocument=DEVICE_POLICY)  # the fix
    assert handler(event, FakeLambdaContext())["outcome"] == "PROVISIONED"


def test_a_duplicate_while_another_environment_decides_is_acknowledged_and_the_device_is_not_lost(
    fleet: Fleet, decisions: Any
) -> None:
    # Given environment A deciding slowly, and then failing midway (RegisterThing unavailable past the retries)
    iot = fleet.account.iot
    iot.set_latency("RegisterThing", 0.3)
    iot.inject_faults("RegisterThing", *[ServiceUnavailableException("down") for _ in range(4)])
    event = fleet.first_connect(fleet.device("contended-1"))
    deciding = threading.Event()
    results: dict[str, Any] = {}

    def environment_a() -> None:
        deciding.set()
        results["a"] = handler(sqs_event(event), FakeLambdaContext())

    thread = threading.Thread(target=environment_a)
    thread.start()
    deciding.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until A holds the in-progress record
        items = decisions.scan(TableName="jitr-decisions")["Items"]
        if items and items[0]["status"]["S"] == "INPROGRESS":
            break
        time.sleep(0.01)
    # When environment B receives a duplicate, it acknowledges it without a decision
    environment_b = Registration(Settings.from_environment())
    duplicate = entry_point(lambda: environment_b)(event, FakeLambdaContext())
    thread.join()
    assert (duplicate["outcome"], duplicate["reason"]) == ("DUPLICATE", "BEING_DECIDED")
    # Then A's failure leaves its own record to be redelivered, and the redelivery provisions the device
    assert results["a"] == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert fleet.status(event["certificateId"]) == "PENDING_ACTIVATION"
    iot.set_latency("RegisterThing", 0)
    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": []}
    assert fleet.status(event["certificateId"]) == "ACTIVE"


# -- a decision about the event is not the certificate's: forged or misrouted events lock nobody out ---


def _forged(fleet: Fleet, genuine: dict[str, Any]) -> dict[str, Any]:
    """The genuine event with another registered CA's id in it: what anyone who can write to the intake queue sends."""
    other_ca = pki.make_ca("a forger's CA")
    return {**genuine, "caCertificateId": fleet.account.register_ca(other_ca)}


def test_a_forged_event_does_not_lock_the_device_out(fleet: Fleet, decisions: Any) -> None:
    # Given a device whose first connect published its event, and a forged copy naming another CA
    device = fleet.device("forged-1")
    genuine = fleet.first_connect(device)
    forged = _forged(fleet, genuine)
    # When the forged event is decided first (twice: a repeat is decided again, not answered from a record)
    for _ in range(2):
        decision = Registration(Settings.from_environment()).handle_one(forged)
        assert (decision.outcome, decision.reason) == ("REJECTED", "CA_MISMATCH")
    assert fleet.status(genuine["certificateId"]) == "PENDING_ACTIVATION"  # the certificate is left as it is
    assert decisions.scan(TableName="jitr-decisions")["Items"] == []  # and nothing about it is remembered
    # Then the device's next connect publishes a correct event, and it is provisioned
    assert fleet.account.iot.connect(device.pem).outcome == Connect.PENDING  # the event again, then closed
    reconnect = fleet.account.events[-1]
    assert reconnect["caCertificateId"] == fleet.ca_id
    assert handler(sqs_event(reconnect), FakeLambdaContext()) == {"batchItemFailures": []}
    assert fleet.status(genuine["certificateId"]) == "ACTIVE"
    # ...and the forged event, delivered again afterwards, changes nothing
    decision = Registration(Settings.from_environment()).handle_one(forged)
    assert (decision.outcome, decision.reason) == ("REJECTED", "CA_MISMATCH")
    assert fleet.status(genuine["certificateId"]) == "ACTIVE"


def test_a_forged_event_being_decided_does_not_hold_off_the_genuine_one(fleet: Fleet, decisions: Any) -> None:
    # Given a forged event being decided slowly in environment A (DescribeCertificate is slow)
    device = fleet.device("forged-2")
    genuine = fleet.first_connect(device)
    forged = _forged(fleet, genuine)
    fleet.account.iot.set_latency("DescribeCertificate", 0.5)
    deciding = threading.Event()
    results: dict[str, Any] = {}

    def environment_a() -> None:
        deciding.set()
        results["a"] = Registration(Settings.from_environment()).handle_one(forged)

    thread = threading.Thread(target=environment_a)
    thread.start()
    deciding.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until A holds its in-progress record
        if decisions.scan(TableName="jitr-decisions")["Items"]:
            break
        time.sleep(0.01)
    # When the genuine event arrives in environment B meanwhile
    decision = Registration(Settings.from_environment()).handle_one(genuine)
    thread.join()
    # Then it is decided on its own (not acknowledged as "being decided" by the forged one), and provisioned
    assert (results["a"].outcome, results["a"].reason) == ("REJECTED", "CA_MISMATCH")
    assert decision.outcome == "PROVISIONED"
    assert fleet.status(genuine["certificateId"]) == "ACTIVE"
