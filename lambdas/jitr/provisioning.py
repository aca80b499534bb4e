"""The use case: one registration event becomes one explained decision, and at most one provisioning.

Order: read the certificate and its CA from AWS (never trust the event), validate the chain and device profile,
render the stored template with the certificate's parameters, then RegisterThing (thing, policy, ACTIVE in one call).
A refusal sets the certificate to the configured rejection status and says why. This module maps the adapter's
errors to outcomes; nothing else does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .certificates import CertificateRejected, certificate_parameters, verify_device_certificate
from .iot import Conflict as IoTConflict
from .iot import IoT, Misconfigured, NotFound, Refused, Retryable
from .settings import Settings
from .templates import TemplateError, render_template

HEX64 = r"^[0-9a-f]{64}$"
MAX_EVENT_BYTES = 4096


class RegistrationEvent(BaseModel):
    """The event AWS IoT publishes on `$aws/events/certificates/registered/<caCertificateId>`."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    certificate_id: str = Field(alias="certificateId", pattern=HEX64)
    ca_certificate_id: str = Field(alias="caCertificateId", pattern=HEX64)
    timestamp: int = Field(strict=True)
    certificate_status: str = Field(alias="certificateStatus")
    aws_account_id: str = Field(alias="awsAccountId", pattern=r"^[0-9]{12}$")
    certificate_registration_timestamp: int | None = Field(alias="certificateRegistrationTimestamp", default=None)


class Outcome(StrEnum):
    PROVISIONED = "PROVISIONED"  # RegisterThing succeeded: thing, policy, ACTIVE
    ALREADY_ACTIVE = "ALREADY_ACTIVE"  # a duplicate: an earlier delivery did the work
    REJECTED = "REJECTED"  # refused with a reason; the certificate set to the rejection status
    SKIPPED = "SKIPPED"  # nothing to do: certificate unknown, REVOKED or INACTIVE
    RETRY = "RETRY"  # transient or configuration trouble: the record fails and is delivered again
    MALFORMED = "MALFORMED"  # not a registration event


@dataclass
class Decision:
    outcome: Outcome
    certificate_id: str | None = None
    ca_certificate_id: str | None = None
    reason: str | None = None
    message: str = ""
    thing_name: str | None = None
    steps_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": str(self.outcome),
            "certificateId": self.certificate_id,
            "caCertificateId": self.ca_certificate_id,
            "reason": self.reason,
            "message": self.message,
            "thingName": self.thing_name,
        }


class _Step:
    """Times the named steps of one decision (milliseconds)."""

    def __init__(self, steps: dict[str, float]) -> None:
        self.steps = steps
        self.mark = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.steps[name] = self.steps.get(name, 0.0) + (now - self.mark) * 1000
        self.mark = now


# Rejections the device is not to blame for: the certificate is left as it is.
NOT_THE_DEVICE = frozenset({"CA_MISMATCH"})


def decide(event: RegistrationEvent, iot: IoT, settings: Settings, at: datetime | None = None) -> Decision:
    """Decide on one registration event and carry the decision out. Never raises for a device problem; RETRY
    means the caller must make the trigger deliver the event again."""
    decision = Decision(Outcome.RETRY, event.certificate_id, event.ca_certificate_id)
    step = _Step(decision.steps_ms)
    try:
        with iot.registration_slot():
            step = _Step(decision.steps_ms)  # time spent waiting for the slot is pacing, not a step
            _decide(event, iot, settings, at, decision, step)
    except Misconfigured as exc:
        _set(decision, Outcome.RETRY, "CONFIGURATION", f"{exc.message} (fix the deployment, then redrive)")
    except Retryable as exc:
        _set(decision, Outcome.RETRY, "AWS_UNAVAILABLE", f"{exc.code}: {exc.message}")
    if decision.outcome == Outcome.REJECTED and decision.reason not in NOT_THE_DEVICE:
        try:
            if settings.rejection_action != "NONE":
                iot.update_certificate(event.certificate_id, settings.rejection_action)
        except (Retryable, Misconfigured) as exc:
            _set(decision, Outcome.RETRY, "REJECTION_NOT_RECORDED", f"{exc.code}: {exc.message}")
        except (NotFound, Refused):
            pass  # deleted or already revoked meanwhile: the rejection stands
        step.done("reject")
    return decision


def _set(decision: Decision, outcome: Outcome, reason: str | None, message: str) -> None:
    decision.outcome, decision.reason, decision.message = outcome, reason, message


def _decide(
    event: RegistrationEvent, iot: IoT, settings: Settings, at: datetime | None, decision: Decision, step: _Step
) -> None:
    try:
        certificate = iot.describe_certificate(event.certificate_id)
    except NotFound:
        return _set(decision, Outcome.SKIPPED, "UNKNOWN_CERTIFICATE", "AWS IoT has no such certificate (deleted?)")
    if certificate.status == "ACTIVE":
        return _set(decision, Outcome.ALREADY_ACTIVE, None, "the certificate is already ACTIVE")
    if certificate.status != "PENDING_ACTIVATION":
        return _set(
            decision, Outcome.SKIPPED, f"CERTIFICATE_{certificate.status}", f"the certificate is {certificate.status}"
        )
    if certificate.ca_certificate_id != event.ca_certificate_id:
        return _set(
            decision,
            Outcome.REJECTED,
            "CA_MISMATCH",
            f"the event names CA {event.ca_certificate_id} but AWS IoT says the certificate's CA is "
            f"{certificate.ca_certificate_id}; the event is not trusted",
        )
    try:
        ca = iot.describe_ca_certificate(event.ca_certificate_id)
    except NotFound:
        return _set(decision, Outcome.REJECTED, "UNKNOWN_CA", "the certificate's CA is not registered")
    step.done("describe")
    if ca.status != "ACTIVE":
        return _set(decision, Outcome.REJECTED, "CA_NOT_ACTIVE", f"the registered CA is {ca.status}")
    try:
        verified = verify_device_certificate(
            certificate.pem, ca.pem, at=at, profile=settings.profile, root_pem=settings.trust_root_pem
        )
    except CertificateRejected as exc:
        return _set(decision, Outcome.REJECTED, exc.reason, exc.message)
    step.done("validate")

    template = iot.template(settings.template_name)
    parameters = {**settings.extra_parameters, **certificate_parameters(verified.leaf)}
    try:
        plan = render_template(template, parameters)
    except TemplateError as exc:
        codes = set(exc.codes)
        reason = (
            "MISSING_CERTIFICATE_FIELD"
            if "MISSING_PARAMETER" in codes
            else "INVALID_DEVICE_NAME"
            if codes & {"INVALID_NAME", "INVALID_VALUE"}
            else "TEMPLATE_RENDER_FAILED"
        )
        return _set(decision, Outcome.REJECTED, reason, "; ".join(p.message for p in exc.problems))
    thing = plan.thing
    decision.thing_name = thing.properties.get("ThingName") if thing else None
    step.done("render")

    try:
        iot.register_thing(template.body, plan.parameters)
    except IoTConflict:
        step.done("register")
        # A concurrent duplicate may have finished the job: look again before asking for a redelivery.
        if iot.describe_certificate(event.certificate_id).status == "ACTIVE":
            return _set(decision, Outcome.ALREADY_ACTIVE, None, "a concurrent delivery provisioned it")
        return _set(decision, Outcome.RETRY, "CONFLICT", "a concurrent request is provisioning this certificate")
    except Refused as exc:
        return _set(
            decision, Outcome.REJECTED, "PROVISIONING_FAILED", f"RegisterThing refused: {exc.code}: {exc.message}"
        )
    step.done("register")
    _set(decision, Outcome.PROVISIONED, None, f"provisioned as {decision.thing_name}")
    return None
