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
from jitr_tools.embedded.errors import ServiceUnavailableException
from jitr_tools.rehearsal import create_decision_table
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
