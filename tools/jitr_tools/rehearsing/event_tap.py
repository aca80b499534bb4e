"""Decision events as a subscriber sees them, in the embedded account: a rule on the bus forwards every event whose
source is jitr to a queue, which `jitr serve` prints from and `jitr simulate` counts."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import boto3

from jitr.events import SOURCE
from jitr.products import IMPLICIT

RULE = "jitr-rehearsal-decision-events"
QUEUE = "jitr-rehearsal-decision-events"


def local_bus(bus: str) -> str:
    """The name a configured bus (a name or an ARN) has in the embedded account."""
    return bus.rsplit(":event-bus/", 1)[-1] if bus.startswith("arn:") else bus


class EventTap:
    """The queue a rule on `bus` fills (the bus is made first if the account has none of that name)."""

    def __init__(self, bus: str, region: str) -> None:
        self.sqs = boto3.client("sqs", region_name=region)
        events = boto3.client("events", region_name=region)
        if bus != "default" and bus not in {b["Name"] for b in events.list_event_buses()["EventBuses"]}:
            events.create_event_bus(Name=bus)
        self.url = self.sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]
        events.put_rule(Name=RULE, EventBusName=bus, EventPattern=json.dumps({"source": [SOURCE]}))
        events.put_targets(Rule=RULE, EventBusName=bus, Targets=[{"Id": "queue", "Arn": attributes["QueueArn"]}])

    def drain(self) -> list[dict[str, Any]]:
        """The events delivered since the last call, oldest first."""
        received: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                received.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return received


def event_line(event: dict[str, Any]) -> str:
    """One event as `jitr serve` prints it: its detail-type, then the certificate, outcome, reason, thing and product
    (when the configuration names products)."""
    detail = event.get("detail", {})
    parts = [f"EVENT {event.get('detail-type')}", f"certificate {str(detail.get('certificateId'))[:12]}"]
    parts.append(str(detail.get("outcome")) + (f" {detail['reason']}" if detail.get("reason") else ""))
    if detail.get("thingName"):
        parts.append(f"thing {detail['thingName']}")
    if detail.get("product") and detail["product"] != IMPLICIT:
        parts.append(f"product {detail['product']}")
    parts.append(f"eventId {str(detail.get('eventId'))[:12]}")
    return " ".join(parts)


class EventPrinter:
    """Says each event of `tap` as it arrives (`event_line`), from a thread, until `stop()`, which says the rest."""

    def __init__(self, tap: EventTap, say: Callable[[str], None], period_s: float = 0.2) -> None:
        self.tap, self.say, self.period_s = tap, say, period_s
        self.heard = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="jitr-decision-events", daemon=True)

    def start(self) -> EventPrinter:
        self._thread.start()
        return self

    def _listen(self) -> None:
        while not self._stop.wait(self.period_s):
            self._hear()

    def _hear(self) -> None:
        for event in self.tap.drain():
            self.heard += 1
            self.say(event_line(event))

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(5)
        self._hear()
