"""`jitr explain CERTIFICATE_ID`: what jitr would decide now for a certificate in the account, and what it decided
(the decision table's record), side by side. Read-only: the handler's own `decide` runs against the account through
its own adapter, with every change (RegisterThing, UpdateCertificate, DetachThingPrincipal) recorded as what it
would do instead of done.

Revocation: the issuer's word on the certificate (the decision's, or, when the decision does not ask, as when the
certificate is ACTIVE, the configured source asked now), and its revocation-index item in the decision table: whether
the revocation sync revoked it or held it, when, why and from which CRL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from jitr.certificates import BadCertificate, load_certificate
from jitr.enrollment import Enrollments, identity
from jitr.hook import Hooks
from jitr.iot import CertificateRecord, IoT, NotFound
from jitr.outcomes import Reason
from jitr.provisioning import Checks, RegistrationEvent, decide
from jitr.revocation import Revocation
from jitr.revocation_index import RevocationIndex, serial_key
from jitr.revocation_sources import CrlSources
from jitr.settings import Settings
from jitr_tools.operating.revocation_check import describe


def read_serial_item(dynamodb_client: Any, table: str, ca_id: str, serial_hex: str) -> dict[str, Any] | None:
    """The certificate's revocation-index item, or None when it is not indexed (read-only)."""
    return RevocationIndex(table, dynamodb_client).item(ca_id, serial_hex)


def read_sync_state(dynamodb_client: Any, table: str, ca_id: str) -> dict[str, Any] | None:
    """The CA's revocation-sync state item, or None when no sync has run (read-only)."""
    return RevocationIndex(table, dynamodb_client).sync_state(ca_id)


class DryRunIoT(IoT):
    """The handler's adapter, reading the account as it does, changing nothing: each change is described in
    `effects` instead."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.effects: list[str] = []

    def register_thing(self, template_body: str, parameters: dict[str, str]) -> dict[str, str]:
        names = {k: v for k, v in parameters.items() if not k.startswith("AWS::IoT::Certificate::")}
        self.effects.append(f"RegisterThing with the stored template (parameters {names or 'from the certificate'})")
        return {}

    def update_certificate(self, certificate_id: str, status: str) -> None:
        self.effects.append(f"UpdateCertificate {certificate_id} to {status}")

    def detach_certificate(self, thing_name: str, certificate_arn: str) -> None:
        self.effects.append(f"DetachThingPrincipal {certificate_arn} from thing {thing_name}")


class DryRunEnrollments(Enrollments):
    """The enrollment table's adapter, reading as the handler does, changing nothing: each change is described in
    `effects` instead."""

    def __init__(self, table_name: str, client: Any, effects: list[str]) -> None:
        super().__init__(table_name, client)
        self.effects = effects

    def wait(self, product: str, by: str, value: str, certificate_id: str, ca_certificate_id: str) -> None:
        self.effects.append(f"remember {certificate_id} on {by} {value} of {product}: an import or enable decides it")

    def provisioned(self, product: str, by: str, value: str, certificate_id: str) -> None:
        self.effects.append(f"record {certificate_id} as provisioned for {by} {value} of {product}")


@dataclass
class Explanation:
    certificate_id: str
    status: str
    ca_certificate_id: str | None
    now: dict[str, Any]
    would: list[str] = field(default_factory=list)
    recorded: dict[str, Any] | None = None
    table: str | None = None
    revocation: RevocationView | None = None
    advice: str | None = None  # what the operator can do for a certificate held

    def to_dict(self) -> dict[str, Any]:
        return {
            "certificateId": self.certificate_id,
            "status": self.status,
            "caCertificateId": self.ca_certificate_id,
            "now": {**self.now, "would": self.would},
            "advice": self.advice,
            "recorded": self.recorded,
            "decisionTable": self.table,
            **(self.revocation.to_dict() if self.revocation else {}),
        }

    def lines(self) -> list[str]:
        def verdict(decision: dict[str, Any]) -> str:
            reason = f" {decision['reason']}" if decision.get("reason") else ""
            return f"{decision.get('outcome')}{reason}: {decision.get('message')}"

        lines = [
            f"certificate  {self.certificate_id}",
            f"status       {self.status} (CA {self.ca_certificate_id or 'unknown'})",
            f"now          {verdict(self.now)}",
            *_answers(self.now),
            *(f"  would      {effect}" for effect in self.would),
            *([f"to do        {self.advice}"] if self.advice else []),
        ]
        if self.table is None:
            lines.append("recorded     (no decision table given: --decision-table, or --function to read the stack's)")
        elif self.recorded is None:
            lines.append(f"recorded     nothing in {self.table} (never decided, only retried, or past the retention)")
        elif "outcome" not in self.recorded:
            lines.append(f"recorded     {self.recorded.get('status')}: being decided right now")
        else:
            lines.append(f"recorded     {verdict(self.recorded)} (at {self.recorded.get('decidedAt')})")
            lines += _answers(self.recorded)
        return lines + (self.revocation.lines(self.ca_certificate_id, self.table) if self.revocation else [])


def _answers(decision: dict[str, Any]) -> list[str]:
    """The product a decision was made for, and what its enrollment table and its decision hook answered."""
    return [f"  {name:<10} {decision[name]}" for name in ("product", "enrollment", "hook") if decision.get(name)]


@dataclass
class RevocationView:
    """The issuer's word on a certificate, and what the revocation sync did about it."""

    configured: bool  # the certificate's CA has revocation sources (JITR_REVOCATION)
    serial: str | None  # hex, lower case
    answers: tuple[Revocation, ...] = ()
    index_key: str | None = None  # the revocation-index item looked up (None: no table, or no serial)
    indexed: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "serialNumber": self.serial,
            "revocation": [answer.to_dict() for answer in self.answers],
            "revocationIndex": {"id": self.index_key, "item": self.indexed} if self.index_key else None,
        }

    def lines(self, ca_id: str | None, table: str | None) -> list[str]:
        lines = [f"revocation   {describe(answer)}" for answer in self.answers]
        if not self.configured:
            lines.append(f"revocation   not checked: CA {ca_id or 'unknown'} has no CRL source (JITR_REVOCATION)")
        if self.index_key and (self.configured or self.indexed):
            lines.append(f"synced       {self._synced(ca_id, table)}")
        return lines

    def _synced(self, ca_id: str | None, table: str | None) -> str:
        item = self.indexed
        if item is None:
            return (
                f"not in the revocation index of {table} ({self.index_key}): the revocation sync cannot find it"
                f" until the handler decides it or `jitr revocation backfill --ca {ca_id}` indexes it"
            )
        status = item.get("syncedStatus")
        if not status:
            released = f"; released from a hold at {item['releasedAt']}" if item.get("releasedAt") else ""
            return f"indexed at {item.get('decidedAt')}, not acted on by the revocation sync{released}"
        why = [f"reason {item['syncedReason']}" if item.get("syncedReason") else ""]
        why.append(f"revoked by the issuer at {item['syncedRevokedAt']}" if item.get("syncedRevokedAt") else "")
        why.append(f"CRL {item['syncedSource']}" if item.get("syncedSource") else "")
        return f"set {status} by the revocation sync at {item.get('syncedAt')}: " + ", ".join(w for w in why if w)


def explain(
    certificate_id: str,
    settings: Settings,
    iot_client: Any,
    *,
    dynamodb_client: Any = None,
    crls: CrlSources | None = None,
    hooks: Hooks | None = None,
) -> Explanation:
    """Decide for `certificate_id` as the handler would now, changing nothing (but asking a product's decision hook
    through `hooks`), and read what it decided before."""
    from jitr_handlers.once import recorded_decision

    iot = DryRunIoT(iot_client)
    enrollments = None
    if settings.enrollment_table and dynamodb_client is not None:
        enrollments = DryRunEnrollments(settings.enrollment_table, dynamodb_client, iot.effects)
    crls = crls or CrlSources(loopback_ok=settings.revocation_allow_loopback)
    record = iot.describe_certificate(certificate_id)
    account = record.arn.split(":")[4] if record.arn.count(":") >= 5 else "000000000000"
    payload = RegistrationEvent.payload(
        certificate_id, record.ca_certificate_id or "0" * 64, account, status=record.status
    )
    event = RegistrationEvent.model_validate(payload)
    decision = decide(event, iot, settings, crls=crls, checks=Checks(enrollments, hooks))
    recorded = None
    if settings.decision_table and dynamodb_client is not None and record.ca_certificate_id:
        recorded = recorded_decision(
            certificate_id,
            record.ca_certificate_id,
            table_name=settings.decision_table,
            dynamodb_client=dynamodb_client,
        )
    return Explanation(
        certificate_id,
        record.status,
        record.ca_certificate_id,
        decision.to_dict(),
        iot.effects,
        recorded,
        settings.decision_table,
        _revocation(record, decision.revocation, iot, settings, crls, dynamodb_client),
        advice(decision.reason, decision.product, decision.hook, record, settings),
    )


def advice(
    reason: Reason | None, product: str | None, hook: str | None, record: CertificateRecord, settings: Settings
) -> str | None:
    """What the operator can do for a certificate held pending, by the reason it is held (None: not held)."""
    try:
        leaf = load_certificate(record.pem)
    except BadCertificate:
        return None
    if reason == Reason.NO_PRODUCT:
        return (
            f"add a product that serves CA {record.ca_certificate_id} (with a select matching its subject"
            f" {leaf.subject.rfc4514_string()!r}) to the configuration and deploy; its next event (the sweeper"
            " redelivers it) decides it again"
        )
    if reason == Reason.HELD_BY_HOOK:
        answer = (hook or "").partition(": ")[2] or "no reason given"
        return (
            f"the decision hook of product {product} holds it ({answer}): settle that with the hook's owners; its next"
            " event asks the hook again"
        )
    settings_of = {p.name: p for p in settings.product_lines}.get(product or "")
    if reason not in (Reason.NOT_ENROLLED, Reason.DEVICE_DISABLED) or settings_of is None or not settings_of.enrollment:
        return None
    by = settings_of.enrollment.by
    value = identity(leaf, by)
    if reason == Reason.NOT_ENROLLED:
        listing = f"{by} {value}" if value else f"its {by} (it has no single one: it can never be enrolled)"
        return (
            f"import the manifest that lists {listing}: jitr enroll import MANIFEST --product {product}"
            " (the import decides it again)"
        )
    return (
        f"if the device may connect again: jitr enroll enable {value} --by {by} --product {product}"
        " (the enable decides it again)"
    )


def _revocation(
    record: CertificateRecord,
    answers: tuple[Revocation, ...],
    iot: IoT,
    settings: Settings,
    crls: CrlSources,
    dynamodb_client: Any,
) -> RevocationView:
    """The decision's revocation answers, else (the decision did not ask: the certificate is not pending, or was
    refused before) the CA's configured source asked now; and the certificate's revocation-index item."""
    ca_id = record.ca_certificate_id or ""
    source = settings.revocation.get(ca_id)
    try:
        leaf = load_certificate(record.pem)
    except BadCertificate:
        return RevocationView(source is not None, None, answers)
    serial = f"{leaf.serial_number:x}"
    if source is not None and not answers:
        try:
            issuer = load_certificate(iot.describe_ca_certificate(ca_id).pem)
        except (NotFound, BadCertificate):
            issuer = None
        if issuer is not None:
            skew = timedelta(seconds=settings.clock_skew_seconds)
            answers = (crls.status(leaf, issuer, source, skew=skew),)
    view = RevocationView(source is not None, serial, answers)
    if settings.decision_table and dynamodb_client is not None and ca_id:
        view.index_key = serial_key(ca_id, serial)
        view.indexed = read_serial_item(dynamodb_client, settings.decision_table, ca_id, serial)
    return view
