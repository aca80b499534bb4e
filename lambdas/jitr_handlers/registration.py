"""Lambda entry point for certificate registration events.

Accepts an SQS batch whose message bodies are registration events (rule -> SQS -> Lambda, the production path) and
reports partial batch failures; also accepts one raw registration event (rule -> Lambda, and local invocation).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from jitr import settings as jitr_settings
from jitr.iot import IoT
from jitr.provisioning import MAX_EVENT_BYTES, Decision, Outcome, RegistrationEvent, decide

from .observability import NAMESPACE, SERVICE, logger, metrics, tracer


class RedeliverRecord(Exception):
    """Raised for one SQS record: the batch reports it failed, so SQS delivers it again (then to the DLQ)."""


class _PerEnvironment:
    """The adapter of this execution environment, made on first use and kept for warm invocations. Lambda runs one
    invocation per environment at a time; keeping it per thread lets `jitr simulate` run several environments in one
    process, each with its own client and its own share of the RegisterThing quota."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.generation = 0

    def __call__(self) -> IoT:
        held = getattr(self.local, "held", None)
        if held is None or held[0] != self.generation:
            current = jitr_settings.current()
            iot = IoT.connect(
                max_attempts=current.max_attempts,
                template_ttl_s=current.template_cache_seconds,
                endpoint_url=current.endpoint_url,
                register_rate_per_s=current.register_rate_per_s,
            )
            held = self.local.held = (self.generation, iot)
        return held[1]

    def cache_clear(self) -> None:
        """Forget every environment's adapter (settings changed)."""
        self.generation += 1


_iot = _PerEnvironment()


def parse_event(body: str | dict[str, Any]) -> RegistrationEvent | Decision:
    """The event, or a MALFORMED decision saying what is wrong with it (never the whole event)."""
    text = body if isinstance(body, str) else json.dumps(body)
    if len(text.encode()) > MAX_EVENT_BYTES:
        return Decision(Outcome.MALFORMED, reason="OVERSIZED", message=f"event body exceeds {MAX_EVENT_BYTES} bytes")
    try:
        return RegistrationEvent.model_validate_json(text)
    except ValidationError as exc:
        fields = ", ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}" for error in exc.errors()[:5]
        )
        return Decision(Outcome.MALFORMED, reason="INVALID_EVENT", message=fields)


@tracer.capture_method(capture_response=False)
def handle_one(body: str | dict[str, Any]) -> Decision:
    parsed = parse_event(body)
    if isinstance(parsed, Decision):
        logger.set_correlation_id(None)  # not the previous record's certificate id
        decision = parsed
    else:
        logger.set_correlation_id(parsed.certificate_id)
        decision = decide(parsed, _iot(), jitr_settings.current())
    _record(decision)
    return decision


def _record(decision: Decision) -> None:
    """One log line and the metrics of a decision: ids, outcome and reason, never the event or the PEM."""
    metrics.add_metric(name=decision.outcome.value, unit=MetricUnit.Count, value=1)
    if decision.outcome == Outcome.PROVISIONED:
        total = sum(decision.steps_ms.values())
        metrics.add_metric(name="ProvisioningLatency", unit=MetricUnit.Milliseconds, value=total)
    if decision.outcome in (Outcome.REJECTED, Outcome.MALFORMED, Outcome.RETRY) and decision.reason:
        with single_metric(
            name=f"{decision.outcome.value}ByReason",
            unit=MetricUnit.Count,
            value=1,
            namespace=NAMESPACE,
            default_dimensions={"service": SERVICE},
        ) as metric:
            metric.add_dimension(name="Reason", value=decision.reason)
    level = logger.info if decision.outcome in (Outcome.PROVISIONED, Outcome.ALREADY_ACTIVE) else logger.warning
    level(
        "registration decided",
        extra={
            **{k: v for k, v in decision.to_dict().items() if k != "message"},
            "detail": decision.message,  # "message" is reserved by logging
            "stepsMs": {k: round(v, 2) for k, v in decision.steps_ms.items()},
        },
    )


def _record_handler(record: SQSRecord) -> dict[str, Any]:
    """Raising here makes SQS redeliver this record; after maxReceiveCount it goes to the dead-letter queue. A
    malformed body is raised too, so it is kept in the DLQ for inspection instead of being dropped."""
    decision = handle_one(record.body)
    if decision.outcome in (Outcome.RETRY, Outcome.MALFORMED):
        raise RedeliverRecord(f"{decision.outcome}: {decision.reason}")
    return decision.to_dict()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS batch -> {"batchItemFailures": [...]}; a raw event -> its decision (raising on RETRY so an asynchronous
    invoke is retried by Lambda)."""
    if isinstance(event, dict) and "Records" in event:
        # One processor per invocation (it holds the batch's state). A batch whose records all failed is reported
        # record by record too: SQS redelivers exactly those.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return process_partial_response(
            event=event, record_handler=_record_handler, processor=processor, context=context
        )
    decision = handle_one(event)
    if decision.outcome == Outcome.RETRY:
        raise RedeliverRecord(f"RETRY: {decision.reason}: {decision.message}")
    return decision.to_dict()
