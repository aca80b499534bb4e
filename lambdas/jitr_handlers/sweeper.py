"""The sweeper: a scheduled function that closes the one loss path the intake cannot, an event that never reached the
queue (a broken rule role, a deleted or full queue: such an event goes to the rule-errors log only). It lists each
configured CA's certificates, and for every one still PENDING_ACTIVATION after `JITR_SWEEP_MIN_AGE_SECONDS` puts a
registration event on the intake queue, as the rule would have: the handler then decides it as any other event, and
the decision table absorbs it if the certificate is being decided or was decided already.

Bounded and paced: at most `JITR_SWEEP_MAX_PER_RUN` events per run, newest certificates first, listing while the run
has time (the rest wait for the next run), and ListCertificatesByCA at most `JITR_SWEEP_LIST_TPS` pages per second
(AWS's default quota is 10). At 2 pages of 250 per second a 5-minute run lists about 120,000 certificates per run, so a
larger CA is swept from its newest certificates down. Every event it puts
is counted in the `SweptCertificates` metric, which has an alarm: each one is an event the rule did not deliver, or a
device the deployment has left pending (a rejection action of NONE leaves refused certificates pending on purpose).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from jitr.iot import client_config
from jitr.pacing import Pacer
from jitr.provisioning import RegistrationEvent

from .observability import logger, metrics, tracer

SQS_BATCH = 10  # SendMessageBatch's limit
PAGE_SIZE = 250  # ListCertificatesByCA's largest page


@dataclass(frozen=True)
class SweepSettings:
    ca_certificate_ids: tuple[str, ...]
    queue_url: str
    min_age_s: float = 900.0
    max_per_run: int = 500
    list_tps: float = 2.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> SweepSettings:
        try:
            settings = cls(
                ca_certificate_ids=tuple(i for i in environ.get("JITR_SWEEP_CA_IDS", "").split(",") if i),
                queue_url=environ["JITR_INTAKE_QUEUE_URL"],
                min_age_s=float(environ.get("JITR_SWEEP_MIN_AGE_SECONDS", "900")),
                max_per_run=int(environ.get("JITR_SWEEP_MAX_PER_RUN", "500")),
                list_tps=float(environ.get("JITR_SWEEP_LIST_TPS", "2")),
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"the sweeper is misconfigured: {exc!r}") from exc
        if settings.min_age_s < 0 or settings.max_per_run < 1 or settings.list_tps <= 0:
            raise ValueError("the sweeper is misconfigured: JITR_SWEEP_* must be positive")
        return settings


@dataclass(frozen=True)
class SweepResult:
    swept: int  # events put on the queue
    complete: bool  # every CA listed to the end (else the bound or the time stopped it: the next run goes on)
    failed: int  # events the queue refused (retried next run)

    def to_dict(self) -> dict[str, int | bool]:
        return {"swept": self.swept, "complete": self.complete, "failed": self.failed}


def _stale_pending(
    iot: Any, ca_certificate_id: str, older_than: datetime, pacer: Pacer
) -> Iterator[tuple[str, datetime]]:
    marker: str | None = None
    while True:
        pacer.wait()
        page = iot.list_certificates_by_ca(
            caCertificateId=ca_certificate_id,
            pageSize=PAGE_SIZE,
            ascendingOrder=False,  # newest first: a lost event is usually recent; a huge CA is covered from the top
            **({"marker": marker} if marker else {}),
        )
        for certificate in page.get("certificates", []):
            created = certificate["creationDate"]
            created = created if created.tzinfo else created.replace(tzinfo=UTC)
            if certificate["status"] == "PENDING_ACTIVATION" and created <= older_than:
                yield certificate["certificateId"], created
        marker = page.get("nextMarker")
        if not marker:
            return


def sweep(
    settings: SweepSettings,
    iot: Any,
    sqs: Any,
    account_id: str,
    now: datetime | None = None,
    list_until: float | None = None,
) -> SweepResult:
    """Put a registration event on the queue for every certificate of the configured CAs still pending after the
    minimum age, newest first, until the run's bound is reached or the clock passes `list_until` (monotonic: the
    time left for listing); the rest waits for the next run. Read-only on AWS IoT."""
    older_than = (now or datetime.now(UTC)) - timedelta(seconds=settings.min_age_s)
    pacer = Pacer(settings.list_tps)
    events: list[dict[str, Any]] = []
    complete = True
    for ca_id in settings.ca_certificate_ids:
        for certificate_id, created in _stale_pending(iot, ca_id, older_than, pacer):
            if len(events) >= settings.max_per_run or (list_until is not None and time.monotonic() > list_until):
                complete = False
                break
            events.append(RegistrationEvent.payload(certificate_id, ca_id, account_id, int(created.timestamp() * 1000)))
        if not complete:
            break
    failed = 0
    for start in range(0, len(events), SQS_BATCH):
        batch = events[start : start + SQS_BATCH]
        response = sqs.send_message_batch(
            QueueUrl=settings.queue_url,
            Entries=[{"Id": str(i), "MessageBody": json.dumps(event)} for i, event in enumerate(batch)],
        )
        failed += len(response.get("Failed", []))
    return SweepResult(len(events) - failed, complete, failed)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int | bool]:
    settings = SweepSettings.from_environment()
    config = client_config(5)
    account_id = context.invoked_function_arn.split(":")[4]
    # list while more than a minute is left: room to send what was found
    list_until = time.monotonic() + max(0.0, context.get_remaining_time_in_millis() / 1000 - 60)
    iot, sqs = boto3.client("iot", config=config), boto3.client("sqs", config=config)
    result = sweep(settings, iot, sqs, account_id, list_until=list_until)
    metrics.add_metric(name="SweptCertificates", unit=MetricUnit.Count, value=result.swept)
    level = logger.warning if result.swept or result.failed else logger.info
    level("sweep done", extra=result.to_dict())
    if result.failed:
        raise RuntimeError(f"the intake queue refused {result.failed} swept events; the next run retries them")
    return result.to_dict()
