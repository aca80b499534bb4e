"""`jitr explain CERTIFICATE_ID`: what jitr would decide now for a certificate in the account, and what it decided
(the decision table's record), side by side. Read-only: the handler's own `decide` runs against the account through
its own adapter, with every change (RegisterThing, UpdateCertificate, DetachThingPrincipal) recorded as what it
would do instead of done."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jitr.iot import IoT
from jitr.provisioning import RegistrationEvent, decide
from jitr.settings import Settings


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


@dataclass
class Explanation:
    certificate_id: str
    status: str
    ca_certificate_id: str | None
    now: dict[str, Any]
    would: list[str] = field(default_factory=list)
    recorded: dict[str, Any] | None = None
    table: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "certificateId": self.certificate_id,
            "status": self.status,
            "caCertificateId": self.ca_certificate_id,
            "now": {**self.now, "would": self.would},
            "recorded": self.recorded,
            "decisionTable": self.table,
        }

    def lines(self) -> list[str]:
        def verdict(decision: dict[str, Any]) -> str:
            reason = f" {decision['reason']}" if decision.get("reason") else ""
            return f"{decision.get('outcome')}{reason}: {decision.get('message')}"

        lines = [
            f"certificate  {self.certificate_id}",
            f"status       {self.status} (CA {self.ca_certificate_id or 'unknown'})",
            f"now          {verdict(self.now)}",
            *(f"  would      {effect}" for effect in self.would),
        ]
        if self.table is None:
            lines.append("recorded     (no decision table given: --decision-table, or --function to read the stack's)")
        elif self.recorded is None:
            lines.append(f"recorded     nothing in {self.table} (never decided, only retried, or past the retention)")
        elif "outcome" not in self.recorded:
            lines.append(f"recorded     {self.recorded.get('status')}: being decided right now")
        else:
            lines.append(f"recorded     {verdict(self.recorded)} (at {self.recorded.get('decidedAt')})")
        return lines


def explain(
    certificate_id: str,
    settings: Settings,
    iot_client: Any,
    *,
    dynamodb_client: Any = None,
) -> Explanation:
    """Decide for `certificate_id` as the handler would now, changing nothing, and read what it decided before."""
    from jitr_handlers.once import recorded_decision

    iot = DryRunIoT(iot_client)
    record = iot.describe_certificate(certificate_id)
    account = record.arn.split(":")[4] if record.arn.count(":") >= 5 else "000000000000"
    payload = RegistrationEvent.payload(
        certificate_id, record.ca_certificate_id or "0" * 64, account, status=record.status
    )
    event = RegistrationEvent.model_validate(payload)
    decision = decide(event, iot, settings)
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
    )
