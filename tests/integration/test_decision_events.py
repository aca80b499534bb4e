"""Decision events on moto's EventBridge, delivered by a rule to an SQS queue as a subscriber's would be: each final
decision once it is recorded (provisioned, rejected with its reason, held, replaced), a duplicate never again, a
publish that fails counted and made again by the redelivery with the decision unchanged, and the revocation sync's."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jitr.certificates import certificate_id
from jitr.settings import Settings
from jitr_handlers import revocation_sync
from jitr_handlers.registration import handler
from jitr_handlers.revocation_sync import run
from jitr_tools import pki
from jitr_tools.pki.crl_server import CrlServer
from jitr_tools.rehearsing.rehearsal import create_decision_table
from tests.integration.support import FakeLambdaContext, Fleet, sqs_event

CRL_PATH = "/crl/issuing.crl"
HEX64 = 64


class Subscriber:
    """A queue that a rule on `bus` fills with every event whose source is jitr."""

    def __init__(self, bus: str = "default") -> None:
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        self.url = self.sqs.create_queue(QueueName=f"subscriber-{bus}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = boto3.client("events", region_name="us-east-1")
        if bus != "default":
            events.create_event_bus(Name=bus)
        events.put_rule(Name="jitr-decisions", EventBusName=bus, EventPattern=json.dumps({"source": ["jitr"]}))
        events.put_targets(Rule="jitr-decisions", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])

    def received(self) -> list[dict[str, Any]]:
        """The events delivered since the last call (each an EventBridge event: detail-type, source, detail)."""
        messages: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                messages.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return messages


@pytest.fixture
def subscriber(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Subscriber:
    """The stack's settings (a decision table, events on the default bus) and a subscriber to that bus."""
    monkeypatch.setenv("JITR_DECISION_TABLE", create_decision_table(boto3.client("dynamodb", region_name="us-east-1")))
    monkeypatch.setenv("JITR_EVENT_BUS", "default")
    return Subscriber()


def stored(event: dict[str, Any]) -> dict[str, Any]:
    from jitr_handlers.once import recorded_decision

    found = recorded_decision(
        event["certificateId"],
        event["caCertificateId"],
        table_name="jitr-decisions",
        dynamodb_client=boto3.client("dynamodb", region_name="us-east-1"),
    )
    assert found is not None
    return found


def test_a_provisioned_device_is_published_once_recorded_with_the_documented_detail(
    fleet: Fleet, subscriber: Subscriber
) -> None:
    device = fleet.device("sensor-7")
    event = fleet.first_connect(device)
    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": []}
    (published,) = subscriber.received()
    assert (published["source"], published["detail-type"]) == ("jitr", "Device Provisioned")
    detail = published["detail"]
    assert len(detail["eventId"]) == HEX64
    assert {k: v for k, v in detail.items() if k not in ("eventId", "message")} == {
        "schemaVersion": "1.0",
        "stack": "jitr",
        "product": "default",
        "certificateId": certificate_id(device.certificate),
        "caCertificateId": fleet.ca_id,
        "thingName": "sensor-7",
        "outcome": "PROVISIONED",
        "reason": None,
        "serialNumber": f"{device.certificate.serial_number:x}",
        "notAfter": device.certificate.not_valid_after_utc.isoformat(),
        "decidedAt": stored(event)["decidedAt"],  # the decision as recorded
    }
    assert "BEGIN" not in json.dumps(published)  # never a PEM
    assert "eventPending" not in stored(event)  # published: the record says so


def test_a_rejected_device_is_published_with_its_reason(fleet: Fleet, subscriber: Subscriber) -> None:
    event = fleet.first_connect(fleet.device("weak-1", key="rsa1024"))
    handler(sqs_event(event), FakeLambdaContext())
    (published,) = subscriber.received()
    assert published["detail-type"] == "Device Rejected"
    assert (published["detail"]["outcome"], published["detail"]["reason"]) == ("REJECTED", "WEAK_KEY")
    assert published["detail"]["message"]


def test_a_duplicate_answered_from_the_record_is_not_published_again(fleet: Fleet, subscriber: Subscriber) -> None:
    event = fleet.first_connect(fleet.device("twice-1"))
    handler(sqs_event(event), FakeLambdaContext())
    assert handler(event, FakeLambdaContext())["reason"] == "ALREADY_DECIDED"
    assert handler(sqs_event(event, event), FakeLambdaContext()) == {"batchItemFailures": []}
    assert [e["detail"]["outcome"] for e in subscriber.received()] == ["PROVISIONED"]


def test_a_replaced_certificate_is_published_beside_the_provisioning_that_replaced_it(
    fleet: Fleet, subscriber: Subscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JITR_EXISTING_THING", "replace")
    old, new = fleet.device("rotating-1"), fleet.device("rotating-1")
    handler(fleet.first_connect(old), FakeLambdaContext())
    handler(fleet.first_connect(new), FakeLambdaContext())
    first, second, replaced = subscriber.received()
    old_id, new_id = certificate_id(old.certificate), certificate_id(new.certificate)
    assert (first["detail"]["certificateId"], second["detail"]["certificateId"]) == (old_id, new_id)
    assert second["detail"]["replacedCertificateIds"] == [old_id]
    assert replaced["detail-type"] == "Certificate Replaced"
    assert (replaced["detail"]["certificateId"], replaced["detail"]["caCertificateId"]) == (old_id, fleet.ca_id)
    assert replaced["detail"]["replacedBy"] == {"certificateId": new_id, "caCertificateId": fleet.ca_id}
    assert replaced["detail"]["thingName"] == "rotating-1"
    assert len({first["detail"]["eventId"], second["detail"]["eventId"], replaced["detail"]["eventId"]}) == 3


def test_a_publish_that_fails_is_counted_and_made_by_the_redelivery_without_changing_the_decision(
    fleet: Fleet, subscriber: Subscriber, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given events configured onto a bus that does not exist yet (a deployment mistake)
    monkeypatch.setenv("JITR_EVENT_BUS", "fleet-events")
    event = fleet.first_connect(fleet.device("unheard-1"))
    # When the device is decided: provisioned and recorded, but its event is not taken
    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    # Then the decision stands, the record still owes its event (for whichever delivery comes next), and the failure
    # is counted
    assert fleet.status(event["certificateId"]) == "ACTIVE"
    decided = stored(event)
    assert (decided["outcome"], decided["eventPending"]) == ("PROVISIONED", 0)
    assert '"DecisionEventsFailed"' in capsys.readouterr().out  # the EMF metric the alarm watches
    # When the bus exists (the fix) and SQS redelivers the record
    fleet_bus = Subscriber("fleet-events")
    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": []}
    # Then the recorded decision is published, unchanged, once; later duplicates publish nothing
    (published,) = fleet_bus.received()
    assert published["detail"]["outcome"] == "PROVISIONED"
    assert published["detail"]["decidedAt"] == decided["decidedAt"]
    assert stored(event) == {k: v for k, v in decided.items() if k != "eventPending"}
    handler(sqs_event(event), FakeLambdaContext())
    assert fleet_bus.received() == []
    assert subscriber.received() == []


def owe_event(event: dict[str, Any], until: float) -> None:
    """Make the decision's record say its event is not published, the deciding delivery's lease ending `until`: as
    a delivery leaves it while it publishes, or when its environment died between recording and publishing."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    (item,) = dynamodb.scan(TableName="jitr-decisions")["Items"]
    data = {**json.loads(item["data"]["S"]), "eventPending": int(until)}
    dynamodb.update_item(
        TableName="jitr-decisions",
        Key={"id": item["id"]},
        UpdateExpression="SET #d = :d",
        ExpressionAttributeNames={"#d": "data"},
        ExpressionAttributeValues={":d": {"S": json.dumps(data)}},
    )


def test_a_decision_whose_delivery_died_before_publishing_is_published_by_a_delivery_after_its_lease(
    fleet: Fleet, subscriber: Subscriber
) -> None:
    event = fleet.first_connect(fleet.device("crashed-1"))
    handler(sqs_event(event), FakeLambdaContext())
    assert len(subscriber.received()) == 1
    # Given the record as a delivery leaves it that recorded the decision and then died (a timeout) unpublished
    owe_event(event, until=time.time() + 30)
    # When a duplicate arrives within that delivery's lease: nothing (the deciding delivery may be publishing it)
    handler(sqs_event(event), FakeLambdaContext())
    assert subscriber.received() == []
    # When the dead delivery's own record is redelivered, after the lease (SQS's visibility timeout is longer)
    owe_event(event, until=time.time() - 1)
    handler(sqs_event(event), FakeLambdaContext())
    # Then the recorded decision is published, and the record no longer owes it
    (published,) = subscriber.received()
    assert published["detail"]["outcome"] == "PROVISIONED"
    assert "eventPending" not in stored(event)


@pytest.fixture
def crl_server() -> Iterator[CrlServer]:
    with CrlServer() as server:
        yield server


def publish_crl(server: CrlServer, fleet: Fleet, revoked: list[pki.RevokedEntry], number: int = 1) -> str:
    crl = pki.make_crl(fleet.ca, revoked, number=number)
    return server.publish(CRL_PATH, crl.public_bytes(serialization.Encoding.DER))


def test_a_device_on_hold_is_published_held_at_each_decision_under_one_event_id(
    fleet: Fleet, subscriber: Subscriber, crl_server: CrlServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = fleet.device("held-1")
    url = publish_crl(crl_server, fleet, [(device.certificate, x509.ReasonFlags.certificate_hold)])
    monkeypatch.setenv("JITR_REVOCATION", json.dumps({fleet.ca_id: {"crl": [url]}}))
    monkeypatch.setenv("JITR_REVOCATION_ALLOW_LOOPBACK", "true")
    event = fleet.first_connect(device)
    handler(sqs_event(event), FakeLambdaContext())
    handler(sqs_event(event), FakeLambdaContext())  # its next connect: held again (a hold is never recorded)
    first, again = subscriber.received()
    assert first["detail-type"] == again["detail-type"] == "Device Held"
    assert (first["detail"]["outcome"], first["detail"]["reason"]) == ("HELD", "CERTIFICATE_ON_HOLD")
    assert first["detail"]["eventId"] == again["detail"]["eventId"]  # one hold: consumers keep one
    assert fleet.status(event["certificateId"]) == "PENDING_ACTIVATION"


def test_the_revocation_syncs_changes_are_published(
    fleet: Fleet, subscriber: Subscriber, crl_server: CrlServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two provisioned devices of a synced CA
    url = publish_crl(crl_server, fleet, [])
    monkeypatch.setenv("JITR_REVOCATION", json.dumps({fleet.ca_id: {"crl": [url]}}))
    monkeypatch.setenv("JITR_REVOCATION_ALLOW_LOOPBACK", "true")
    returned, investigated = fleet.device("sync-1"), fleet.device("sync-2")
    handler(sqs_event(fleet.first_connect(returned), fleet.first_connect(investigated)), FakeLambdaContext())
    assert len(subscriber.received()) == 2
    # When the CA revokes one and holds the other, then lifts the hold
    hold = x509.ReasonFlags.certificate_hold
    publish_crl(crl_server, fleet, [(returned.certificate, None), (investigated.certificate, hold)], number=2)
    run(Settings.from_environment())
    revoked, held = subscriber.received()
    publish_crl(crl_server, fleet, [(returned.certificate, None)], number=3)
    run(Settings.from_environment())
    (released,) = subscriber.received()
    # Then each change is one event, with the certificate's serial
    assert (revoked["detail-type"], revoked["detail"]["outcome"]) == ("Certificate Revoked By Issuer", "REVOKED")
    assert revoked["detail"]["certificateId"] == certificate_id(returned.certificate)
    assert revoked["detail"]["serialNumber"] == f"{returned.certificate.serial_number:x}"
    assert (held["detail-type"], held["detail"]["outcome"]) == ("Certificate Held By Issuer", "INACTIVE")
    assert (released["detail-type"], released["detail"]["outcome"]) == ("Certificate Released By Issuer", "ACTIVE")
    assert released["detail"]["certificateId"] == certificate_id(investigated.certificate)


def test_a_sync_whose_events_are_not_taken_counts_it_and_its_revocations_stand(
    fleet: Fleet,
    subscriber: Subscriber,
    crl_server: CrlServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = publish_crl(crl_server, fleet, [])
    monkeypatch.setenv("JITR_REVOCATION", json.dumps({fleet.ca_id: {"crl": [url]}}))
    monkeypatch.setenv("JITR_REVOCATION_ALLOW_LOOPBACK", "true")
    device = fleet.device("sync-3")
    handler(fleet.first_connect(device), FakeLambdaContext())
    publish_crl(crl_server, fleet, [(device.certificate, None)], number=2)
    monkeypatch.setenv("JITR_EVENT_BUS", "no-such-bus")
    (ca,) = revocation_sync.handler({}, FakeLambdaContext())["cas"]  # the scheduled function
    assert ca["revoked"] == [certificate_id(device.certificate)]
    assert "no-such-bus" in ca["eventsNotPublished"]
    assert fleet.status(certificate_id(device.certificate)) == "REVOKED"
    assert '"DecisionEventsFailed"' in capsys.readouterr().out
