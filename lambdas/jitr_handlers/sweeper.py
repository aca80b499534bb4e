"""The sweeper: a scheduled function that closes the one loss path the intake cannot, an event that never reached the
queue (a broken rule role, a deleted or full queue: such an event goes to the rule-errors log only). It lists each
configured CA's certificates, and for every one still PENDING_ACTIVATION after `JITR_SWEEP_MIN_AGE_SECONDS` that the
decision table does not hold as decided, puts a registration event on the intake queue, as the rule would have: the
handler then decides it as any other event.

It resumes where the last run stopped. Each CA is swept in passes, newest certificates first, one page of 250 at a
time; after each page its events are sent and the marker of the next page is kept in the decision table (an item
`jitr-sweep-cursor#<CA id>`), so the next run lists on from there, and a pass that reaches the end starts again from
the top at the next run. Several CAs take pages in turn. Every certificate is therefore listed once per pass, however
large the CA and however many certificates are pending on purpose (a rejection action of NONE leaves refused
certificates pending; the decision table remembers them as decided, so they are not sent again).

Bounded and paced: a run lists until the Lambda context has less than `LISTING_MARGIN_S` left (checked before every
page), at most `JITR_SWEEP_LIST_TPS` pages per second (AWS's default quota is 10), and sends at most
`JITR_SWEEP_MAX_PER_RUN` events; a page whose events do not all fit is listed again by the next run. Every event it
puts is counted in the `SweptCertificates` metric, which has an alarm: each one is an event the rule did not deliver.
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from jitr.iot import client_config
from jitr.pacing import Pacer
from jitr.provisioning import RegistrationEvent

from .observability import logger, metrics, tracer
from .once import KEY_ATTRIBUTE, DecisionRecords

SQS_BATCH = 10  # SendMessageBatch's limit
PAGE_SIZE = 250  # ListCertificatesByCA's largest page
CURSOR_PREFIX = "jitr-sweep-cursor"  # the decision table's item "jitr-sweep-cursor#<CA id>": where that CA's pass is
LISTING_MARGIN_S = 60.0  # listing stops with this much of the invocation left: room for one slow page and its sends
READERS = 8  # decision-table reads in flight for one page, so a page of pending certificates takes ~one read's time


@dataclass(frozen=True)
class SweepSettings:
    ca_certificate_ids: tuple[str, ...]
    queue_url: str
    decision_table: str
    min_age_s: float = 900.0
    max_per_run: int = 500
    list_tps: float = 2.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> SweepSettings:
        try:
            settings = cls(
                ca_certificate_ids=tuple(i for i in environ.get("JITR_SWEEP_CA_IDS", "").split(",") if i),
                queue_url=environ["JITR_INTAKE_QUEUE_URL"],
                decision_table=environ["JITR_DECISION_TABLE"],
                min_age_s=float(environ.get("JITR_SWEEP_MIN_AGE_SECONDS", "900")),
                max_per_run=int(environ.get("JITR_SWEEP_MAX_PER_RUN", "500")),
                list_tps=float(environ.get("JITR_SWEEP_LIST_TPS", "2")),
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"the sweeper is misconfigured: {exc!r}") from exc
        if settings.min_age_s < 0 or settings.max_per_run < 1 or settings.list_tps <= 0:
            raise ValueError("the sweeper is misconfigured: JITR_SWEEP_* must be positive")
        return settings

    @property
    def page_size(self) -> int:
        """At most the run's bound, so a run's first page always fits and every run moves its cursor on."""
        return min(PAGE_SIZE, self.max_per_run)


@dataclass(frozen=True)
class SweepClients:
    iot: Any
    sqs: Any
    dynamodb: Any


@dataclass
class SweepResult:
    swept: int = 0  # events put on the queue
    complete: bool = False  # every CA's pass reached its end in this run (else the next run goes on from its cursor)
    failed: int = 0  # events the queue refused (the next run lists their page again)
    listed: int = 0  # certificates listed
    decided: int = 0  # pending certificates the decision table holds as decided: not sent again
    held: int = 0  # pending certificates held (not enrolled, no product, on hold...): their events arrive; not sent

    def to_dict(self) -> dict[str, int | bool]:
        return {
            "swept": self.swept,
            "complete": self.complete,
            "failed": self.failed,
            "listed": self.listed,
            "decided": self.decided,
            "held": self.held,
        }


class Cursors:
    """The marker of the next page of each CA's pass (None: the top), one item per CA in the decision table, under a
    key prefix of its own. Items without an `expiration` never expire."""

    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self.table_name = table_name
        self.dynamodb = dynamodb

    @staticmethod
    def key(ca_certificate_id: str) -> dict[str, dict[str, str]]:
        return {KEY_ATTRIBUTE: {"S": f"{CURSOR_PREFIX}#{ca_certificate_id}"}}

    def get(self, ca_certificate_id: str) -> str | None:
        item = self.dynamodb.get_item(TableName=self.table_name, Key=self.key(ca_certificate_id), ConsistentRead=True)
        marker = item.get("Item", {}).get("marker", {}).get("S")
        return str(marker) if marker else None

    def put(self, ca_certificate_id: str, marker: str | None) -> None:
        item = {**self.key(ca_certificate_id), "updatedAt": {"S": datetime.now(UTC).isoformat(timespec="seconds")}}
        if marker:
            item["marker"] = {"S": marker}
        self.dynamodb.put_item(TableName=self.table_name, Item=item)


class Page(StrEnum):
    MORE = "MORE"  # the cursor moved on; the CA's pass goes on
    END = "END"  # the CA's pass reached its end; its next pass starts from the top
    STOP = "STOP"  # the run's bound is reached, or the queue refused events: the cursor stays on this page


@dataclass
class _CaPass:
    ca_certificate_id: str
    marker: str | None


@dataclass
class _Run:
    settings: SweepSettings
    clients: SweepClients
    account_id: str
    older_than: datetime
    time_left_s: Callable[[], float]
    readers: ThreadPoolExecutor
    pacer: Pacer = field(init=False)
    cursors: Cursors = field(init=False)
    decisions: DecisionRecords = field(init=False)
    result: SweepResult = field(default_factory=SweepResult)

    def __post_init__(self) -> None:
        self.pacer = Pacer(self.settings.list_tps)
        self.cursors = Cursors(self.settings.decision_table, self.clients.dynamodb)
        self.decisions = DecisionRecords(self.settings.decision_table, self.clients.dynamodb)

    def go(self) -> SweepResult:
        """The CAs take pages in turn until every pass ends, the run's bound is reached, or time runs short."""
        passes = deque(_CaPass(ca, self.cursors.get(ca)) for ca in self.settings.ca_certificate_ids)
        while passes and self.time_left_s() > LISTING_MARGIN_S:
            ca_pass = passes.popleft()
            outcome = self.page(ca_pass)
            if outcome == Page.END:
                logger.info("sweep pass complete", extra={"caCertificateId": ca_pass.ca_certificate_id})
                continue
            passes.append(ca_pass)
            if outcome == Page.STOP:
                break
        self.result.complete = not passes
        return self.result

    def page(self, ca_pass: _CaPass) -> Page:
        """List one page of `ca_pass`, send its stale, undecided pending certificates' events, and move its cursor
        on, unless they do not all fit in the run's bound or the queue refused some (then the next run lists the
        page again; those already decided by then are not sent again)."""
        certificates, next_marker = self._list(ca_pass)
        self.result.listed += len(certificates)
        events = [
            RegistrationEvent.payload(c["certificateId"], ca_pass.ca_certificate_id, self.account_id, _ms(c))
            for c in self._undecided(ca_pass.ca_certificate_id, [c for c in certificates if self._stale_pending(c)])
        ]
        room = self.settings.max_per_run - self.result.swept - self.result.failed
        failed = self._send(events[:room])
        self.result.swept += min(len(events), room) - failed
        self.result.failed += failed
        if failed or len(events) > room:
            return Page.STOP
        ca_pass.marker = next_marker
        self.cursors.put(ca_pass.ca_certificate_id, next_marker)
        return Page.MORE if next_marker else Page.END

    def _list(self, ca_pass: _CaPass) -> tuple[list[dict[str, Any]], str | None]:
        """One page from the cursor. A marker AWS no longer accepts starts the pass again from the top."""
        self.pacer.wait()
        try:
            page = self._list_from(ca_pass.ca_certificate_id, ca_pass.marker)
        except ClientError as exc:
            if ca_pass.marker is None or exc.response.get("Error", {}).get("Code") != "InvalidRequestException":
                raise
            logger.warning(
                "the sweep's marker was refused; its pass starts again from the top",
                extra={"caCertificateId": ca_pass.ca_certificate_id},
            )
            ca_pass.marker = None
            self.pacer.wait()
            page = self._list_from(ca_pass.ca_certificate_id, None)
        return page.get("certificates", []), page.get("nextMarker")

    def _list_from(self, ca_certificate_id: str, marker: str | None) -> dict[str, Any]:
        page: dict[str, Any] = self.clients.iot.list_certificates_by_ca(
            caCertificateId=ca_certificate_id,
            pageSize=self.settings.page_size,
            ascendingOrder=False,  # newest first: a lost event is usually recent, and each pass starts with them
            **({"marker": marker} if marker else {}),
        )
        return page

    def _stale_pending(self, certificate: dict[str, Any]) -> bool:
        return certificate["status"] == "PENDING_ACTIVATION" and _created(certificate) <= self.older_than

    def _undecided(self, ca_certificate_id: str, pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Those the decision table holds neither as decided (a record being written or expired is not a decision) nor
        as held (a hold's events arrive: the device, an import or an enable decides it again, not the sweeper)."""
        records = list(self.readers.map(lambda c: self.decisions.get(c["certificateId"], ca_certificate_id), pending))
        undecided = [c for c, record in zip(pending, records, strict=True) if not (record and "outcome" in record)]
        self.result.decided += len(pending) - len(undecided)
        holds = list(self.readers.map(lambda c: self.decisions.held(c["certificateId"], ca_certificate_id), undecided))
        lost = [c for c, hold in zip(undecided, holds, strict=True) if hold is None]
        self.result.held += len(undecided) - len(lost)
        return lost

    def _send(self, events: list[dict[str, Any]]) -> int:
        """Put `events` on the intake queue; returns how many it refused."""
        failed = 0
        for start in range(0, len(events), SQS_BATCH):
            batch = events[start : start + SQS_BATCH]
            response = self.clients.sqs.send_message_batch(
                QueueUrl=self.settings.queue_url,
                Entries=[{"Id": str(i), "MessageBody": json.dumps(event)} for i, event in enumerate(batch)],
            )
            failed += len(response.get("Failed", []))
        return failed


def _created(certificate: dict[str, Any]) -> datetime:
    created: datetime = certificate["creationDate"]
    return created if created.tzinfo else created.replace(tzinfo=UTC)


def _ms(certificate: dict[str, Any]) -> int:
    return int(_created(certificate).timestamp() * 1000)


def sweep(
    settings: SweepSettings,
    clients: SweepClients,
    account_id: str,
    *,
    now: datetime | None = None,
    time_left_s: Callable[[], float] = lambda: math.inf,
) -> SweepResult:
    """One run: put a registration event on the queue for every certificate of the configured CAs still pending after
    the minimum age and not decided, from each CA's cursor on, until the passes end, the run's bound is reached, or
    `time_left_s()` (the invocation's remaining seconds) falls to `LISTING_MARGIN_S`. Read-only on AWS IoT; writes
    only the cursors."""
    older_than = (now or datetime.now(UTC)) - timedelta(seconds=settings.min_age_s)
    with ThreadPoolExecutor(READERS) as readers:
        return _Run(settings, clients, account_id, older_than, time_left_s, readers).go()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int | bool]:
    """One scheduled run. Raising fails the invocation (the `SweeperErrors` alarm) and EventBridge tries it up to twice
    more; the pages done before are kept (their events sent, the cursor moved on)."""
    settings = SweepSettings.from_environment()
    config = client_config(5)
    account_id = context.invoked_function_arn.split(":")[4]
    clients = SweepClients(*(boto3.client(name, config=config) for name in ("iot", "sqs", "dynamodb")))
    result = sweep(settings, clients, account_id, time_left_s=lambda: context.get_remaining_time_in_millis() / 1000)
    metrics.add_metric(name="SweptCertificates", unit=MetricUnit.Count, value=result.swept)
    level = logger.warning if result.swept or result.failed else logger.info
    level("sweep done", extra=result.to_dict())
    if result.failed:
        raise RuntimeError(f"the intake queue refused {result.failed} swept events; the next run sends them again")
    return result.to_dict()
