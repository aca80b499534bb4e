"""One decision per certificate, however often its event arrives: Powertools' Idempotency utility, its records in
the stack's DynamoDB table.

A record is keyed on the certificate id *and the CA id the event names*: the genuine events of a certificate all name
its CA, so an event naming another CA (forged, or misrouted) never shares their key. It can neither answer the
genuine events from its record nor hold them off as "being decided" while it is decided itself.

A duplicate of a decided certificate is answered from its record, with no AWS IoT call (DUPLICATE ALREADY_DECIDED);
a duplicate of one being decided right now in another execution environment is acknowledged too (DUPLICATE
BEING_DECIDED): if that environment fails, its own SQS record is redelivered, so the device is never lost. Only final
decisions about the certificate itself are kept (`jitr.outcomes.remembered`): a RETRY, or a decision about the event
(a certificate AWS IoT does not hold, a CA that is not the certificate's), leaves no record, so the next delivery
decides again. The record tells an operator what was decided for a certificate, when and why, for the retention the
stack sets (`decisionRetentionDays`, 30 days by default).

Decision events (`jitr.events`), at least once: a decision is published only once its record is written, and the
record says so until it is (`eventPending`): the delivery that decided publishes it, then drops the flag. The flag
holds a lease, the end of that delivery's invocation: a duplicate that finds the flag within the lease publishes
nothing (the deciding delivery is publishing it). If EventBridge does not take it, the decision stands as recorded,
the lease is released, and the delivery reports `unpublished`, so SQS redelivers its record: the redelivery (or any
delivery after the lease, as after a crash between recording and publishing) publishes the recorded decision. A hold
is never recorded: it is published each time it is made.

A hold leaves a marker instead (`jitr-held#<certificate id>#<CA id>`, for the retention): not a decision (the next
event decides again), but the sweeper's sign that the certificate's events do arrive, so it is not taken for a lost
one and sent again every pass (a device waiting for its manifest may wait for weeks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyItemNotFoundError,
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.idempotency.idempotency import idempotent_function
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from jitr.events import NotPublished, now
from jitr.outcomes import Outcome, Reason, remembered
from jitr.provisioning import Decision, RegistrationEvent

KEY_PREFIX = "jitr-decision"  # records are keyed "jitr-decision#<md5 of [certificate id, CA id] as JSON>"
EVENT_KEY = "[certificateId, caCertificateId]"  # the JMESPath of the key's parts in the event
KEY_ATTRIBUTE = "id"  # the table's partition key
EXPIRY_ATTRIBUTE = "expiration"  # the table's TTL attribute: a record lives for the retention
SECONDS_PER_DAY = 86_400
EVENT_PENDING = "eventPending"  # in a record: its event is not published yet; until when the decider may publish it
EVENT_LEASE_S = 30  # that lease with no Lambda context to read it from (the handler's timeout)
# Publishes a decision (as recorded: `Decision.to_dict()` and `decidedAt`); raises `NotPublished`.
Announce = Callable[[dict[str, Any]], None]
HELD_PREFIX = "jitr-held"  # "jitr-held#<certificate id>#<CA id>": the latest hold of a certificate still pending


def held_key(certificate_id: str, ca_certificate_id: str) -> str:
    return f"{HELD_PREFIX}#{certificate_id}#{ca_certificate_id}"


class _NotFinal(Exception):
    """A decision that must not be remembered: raising it makes Powertools delete the in-progress record."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reason)
        self.decision = decision


def _config(retention_days: int) -> IdempotencyConfig:
    return IdempotencyConfig(
        event_key_jmespath=EVENT_KEY,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=retention_days * SECONDS_PER_DAY,
    )


def _persistence(table_name: str, dynamodb_client: Any) -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(
        table_name=table_name, key_attr=KEY_ATTRIBUTE, expiry_attr=EXPIRY_ATTRIBUTE, boto3_client=dynamodb_client
    )


class DecisionRecords:
    """Reads the decision table's records through Powertools' own record lookup, so the key is the one the handler
    wrote. One persistence layer serves every read: Powertools registers a hook on the client each time one is
    built, so building one per read makes a long run of reads on one client slower and slower."""

    def __init__(self, table_name: str, dynamodb_client: Any) -> None:
        self.table_name, self.client = table_name, dynamodb_client
        self.persistence = _persistence(table_name, dynamodb_client)
        self.persistence.configure(_config(1), key_prefix=KEY_PREFIX)

    def held(self, certificate_id: str, ca_certificate_id: str) -> dict[str, Any] | None:
        """The certificate's latest hold (`outcome`, `reason`, `heldAt`), while its marker lives; else None."""
        key = {KEY_ATTRIBUTE: {"S": held_key(certificate_id, ca_certificate_id)}}
        item = self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True).get("Item")
        if not item or float(item.get(EXPIRY_ATTRIBUTE, {}).get("N", "0")) <= time.time():
            return None  # DynamoDB deletes expired items lazily: an expired marker is no marker
        return {name: item[name]["S"] for name in ("outcome", "reason", "heldAt") if "S" in item.get(name, {})}

    def get(self, certificate_id: str, ca_certificate_id: str) -> dict[str, Any] | None:
        """What the table holds for the certificate issued by the CA (the decision, with `decidedAt`), or None. An
        in-progress record reads as {"status": "INPROGRESS"}."""
        try:
            record = self.persistence.get_record(
                {"certificateId": certificate_id, "caCertificateId": ca_certificate_id}
            )
        except IdempotencyItemNotFoundError:
            return None
        if record is None:
            return None
        if record.status != "COMPLETED":
            return {"status": record.status}
        stored: dict[str, Any] = record.response_json_as_dict() or {}
        return stored


def recorded_decision(
    certificate_id: str, ca_certificate_id: str, *, table_name: str, dynamodb_client: Any
) -> dict[str, Any] | None:
    """One read of `DecisionRecords` (for a single look-up, as `jitr explain` makes)."""
    return DecisionRecords(table_name, dynamodb_client).get(certificate_id, ca_certificate_id)


class DecideOnce:
    """`decide`, at most once per certificate (and the CA its event names), with a final decision about the
    certificate remembered for `retention_days`."""

    def __init__(
        self,
        decide: Callable[[RegistrationEvent], Decision],
        *,
        table_name: str,
        retention_days: int,
        dynamodb_client: Any,
        announce: Announce | None = None,
    ) -> None:
        self.decide = decide
        self.announce = announce
        self.table_name, self.client, self.retention_days = table_name, dynamodb_client, retention_days
        self.config = _config(retention_days)
        self.persistence = persistence = _persistence(table_name, dynamodb_client)
        self.fresh: Decision | None = None

        @idempotent_function(  # type: ignore[untyped-decorator]  # Powertools' decorator is typed as returning Any
            data_keyword_argument="event", persistence_store=persistence, config=self.config, key_prefix=KEY_PREFIX
        )
        def once(event: dict[str, Any]) -> dict[str, Any]:
            decision = self.decide(RegistrationEvent.model_validate(event))
            if not remembered(decision.outcome, decision.reason):
                raise _NotFinal(decision)
            self.fresh = decision
            pending = {EVENT_PENDING: self._lease()} if self.announce else {}
            return {**decision.to_dict(), "decidedAt": datetime.now(UTC).isoformat(timespec="seconds"), **pending}

        self.once = once

    def register_lambda_context(self, context: LambdaContext) -> None:
        """An in-progress record expires with the invocation that made it (a crashed one does not block for long)."""
        self.config.register_lambda_context(context)

    def __call__(self, event: RegistrationEvent) -> Decision:
        self.fresh = None
        data = event.model_dump(by_alias=True)
        try:
            stored = self.once(event=data)
        except _NotFinal as exc:
            if exc.decision.outcome == Outcome.HELD:  # never recorded: published each time it is made
                self._mark_held(exc.decision)
                self._publish(exc.decision, {**exc.decision.to_dict(), "decidedAt": now()})
            return exc.decision
        except IdempotencyAlreadyInProgressError:
            return Decision(
                Outcome.DUPLICATE,
                event.certificate_id,
                event.ca_certificate_id,
                Reason.BEING_DECIDED,
                "another execution environment is deciding this certificate now; if it fails, its own record is"
                " redelivered",
            )
        except IdempotencyPersistenceLayerError as exc:
            return Decision(
                Outcome.RETRY,
                event.certificate_id,
                event.ca_certificate_id,
                Reason.DECISION_STORE_UNAVAILABLE,
                f"the decision table could not be read or written: {exc}",
            )
        decision = self.fresh if self.fresh is not None else _duplicate(event, stored)
        lease = stored.get(EVENT_PENDING)
        if lease is not None and (self.fresh is not None or time.time() >= float(lease)):
            self._publish(decision, stored, data)
        return decision

    def _mark_held(self, decision: Decision) -> None:
        """Leave the hold's marker for the sweeper. A write that fails only means the sweeper sends the certificate's
        event again, and it is decided again: no harm, so the decision stands."""
        assert decision.certificate_id is not None
        assert decision.ca_certificate_id is not None
        item = {
            KEY_ATTRIBUTE: {"S": held_key(decision.certificate_id, decision.ca_certificate_id)},
            "outcome": {"S": str(decision.outcome)},
            "reason": {"S": str(decision.reason)},
            "heldAt": {"S": now()},
            EXPIRY_ATTRIBUTE: {"N": str(int(time.time()) + self.retention_days * SECONDS_PER_DAY)},
        }
        with suppress(ClientError, BotoCoreError):
            self.client.put_item(TableName=self.table_name, Item=item)

    def _lease(self) -> int:
        """Until when (epoch seconds) the delivery deciding now may publish its decision: its invocation's end."""
        context = self.config.lambda_context
        seconds = context.get_remaining_time_in_millis() / 1000 if context is not None else EVENT_LEASE_S
        return int(time.time() + seconds) + 1

    def _publish(self, decision: Decision, record: dict[str, Any], data: dict[str, Any] | None = None) -> None:
        """Publish the decision `record` holds; once published, drop its record's flag (`data`: the event it is
        keyed on). Not published: `decision.unpublished` says why (the caller has the delivery made again)."""
        if self.announce is None:
            return
        try:
            self.announce(record)
        except NotPublished as exc:
            decision.unpublished = str(exc)
            published = False
        else:
            published = True
        if data is None:
            return
        # Published: the flag is dropped. Not: the lease is released, so the next delivery publishes it. A write that
        # fails leaves the flag: a delivery after the lease publishes it (again, under the same eventId).
        result = {name: value for name, value in record.items() if name != EVENT_PENDING}
        with suppress(ClientError, BotoCoreError):
            self.persistence.save_success(data=data, result=result if published else {**result, EVENT_PENDING: 0})


def _duplicate(event: RegistrationEvent, stored: dict[str, Any]) -> Decision:
    """A delivery answered from the record of the certificate's decision."""
    return Decision(
        Outcome.DUPLICATE,
        event.certificate_id,
        event.ca_certificate_id,
        Reason.ALREADY_DECIDED,
        f"decided {stored.get('outcome')}"
        + (f" {stored['reason']}" if stored.get("reason") else "")
        + f" at {stored.get('decidedAt')}: {stored.get('message')}",
        thing_name=stored.get("thingName"),
    )
