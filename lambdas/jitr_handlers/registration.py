"""Lambda entry point for certificate registration events.

Accepts an SQS batch whose message bodies are registration events (rule -> SQS -> Lambda, the production path) and
reports partial batch failures; also accepts one raw registration event (rule -> Lambda, and local invocation).

The handler's dependencies come through one seam, `Registration(settings, iot_factory)`: in Lambda one is built
lazily, once per execution environment, from the environment (`current()`); the rehearsal builds one per poller;
tests build their own and install it with `use()`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cached_property
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from jitr.enrollment import Enrollments
from jitr.events import EventBus, decision_entries
from jitr.hook import Hooks, lambda_clients
from jitr.iot import IoT, client_config
from jitr.outcomes import Outcome, Reason
from jitr.provisioning import MAX_EVENT_BYTES, Checks, Decision, RegistrationEvent, decide
from jitr.revocation_index import IndexUnavailable, RevocationIndex
from jitr.revocation_sources import CrlSources
from jitr.settings import Settings

from .observability import NAMESPACE, SERVICE, logger, metrics, tracer
from .once import DecideOnce

IoTFactory = Callable[[Settings], IoT]
DecisionHook = Callable[[Decision], None]
LambdaHandler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


class RedeliverRecord(Exception):
    """Raised for one SQS record: the batch reports it failed, so SQS delivers it again (then to the DLQ)."""


def connect_iot(settings: Settings) -> IoT:
    """The AWS IoT adapter the settings describe: botocore's retries, the template cache, this environment's pace."""
    return IoT.connect(
        max_attempts=settings.max_attempts,
        template_ttl_s=settings.template_cache_seconds,
        ca_ttl_s=settings.ca_cache_seconds,
        endpoint_url=settings.endpoint_url,
        rates_per_s=settings.rates_per_s,
    )


class Registration:
    """What one execution environment decides with: its settings and its AWS IoT adapter (made on first use, kept
    for warm invocations, so the template cache and the RegisterThing pace belong to this environment).
    `on_decision` sees every decision (the rehearsal counts them with it)."""

    def __init__(
        self, settings: Settings, iot_factory: IoTFactory = connect_iot, on_decision: DecisionHook | None = None
    ) -> None:
        self.settings = settings
        self.iot_factory = iot_factory
        self.on_decision = on_decision

    @cached_property
    def iot(self) -> IoT:
        return self.iot_factory(self.settings)

    @cached_property
    def crls(self) -> CrlSources:
        """This environment's issuer CRLs, kept across warm invocations until their nextUpdate."""
        config = client_config(self.settings.max_attempts)
        return CrlSources(
            loopback_ok=self.settings.revocation_allow_loopback,
            s3_client=lambda: boto3.session.Session().client("s3", config=config),
        )

    @cached_property
    def checks(self) -> Checks:
        """The adapters of the products' own checks: the enrollment table, the decision hooks (only those used)."""
        enrollments = None
        if self.settings.enrollment_table and any(p.enrollment for p in self.settings.product_lines):
            client = boto3.session.Session().client(
                "dynamodb", config=client_config(self.settings.max_attempts), endpoint_url=self.settings.endpoint_url
            )
            enrollments = Enrollments(self.settings.enrollment_table, client)
        hooks = None
        if any(p.hook for p in self.settings.product_lines):
            hooks = Hooks(lambda_clients(self.settings.endpoint_url))
        return Checks(enrollments=enrollments, hooks=hooks)

    @cached_property
    def decide(self) -> Callable[[RegistrationEvent], Decision]:
        """`decide` with this environment's adapter; once per certificate id when the stack gives a decision table."""

        def decide_now(event: RegistrationEvent) -> Decision:
            decision = decide(event, self.iot, self.settings, crls=self.crls, checks=self.checks)
            self._index(decision)
            return decision

        if not self.settings.decision_table:
            return decide_now
        client = boto3.session.Session().client(
            "dynamodb", config=client_config(self.settings.max_attempts), endpoint_url=self.settings.endpoint_url
        )
        return DecideOnce(
            decide_now,
            table_name=self.settings.decision_table,
            retention_days=self.settings.decision_retention_days,
            dynamodb_client=client,
            announce=self._announce if self.events is not None else None,
        )

    @cached_property
    def events(self) -> EventBus | None:
        """Where decisions are published (`JITR_EVENT_BUS`): only with a decision table, since a decision is
        published once it is recorded."""
        if not (self.settings.event_bus and self.settings.decision_table):
            return None
        return EventBus.connect(self.settings)

    def _announce(self, record: dict[str, Any]) -> None:
        assert self.events is not None
        self.events.put(decision_entries(record, stack=SERVICE))

    @cached_property
    def index(self) -> RevocationIndex | None:
        """Issuer + serial -> certificate id, for the revocation sync (only when some CA is synced)."""
        if not (self.settings.decision_table and self.settings.revocation):
            return None
        client = boto3.session.Session().client(
            "dynamodb", config=client_config(self.settings.max_attempts), endpoint_url=self.settings.endpoint_url
        )
        return RevocationIndex(self.settings.decision_table, client)

    def _index(self, decision: Decision) -> None:
        """Record an ACTIVE certificate of a synced CA in the revocation index before the decision is final: if the
        table cannot be written, the record is redelivered, and its redelivery (ALREADY_ACTIVE) writes it."""
        if (
            self.index is None
            or decision.outcome not in (Outcome.PROVISIONED, Outcome.ALREADY_ACTIVE)
            or not (decision.serial and decision.not_after and decision.certificate_id and decision.ca_certificate_id)
            or decision.ca_certificate_id not in self.settings.revocation
        ):
            return
        try:
            self.index.record(decision.ca_certificate_id, decision.serial, decision.certificate_id, decision.not_after)
        except IndexUnavailable as exc:
            decision.decide_as(
                Reason.DECISION_STORE_UNAVAILABLE,
                f"{decision.message}; but the revocation index could not be written ({exc}): a redelivery writes it",
            )

    @tracer.capture_method(capture_response=False)
    def handle_one(self, body: str | dict[str, Any]) -> Decision:
        parsed = parse_event(body)
        if isinstance(parsed, Decision):
            logger.set_correlation_id(None)  # not the previous record's certificate id
            decision = parsed
        else:
            logger.set_correlation_id(parsed.certificate_id)
            decision = self.decide(parsed)
        _record(decision)
        if self.on_decision is not None:
            self.on_decision(decision)
        return decision

    def record_handler(self, record: SQSRecord) -> dict[str, Any]:
        """Raising here makes SQS redeliver this record; after maxReceiveCount it goes to the dead-letter queue. A
        malformed body is raised too, so it is kept in the DLQ for inspection instead of being dropped; and a
        decision whose event was not published, so that the redelivery publishes it (the decision stands)."""
        decision = self.handle_one(record.body)
        if decision.outcome in (Outcome.RETRY, Outcome.MALFORMED):
            raise RedeliverRecord(f"{decision.outcome}: {decision.reason}")
        if decision.unpublished:
            raise RedeliverRecord(f"{decision.outcome}, its event not published: {decision.unpublished}")
        return decision.to_dict()

    def __call__(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        """SQS batch -> {"batchItemFailures": [...]}; a raw event -> its decision (raising on RETRY so an
        asynchronous invoke is retried by Lambda)."""
        if isinstance(self.decide, DecideOnce):
            self.decide.register_lambda_context(context)
        if isinstance(event, dict) and "Records" in event:
            # One processor per invocation (it holds the batch's state). A batch whose records all failed is reported
            # record by record too: SQS redelivers exactly those.
            processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
            response = process_partial_response(
                event=event, record_handler=self.record_handler, processor=processor, context=context
            )
            return dict(response)
        decision = self.handle_one(event)
        if decision.outcome == Outcome.RETRY:
            raise RedeliverRecord(f"RETRY: {decision.reason}: {decision.message}")
        if decision.unpublished:
            raise RedeliverRecord(f"{decision.outcome}, its event not published: {decision.unpublished}")
        return decision.to_dict()


def parse_event(body: str | dict[str, Any]) -> RegistrationEvent | Decision:
    """The event, or a MALFORMED decision saying what is wrong with it (never the whole event)."""
    text = body if isinstance(body, str) else json.dumps(body)
    if len(text.encode()) > MAX_EVENT_BYTES:
        return Decision(
            Outcome.MALFORMED, reason=Reason.OVERSIZED, message=f"event body exceeds {MAX_EVENT_BYTES} bytes"
        )
    try:
        return RegistrationEvent.model_validate_json(text)
    except ValidationError as exc:
        fields = ", ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}" for error in exc.errors()[:5]
        )
        return Decision(Outcome.MALFORMED, reason=Reason.INVALID_EVENT, message=fields)


def _record(decision: Decision) -> None:
    """One log line and the metrics of a decision: ids, outcome and reason, never the event or the PEM."""
    metrics.add_metric(name=decision.outcome.value, unit=MetricUnit.Count, value=1)
    if decision.outcome == Outcome.PROVISIONED:
        total = sum(decision.steps_ms.values())
        metrics.add_metric(name="ProvisioningLatency", unit=MetricUnit.Milliseconds, value=total)
    if decision.unpublished:  # the decision stands; its delivery is made again to publish it
        metrics.add_metric(name="DecisionEventsFailed", unit=MetricUnit.Count, value=1)
    if decision.unknown_accepted:  # provisioned without the issuer's word, as the fleet chose: counted every time
        metrics.add_metric(name="RevocationUnknownAccepted", unit=MetricUnit.Count, value=1)
    if decision.outcome in (Outcome.REJECTED, Outcome.MALFORMED, Outcome.RETRY, Outcome.HELD) and decision.reason:
        _count(f"{decision.outcome.value}ByReason", "Reason", decision.reason)
    if decision.product and decision.outcome in BY_PRODUCT:  # each product's decisions, for its alarms and dashboard
        _count(f"{decision.outcome.value}ByProduct", "Product", decision.product)
    quiet = (Outcome.PROVISIONED, Outcome.ALREADY_ACTIVE, Outcome.DUPLICATE)
    level = logger.info if decision.outcome in quiet and not decision.unpublished else logger.warning
    level(
        "registration decided",
        extra={
            **{k: v for k, v in decision.to_dict().items() if k != "message"},
            "detail": decision.message,  # "message" is reserved by logging
            "stepsMs": {k: round(v, 2) for k, v in decision.steps_ms.items()},
        },
    )


# the outcomes counted per product too (a DUPLICATE or SKIPPED says nothing about a product line)
BY_PRODUCT = (Outcome.PROVISIONED, Outcome.REJECTED, Outcome.HELD, Outcome.RETRY)


def _count(name: str, dimension: str, value: str) -> None:
    """One count of `name` with the service and one more dimension (its own EMF record: dimensions differ)."""
    with single_metric(
        name=name, unit=MetricUnit.Count, value=1, namespace=NAMESPACE, default_dimensions={"service": SERVICE}
    ) as metric:
        metric.add_dimension(name=dimension, value=value)


def entry_point(registration: Callable[[], Registration]) -> LambdaHandler:
    """A Lambda handler for the Registration `registration()` returns, with the Powertools stack: the context in
    every log line (cleared per invocation), metrics flushed per invocation, X-Ray around it."""

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return registration()(event, context)

    return handler


_current: Registration | None = None


def current() -> Registration:
    """This execution environment's Registration: built from the environment the stack sets, on first use."""
    global _current
    if _current is None:
        _current = Registration(Settings.from_environment())
    return _current


def use(registration: Registration | None) -> None:
    """Install the Registration the handler uses (tests); None builds it again from the environment on next use."""
    global _current
    _current = registration


handler = entry_point(current)
