"""The use case: one registration event becomes one explained decision, and at most one provisioning.

Order: read the certificate and its CA from AWS (never trust the event), validate the chain and device profile,
render the stored template with the certificate's parameters, then RegisterThing (thing, policy, ACTIVE in one call).
A refusal sets the certificate to the configured rejection status and says why. This module maps the adapter's
errors to outcomes; nothing else does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field

from .certificates import (
    BadCertificate,
    CertificateRejected,
    Undecided,
    VerifiedChain,
    certificate_id,
    load_certificate,
    verify_device_certificate,
)
from .enrollment import Enrollments, EnrollmentUnavailable, identity
from .enrollment import Status as Enrolled
from .facts import CertificateFacts, certificate_facts
from .hook import HookDecision, HookFailed, HookRequest, Hooks
from .iot import CertificateRecord, IoT, IoTError, Misconfigured, NotFound, PermanentFailure, Retryable
from .iot import Conflict as IoTConflict
from .outcomes import NOT_THE_DEVICE, OUTCOME, Outcome, Reason, skipped_status
from .products import Product, Selection, candidates, needs_subject, select
from .revocation import Revocation, Status
from .revocation_sources import CrlSources
from .settings import Settings
from .templates import Plan, Problem, Template, TemplateError, render_template
from .templates.fields import NEUTRAL_FIELD_VALUE, is_certificate_field

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

    @staticmethod
    def payload(
        certificate_id: str,
        ca_certificate_id: str,
        account_id: str,
        registered_at_ms: int | None = None,
        status: str = "PENDING_ACTIVATION",
    ) -> dict[str, Any]:
        """The event's JSON as AWS IoT publishes it, stamped now: for whatever publishes one in AWS IoT's place (the
        embedded IoT, the sweeper)."""
        return {
            "certificateId": certificate_id,
            "caCertificateId": ca_certificate_id,
            "timestamp": int(time.time() * 1000),
            "certificateStatus": status,
            "awsAccountId": account_id,
            "certificateRegistrationTimestamp": registered_at_ms,
        }


@dataclass
class Decision:
    outcome: Outcome
    certificate_id: str | None = None
    ca_certificate_id: str | None = None
    reason: Reason | None = None
    message: str = ""
    thing_name: str | None = None
    steps_ms: dict[str, float] = field(default_factory=dict)
    replaced: tuple[str, ...] = ()  # certificates this decision took the thing from (set INACTIVE or revoked)
    replaced_cas: tuple[str | None, ...] = ()  # and the CA of each
    recorded: bool = False  # the rejection status is already set (no second UpdateCertificate)
    serial: str | None = None  # the certificate's serial number (hex), once it was read
    not_after: datetime | None = None  # and its notAfter
    revocation: tuple[Revocation, ...] = ()  # the issuer's word on each certificate of the path, leaf first
    unknown_accepted: bool = False  # provisioned although a revocation status was unknown (onUnknown: accept)
    unpublished: str | None = None  # why its decision event was not published (a later delivery publishes it)
    product: str | None = None  # the product line it was decided for, once found
    enrollment: str | None = None  # what the enrollment table said (products that require enrollment)
    hook: str | None = None  # what the product's decision hook answered

    def decide_as(self, reason: Reason, message: str) -> None:
        """Decide for `reason`: its outcome is the one `OUTCOME` gives it (the blame rule, in one place)."""
        self.outcome, self.reason, self.message = OUTCOME[reason], reason, message

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": str(self.outcome),
            "certificateId": self.certificate_id,
            "caCertificateId": self.ca_certificate_id,
            "reason": self.reason,
            "message": self.message,
            "thingName": self.thing_name,
            **({"product": self.product} if self.product else {}),
            **({"enrollment": self.enrollment} if self.enrollment else {}),
            **({"hook": self.hook} if self.hook else {}),
            **({"serialNumber": self.serial} if self.serial else {}),
            **({"notAfter": self.not_after.isoformat()} if self.not_after else {}),
            **({"replacedCertificateIds": list(self.replaced)} if self.replaced else {}),
            **({"replacedCaCertificateIds": list(self.replaced_cas)} if self.replaced_cas else {}),
            **({"revocation": [r.to_dict() for r in self.revocation]} if self.revocation else {}),
            **({"eventNotPublished": self.unpublished} if self.unpublished else {}),
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


@dataclass(frozen=True)
class Checks:
    """The adapters of a product's optional checks: its enrollment table, its decision hook."""

    enrollments: Enrollments | None = None
    hooks: Hooks | None = None


def decide(
    event: RegistrationEvent,
    iot: IoT,
    settings: Settings,
    at: datetime | None = None,
    crls: CrlSources | None = None,
    checks: Checks = Checks(),
) -> Decision:
    """Decide on one registration event and carry the decision out. Never raises for a device problem; RETRY
    means the caller must make the trigger deliver the event again. `crls` learns the issuer's revocation status for
    the CAs `settings.revocation` configures (a fresh one, with no cache, when none is given).

    The blame rule: a certificate is set to the rejection status only for a fault found in the certificate itself
    (REJECTED); the deployment's mistakes and AWS's troubles leave it PENDING_ACTIVATION and RETRY."""
    decision = Decision(Outcome.RETRY, event.certificate_id, event.ca_certificate_id)
    step = _Step(decision.steps_ms)
    try:
        with iot.registration_slot():
            step = _Step(decision.steps_ms)  # time spent waiting for the slot is pacing, not a step
            _decide(event, iot, settings, at, decision, step, crls or _crls_for(settings), checks)
    except Misconfigured as exc:
        _set(decision, Reason.CONFIGURATION, f"{exc.message} (fix the deployment, then redrive)")
    except Retryable as exc:
        _set(decision, Reason.AWS_UNAVAILABLE, f"{exc.code}: {exc.message}")
    if decision.outcome == Outcome.REJECTED and decision.reason not in NOT_THE_DEVICE and not decision.recorded:
        record_rejection(event.certificate_id, iot, _rejection_action(settings, decision.product), decision)
        step.done("reject")
    return decision


def _rejection_action(settings: Settings, product: str | None) -> str:
    """The rejection status of the certificate's product (the stack's when no product was found)."""
    chosen = [p for p in settings.product_lines if p.name == product]
    return chosen[0].rejection_action if chosen else settings.rejection_action


def record_rejection(certificate_id: str, iot: IoT, status: str, decision: Decision) -> None:
    """Set the rejection status. The rejection stands only once it is recorded: if the update fails, and the
    certificate is not already in a final state, the record is retried."""
    if status == "NONE":
        return
    try:
        iot.update_certificate(certificate_id, status)
        return
    except NotFound:
        return  # deleted meanwhile: nothing left to refuse
    except (Retryable, Misconfigured, PermanentFailure) as exc:
        failure = exc
    try:
        current = iot.describe_certificate(certificate_id).status
    except NotFound:
        return
    except IoTError:
        current = None
    if current in (status, "REVOKED"):
        return  # already in the final state it was to reach
    _set(
        decision,
        Reason.REJECTION_NOT_RECORDED,
        f"refused ({decision.reason}: {decision.message}), but setting {status} failed: {failure.code}:"
        f" {failure.message}",
    )


def _set(decision: Decision, reason: Reason, message: str) -> None:
    decision.decide_as(reason, message)


def _done(decision: Decision, outcome: Outcome, message: str) -> None:
    decision.outcome, decision.reason, decision.message = outcome, None, message


def _decide(
    event: RegistrationEvent,
    iot: IoT,
    settings: Settings,
    at: datetime | None,
    decision: Decision,
    step: _Step,
    crls: CrlSources,
    checks: Checks,
) -> None:
    try:
        certificate = iot.describe_certificate(event.certificate_id)
    except NotFound:
        return _set(decision, Reason.UNKNOWN_CERTIFICATE, "AWS IoT has no such certificate (deleted?)")
    if certificate.ca_certificate_id != event.ca_certificate_id:
        return _set(
            decision,
            Reason.CA_MISMATCH,
            f"the event names CA {event.ca_certificate_id} but AWS IoT says the certificate's CA is "
            f"{certificate.ca_certificate_id}; the event is not trusted",
        )
    selection = _product_of(certificate, settings)
    if selection.product is not None:
        decision.product = selection.product.name
        settings = settings.for_product(selection.product)
    if certificate.status != "PENDING_ACTIVATION":
        _not_pending(decision, iot, settings, certificate)
        if selection.product and decision.outcome == Outcome.ALREADY_ACTIVE:  # a redelivery records it if it failed
            with suppress(BadCertificate):  # an ACTIVE certificate was read when it was provisioned
                _record_provisioned(decision, selection.product, load_certificate(certificate.pem), checks)
        return None
    try:
        ca = iot.describe_ca_certificate(event.ca_certificate_id)
    except NotFound:
        return _set(decision, Reason.UNKNOWN_CA, "the certificate's CA is not registered")
    step.done("describe")
    if ca.status != "ACTIVE":
        return _set(decision, Reason.CA_NOT_ACTIVE, f"the registered CA is {ca.status}")
    if selection.product is None:
        return _no_product(decision, selection)
    try:
        verified = verify_device_certificate(
            certificate.pem,
            ca.pem,
            at=at,
            profile=settings.profile,
            root_pem=settings.trust_root_pem,
            clock_skew=timedelta(seconds=settings.clock_skew_seconds),
        )
    except CertificateRejected as exc:
        return _set(decision, exc.reason, exc.message)
    except Undecided as exc:
        return _set(decision, exc.reason, exc.message)
    except BadCertificate as exc:
        return _set(decision, Reason.MALFORMED_CERTIFICATE, str(exc))
    _read_serial(decision, verified.leaf)
    step.done("validate")
    if settings.revocation and _refused_by_issuer(decision, verified, settings, crls, at):
        return None
    step.done("revocation")
    product = selection.product
    if product.enrollment is not None and not _enrolled(decision, product, verified.leaf, checks.enrollments):
        return None
    step.done("enrollment")
    hook_parameters: Mapping[str, str] = {}
    if product.hook is not None:
        allowed = _ask_hook(decision, product, verified.leaf, checks.hooks)
        step.done("hook")
        if allowed is None:
            return None
        hook_parameters = allowed

    template = iot.template(settings.template_name)
    try:  # only the facts the template reads: a decision pays for what its template uses
        facts = certificate_facts(verified.leaf, settings.certificate_extensions, template.parameters)
    except BadCertificate as exc:
        return _set(decision, Reason.MALFORMED_CERTIFICATE, str(exc))
    plan = _render(decision, template, settings, facts, hook_parameters)
    if plan is None:
        return None
    thing = plan.thing
    decision.thing_name = thing.properties.get("ThingName") if thing else None
    step.done("render")

    if decision.thing_name and _claimed_by_another(decision, iot, settings, certificate, decision.thing_name):
        return None
    try:
        iot.register_thing(template.body, plan.parameters)
    except IoTConflict:
        step.done("register")
        # A concurrent duplicate may have finished the job: look again before asking for a redelivery.
        if iot.describe_certificate(event.certificate_id).status == "ACTIVE":
            return _done(decision, Outcome.ALREADY_ACTIVE, "a concurrent delivery provisioned it")
        return _set(decision, Reason.CONFLICT, "a concurrent request is provisioning this certificate")
    except PermanentFailure as exc:
        # AWS does not say whose fault a refusal is (a missing group, type or policy is ours): never the device's
        return _set(
            decision,
            Reason.PROVISIONING_REFUSED,
            f"RegisterThing refused: {exc.code}: {exc.message} (fix the deployment, then redrive)",
        )
    step.done("register")
    accepted = f"; {decision.message}" if decision.unknown_accepted else ""
    _done(decision, Outcome.PROVISIONED, f"provisioned as {decision.thing_name}{accepted}")
    if decision.thing_name:
        _settle_ownership(decision, iot, settings, replace(certificate, status="ACTIVE"), decision.thing_name)
        step.done("ownership")
    if decision.outcome == Outcome.PROVISIONED:
        _record_provisioned(decision, product, verified.leaf, checks)
    return None


# -- a product's own checks: enrollment and its decision hook ---


def _enrolled(decision: Decision, product: Product, leaf: x509.Certificate, enrollments: Enrollments | None) -> bool:
    """Whether an imported manifest lists the device and its enrollment is not disabled. A device not (yet) listed,
    or disabled, is held pending and remembered on its enrollment item, so an import or an enable decides it again."""
    assert product.enrollment is not None
    by = product.enrollment.by
    if enrollments is None:
        _set(decision, Reason.CONFIGURATION, f"product {product.name} requires enrollment but no table is configured")
        return False
    value = identity(leaf, by)
    if value is None:
        _set(
            decision, Reason.NOT_ENROLLED, f"the certificate has no single {by} for product {product.name}'s manifests"
        )
        return False
    assert decision.certificate_id is not None
    assert decision.ca_certificate_id is not None
    try:
        found = enrollments.look_up(product.name, by, value)
        decision.enrollment = found.describe()
        if found.status == Enrolled.ENROLLED:
            return True
        enrollments.wait(product.name, by, value, decision.certificate_id, decision.ca_certificate_id)
    except EnrollmentUnavailable as exc:
        _set(decision, Reason.ENROLLMENT_UNAVAILABLE, str(exc))
        return False
    if found.status == Enrolled.DISABLED:
        _set(decision, Reason.DEVICE_DISABLED, f"{found.describe()}; decided again when it is enabled")
    else:
        _set(decision, Reason.NOT_ENROLLED, f"{found.describe()}; decided again when a manifest listing it is imported")
    return False


def _record_provisioned(decision: Decision, product: Product, leaf: x509.Certificate, checks: Checks) -> None:
    """Keep the provisioned certificate on its enrollment item (what `jitr enroll disable` quarantines). A failed
    write is RETRY: the redelivery (ALREADY_ACTIVE) writes it."""
    if product.enrollment is None or checks.enrollments is None or not decision.certificate_id:
        return
    value = identity(leaf, product.enrollment.by)
    if value is None:
        return
    try:
        checks.enrollments.provisioned(product.name, product.enrollment.by, value, decision.certificate_id)
    except EnrollmentUnavailable as exc:
        decision.decide_as(
            Reason.ENROLLMENT_UNAVAILABLE, f"{decision.message}; but its enrollment could not be updated ({exc})"
        )


def _ask_hook(
    decision: Decision, product: Product, leaf: x509.Certificate, hooks: Hooks | None
) -> Mapping[str, str] | None:
    """The parameters the product's hook set when it allowed the device; None with the decision made otherwise (a
    deny is the fleet's own refusal; a hold is held; no usable answer in time is RETRY)."""
    assert product.hook is not None
    assert decision.certificate_id is not None
    assert decision.ca_certificate_id is not None
    if hooks is None:
        _set(decision, Reason.CONFIGURATION, f"product {product.name} has a decision hook but no client to call it")
        return None
    try:
        request = HookRequest.from_certificate(leaf, decision.certificate_id, decision.ca_certificate_id, product.name)
    except BadCertificate as exc:
        _set(decision, Reason.MALFORMED_CERTIFICATE, str(exc))
        return None
    try:
        answer = hooks.ask(product.hook, request)
    except HookFailed as exc:
        _set(decision, Reason.HOOK_FAILED, f"{exc.message} (fix the hook, then redrive)")
        return None
    decision.hook = f"{answer.decision}" + (f": {answer.reason}" if answer.reason else "")
    if answer.decision == HookDecision.DENY:
        _set(decision, Reason.DENIED_BY_HOOK, f"the decision hook of product {product.name} denied it: {answer.reason}")
        return None
    if answer.decision == HookDecision.HOLD:
        _set(
            decision,
            Reason.HELD_BY_HOOK,
            f"the decision hook holds it: {answer.reason}; decided again on its next event",
        )
        return None
    return answer.parameters


def _product_of(certificate: CertificateRecord, settings: Settings) -> Selection:
    """The certificate's product: from its CA, and where products share the CA, from their selectors."""
    serving = candidates(settings.product_lines, certificate.ca_certificate_id or "")
    subject = None
    if needs_subject(serving):
        try:
            subject = load_certificate(certificate.pem).subject
        except BadCertificate as exc:
            return Selection(None, str(exc), malformed=True)
    return select(serving, certificate.ca_certificate_id or "", subject)


def _no_product(decision: Decision, selection: Selection) -> None:
    """No product to decide with. A certificate nobody can read is its own fault (the stack's rejection action); one
    no product claims is nobody's yet (a product line the stack does not serve): held, decided again on its next
    event; several products claiming it is the deployment's (the synth refuses overlapping selectors)."""
    if selection.malformed:
        return _set(decision, Reason.MALFORMED_CERTIFICATE, selection.why)
    if selection.ambiguous:
        return _set(decision, Reason.CONFIGURATION, f"{selection.why} (fix the selectors, then redrive)")
    return _set(decision, Reason.NO_PRODUCT, f"{selection.why}; decided again on its next event")


def _not_pending(decision: Decision, iot: IoT, settings: Settings, certificate: CertificateRecord) -> None:
    """Nothing to provision. But a status is not proof that the decision's work is done: a settlement of who keeps
    a thing may have failed midway (its decision was RETRY), so the things the certificate is attached to are
    settled again, the same way, before the delivery is acknowledged."""
    if certificate.status == "ACTIVE":
        _done(decision, Outcome.ALREADY_ACTIVE, "the certificate is already ACTIVE")
        with suppress(BadCertificate):  # what the revocation index keeps (an ACTIVE certificate was read before)
            _read_serial(decision, load_certificate(certificate.pem))
    else:
        _set(decision, skipped_status(certificate.status), f"the certificate is {certificate.status}")
    if certificate.status not in ("ACTIVE", *_LOSING_STATUSES):
        return None
    for thing_name in iot.principal_things(certificate.arn):
        _settle_ownership(decision, iot, settings, certificate, thing_name)
        if decision.outcome == Outcome.RETRY:
            break
    return None


# -- the issuer's word: revocation ---


def _read_serial(decision: Decision, certificate: x509.Certificate) -> None:
    decision.serial = f"{certificate.serial_number:x}"
    decision.not_after = certificate.not_valid_after_utc


def _crls_for(settings: Settings) -> CrlSources:
    return CrlSources(loopback_ok=settings.revocation_allow_loopback)


_WHICH = ("the certificate", "its CA", "the CA above it")


def _refused_by_issuer(
    decision: Decision, verified: VerifiedChain, settings: Settings, crls: CrlSources, at: datetime | None
) -> bool:
    """Ask each issuer on the path whose CA is configured with revocation sources (the leaf's CA, and the trust root
    for the registered CA) whether it revoked what it issued. Revoked is the certificate's fault; on hold is held,
    never revoked; unknown is never the device's fault: RETRY, or provision and count it (`onUnknown: accept`)."""
    skew = timedelta(seconds=settings.clock_skew_seconds)
    answers: list[tuple[int, Revocation]] = []
    for index, (certificate, issuer) in enumerate(zip(verified.chain, verified.chain[1:], strict=False)):
        # the leaf's issuer is the registered CA, whose id the decision holds; a trust root's id is computed
        issuer_id = decision.ca_certificate_id if index == 0 else certificate_id(issuer)
        source = settings.revocation.get(issuer_id or "")
        if source is None:
            continue
        answer = crls.status(certificate, issuer, source, at=at, skew=skew)
        answers.append((index, answer))
        decision.revocation = (*decision.revocation, answer)
    for index, answer in answers:
        which = _WHICH[min(index, len(_WHICH) - 1)]
        if answer.status == Status.REVOKED:
            _set(decision, Reason.REVOKED_BY_ISSUER, f"{which}: {answer.detail} (from {answer.source})")
            return True
    for index, answer in answers:
        which = _WHICH[min(index, len(_WHICH) - 1)]
        if answer.status == Status.ON_HOLD:
            _set(decision, Reason.CERTIFICATE_ON_HOLD, f"{which}: {answer.detail}; decided again on its next event")
            return True
    unknown = [(i, a) for i, a in answers if a.status == Status.UNKNOWN]
    if not unknown:
        return False
    causes = "; ".join(f"{_WHICH[min(i, len(_WHICH) - 1)]}: {a.detail}" for i, a in unknown)
    accept = all(settings.revocation[certificate_id(verified.chain[i + 1])].on_unknown == "accept" for i, _ in unknown)
    if accept:
        decision.unknown_accepted = True
        decision.message = f"revocation status unknown, accepted (onUnknown: accept): {causes}"
        return False
    _set(decision, Reason.REVOCATION_UNKNOWN, f"the issuer's revocation status could not be learned: {causes}")
    return True


# -- whose fault is a template that does not render ---


def _render(
    decision: Decision,
    template: Template,
    settings: Settings,
    facts: CertificateFacts,
    hook_parameters: Mapping[str, str],
) -> Plan | None:
    """The plan for this certificate, or None with the decision made. The template is given the certificate facts it
    declares (a value it does not read is no reason to refuse a device), over what the product's hook set, over the
    deployment's extraParameters. A value the hook set is the deployment's, never the certificate's, to answer for."""
    unreadable = facts.unreadable_in(template.parameters)
    if unreadable:
        _set(decision, Reason.MISSING_CERTIFICATE_FIELD, "; ".join(unreadable))
        return None
    given = facts.given(template.parameters)
    parameters = {**settings.extra_parameters, **hook_parameters, **given}
    try:
        return render_template(template, parameters)
    except TemplateError as exc:
        _template_refusal(decision, template, parameters, _Blame(given, settings.certificate_extensions), exc)
        return None


@dataclass(frozen=True)
class _Blame:
    """Which parameters of a render problem the certificate answers for: the facts it gave, and certificate fields
    it lacks. A certificate field that took the template's Default is the deployment's, like any Default."""

    given: Mapping[str, str]
    extensions: Mapping[str, str]

    def theirs(self, problem: Problem) -> frozenset[str]:
        return frozenset(
            name
            for name in problem.parameters
            if name in self.given
            or (problem.code == "MISSING_PARAMETER" and is_certificate_field(name, self.extensions))
        )


def _template_refusal(
    decision: Decision, template: Template, parameters: dict[str, str], blame: _Blame, error: TemplateError
) -> None:
    """A value computed only from certificate fields is the certificate's fault; a value computed only from the
    deployment's parameters (or a missing one) is the deployment's. A value mixing both is the certificate's only
    if a sound certificate would have rendered: the fields are replaced by a neutral value and rendered again."""
    problems = error.problems
    deployment = [p for p in problems if not blame.theirs(p)]
    mixed = [p for p in problems if blame.theirs(p) and not p.parameters <= blame.theirs(p)]
    if mixed and not deployment:
        fields = {field for p in mixed for field in blame.theirs(p)}  # only those the faults used
        neutral = {**parameters, **dict.fromkeys(fields & parameters.keys(), NEUTRAL_FIELD_VALUE)}
        try:
            render_template(template, neutral)
        except TemplateError as again:
            deployment = list(again.problems)
    if deployment:
        return _set(
            decision,
            Reason.CONFIGURATION,
            "the stored template does not render with the deployment's parameters: "
            + "; ".join(p.message for p in deployment)
            + " (fix the template or extraParameters, then redrive)",
        )
    codes = {p.code for p in problems}
    reason = (
        Reason.MISSING_CERTIFICATE_FIELD
        if "MISSING_PARAMETER" in codes
        else Reason.INVALID_DEVICE_NAME
        if codes & {"INVALID_NAME", "INVALID_VALUE"}
        else Reason.TEMPLATE_RENDER_FAILED
    )
    return _set(decision, reason, "; ".join(p.message for p in problems))


# -- one thing, one owner ---


def _claimed_by_another(
    decision: Decision, iot: IoT, settings: Settings, certificate: CertificateRecord, thing_name: str
) -> bool:
    """Refuse a certificate for a thing another ACTIVE certificate owns (in `replace` mode: one from another CA)."""
    if not iot.thing_exists(thing_name):  # a high-quota call spares ListThingPrincipals for new things
        return False
    owners = [c for c in _attached_others(iot, thing_name, certificate.certificate_id) if c.status == "ACTIVE"]
    if settings.existing_thing == "replace":
        owners = [o for o in owners if o.ca_certificate_id != certificate.ca_certificate_id]
    if not owners:
        return False
    _set(
        decision,
        Reason.THING_ALREADY_CLAIMED,
        f"thing {thing_name!r} already belongs to certificate {owners[0].certificate_id}"
        + (" issued by another CA" if settings.existing_thing == "replace" else "")
        + "; the existing device is left as it is",
    )
    return True


_LOSING_STATUSES = ("INACTIVE", "REVOKED")  # what a settlement sets a certificate that loses a thing to


def _owner(contenders: list[CertificateRecord], replacing: bool) -> CertificateRecord:
    """Who keeps a thing that several ACTIVE certificates hold: in `refuse` mode the certificate AWS IoT registered
    first; in `replace` mode the newest certificate of the CA that issued the first (a rotation never crosses CAs).
    Ties are broken by certificate id, so every environment that sees the same contenders picks the same owner."""
    ordered = sorted(contenders, key=_registered_order)
    if not replacing:
        return ordered[0]
    line = ordered[0].ca_certificate_id
    return [c for c in ordered if c.ca_certificate_id == line][-1]


def _settle_ownership(
    decision: Decision, iot: IoT, settings: Settings, certificate: CertificateRecord, thing_name: str
) -> None:
    """Look at the thing again: two certificates for one thing decided at the same moment both passed the check
    before either was attached, whatever CAs they come from. Every environment that sees such a conflict settles it
    the same way (`_owner`), so at most one ACTIVE certificate keeps the thing. The others are set to the rejection
    status (INACTIVE in `replace` mode, or when the rejection action is NONE, since RegisterThing activated them)
    and detached; a certificate left attached by a settlement that failed midway (set INACTIVE or REVOKED, not yet
    detached) is detached now if the owner would have beaten it. A failed call is RETRY: the redelivery settles again.
    """
    replacing = settings.existing_thing == "replace"
    try:
        everyone = [certificate, *_attached_others(iot, thing_name, certificate.certificate_id)]
        active = [c for c in everyone if c.status == "ACTIVE"]
        if not active:
            return
        owner = _owner(active, replacing)
        losers = [c for c in active if c.certificate_id != owner.certificate_id]
        leftovers = [
            c
            for c in everyone
            if c.status in _LOSING_STATUSES
            and _owner([*active, replace(c, status="ACTIVE")], replacing).certificate_id == owner.certificate_id
        ]
        status = "INACTIVE" if replacing or settings.rejection_action == "NONE" else settings.rejection_action
        for loser in sorted(losers, key=lambda c: c.certificate_id == certificate.certificate_id):  # mine last
            _take_from(iot, loser, status)
            iot.detach_certificate(thing_name, loser.arn)
        for leftover in leftovers:
            iot.detach_certificate(thing_name, leftover.arn)
    except IoTError as exc:
        return _set(
            decision,
            Reason.OWNERSHIP_NOT_SETTLED,
            f"settling who keeps thing {thing_name!r} failed: {exc.code}: {exc.message} (a redelivery finishes it)",
        )
    _say_settled(
        decision,
        certificate.certificate_id,
        thing_name,
        owner.certificate_id,
        [c.certificate_id for c in losers],
        [c.certificate_id for c in leftovers],
        status,
        replacing,
    )
    cas = dict(zip(decision.replaced, decision.replaced_cas, strict=False))  # an earlier thing's (see _not_pending)
    cas |= {c.certificate_id: c.ca_certificate_id for c in everyone}
    decision.replaced_cas = tuple(cas.get(c) for c in decision.replaced)


def _take_from(iot: IoT, loser: CertificateRecord, status: str) -> None:
    """Set a losing certificate to `status`. Already not ACTIVE (another environment settled it) or deleted is done;
    still ACTIVE after a failed update raises, for the redelivery to finish."""
    try:
        iot.update_certificate(loser.certificate_id, status)
        return
    except NotFound:
        return
    except IoTError:
        try:
            now = iot.describe_certificate(loser.certificate_id).status
        except NotFound:
            return
        if now == "ACTIVE":
            raise


def _say_settled(
    decision: Decision,
    mine: str,
    thing_name: str,
    owner: str,
    losers: list[str],
    leftovers: list[str],
    status: str,
    replacing: bool,
) -> None:
    """What the settlement did, told in the decision of certificate `mine`."""
    if mine in losers:
        _set(
            decision,
            Reason.THING_ALREADY_CLAIMED,
            f"certificate {owner} was provisioned for thing {thing_name!r} at the same moment and keeps it; this"
            f" certificate was set {status} and detached",
        )
        decision.recorded = True
        return
    if mine in leftovers:
        decision.message += f"; detached from thing {thing_name!r}, which certificate {owner} keeps"
        return
    if losers:
        verb = "replaced" if replacing else "won the thing against concurrently provisioned"
        decision.message += f"; {verb} certificate(s) {', '.join(losers)} (set {status} and detached)"
    if leftovers:
        decision.message += f"; detached certificate(s) {', '.join(leftovers)} that had lost thing {thing_name!r}"
    decision.replaced = (*decision.replaced, *losers, *leftovers)


def _attached_others(iot: IoT, thing_name: str, certificate_id: str) -> list[CertificateRecord]:
    """The certificates attached to the thing, other than `certificate_id`, as AWS IoT holds them now."""
    others: list[CertificateRecord] = []
    for other_id in iot.thing_certificates(thing_name):
        if other_id == certificate_id:
            continue
        try:
            others.append(iot.describe_certificate(other_id))
        except NotFound:
            continue
    return others


def _registered_order(record: CertificateRecord) -> tuple[datetime, str]:
    return (record.created or datetime.max.replace(tzinfo=UTC), record.certificate_id)
