"""Decision events: each final decision, published to Amazon EventBridge in a documented, versioned schema, so the
systems around a fleet (ERP, device inventory, support desk) learn what jitr decided without reading its logs.

An event is built from the decision as the decision table recorded it (`decision_entries`), or from what the
revocation sync did (`issuer_entries`); `EventBus` is the adapter that puts them. Never a PEM: the detail holds ids,
the outcome and its reason, the serial number and notAfter.

Schema (`SCHEMA_VERSION` "major.minor"): a field may be added under the same major version (the minor grows);
removing or renaming a field, or changing what one means, makes a new major version. `eventId` is the same for every
publication of one decision (a redelivery publishes it again): consumers deduplicate on it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from .iot import client_config
from .outcomes import Outcome, Reason, remembered
from .settings import Settings

SOURCE = "jitr"  # one source for every stack: a rule filters on `detail.stack` to hear one deployment
SCHEMA_VERSION = "1.0"
MAX_ENTRIES = 10  # PutEvents takes at most 10 entries a call
MAX_MESSAGE_CHARS = 2048  # a decision's sentence, cut to this (an event is at most 256 KB; a message never needs it)


class DetailType(StrEnum):
    """An event's `detail-type`: one per outcome family (what a rule usually matches on)."""

    PROVISIONED = "Device Provisioned"  # PROVISIONED, or ALREADY_ACTIVE (its certificate was already ACTIVE)
    REJECTED = "Device Rejected"
    HELD = "Device Held"  # left pending, nobody's fault (the issuer holds it): decided again on its next event
    SKIPPED = "Device Skipped"  # a certificate already REVOKED or INACTIVE when its event arrived
    REPLACED = "Certificate Replaced"  # took the thing from this certificate (set INACTIVE or revoked, detached)
    REVOKED_BY_ISSUER = "Certificate Revoked By Issuer"  # the revocation sync set it REVOKED
    HELD_BY_ISSUER = "Certificate Held By Issuer"  # the revocation sync set it INACTIVE (certificateHold)
    RELEASED_BY_ISSUER = "Certificate Released By Issuer"  # the hold was lifted: ACTIVE again
    QUARANTINED = "Device Quarantined"  # an operator disabled a provisioned device: its certificate set INACTIVE
    RELEASED = "Device Released"  # the operator enabled it again: its certificate ACTIVE again


_FAMILY = {
    Outcome.PROVISIONED: DetailType.PROVISIONED,
    Outcome.ALREADY_ACTIVE: DetailType.PROVISIONED,
    Outcome.REJECTED: DetailType.REJECTED,
    Outcome.HELD: DetailType.HELD,
    Outcome.SKIPPED: DetailType.SKIPPED,
}


class NotPublished(Exception):
    """EventBridge did not take every event (after botocore's retries): the caller publishes them again later."""


def announced(outcome: Outcome, reason: Reason | None) -> bool:
    """Whether a decision is published: a final decision about the certificate (the one the decision table keeps),
    or a hold (never recorded: published each time it is made, under one eventId)."""
    return remembered(outcome, reason) or outcome == Outcome.HELD


def event_id(*parts: str | None) -> str:
    """A stable id for one decision's event: the SHA-256 of its identifying parts."""
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _entry(detail_type: DetailType, detail: dict[str, Any]) -> dict[str, Any]:
    return {"Source": SOURCE, "DetailType": str(detail_type), "Detail": json.dumps(detail, separators=(",", ":"))}


def _detail(identity: str, stack: str, record: Mapping[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "schemaVersion": SCHEMA_VERSION,
        "eventId": identity,
        "stack": stack,
        "product": record.get("product"),
        "certificateId": record.get("certificateId"),
        "caCertificateId": record.get("caCertificateId"),
        "thingName": record.get("thingName"),
        "outcome": record.get("outcome"),
        "reason": record.get("reason"),
        "message": str(record.get("message") or "")[:MAX_MESSAGE_CHARS],
        "serialNumber": record.get("serialNumber"),
        "notAfter": record.get("notAfter"),
        "decidedAt": record.get("decidedAt"),
        **more,
    }


def decision_entries(record: Mapping[str, Any], *, stack: str) -> list[dict[str, Any]]:
    """The PutEvents entries of one decision (`Decision.to_dict()` and `decidedAt`, as the table keeps it): its own
    event, and one "Certificate Replaced" per certificate it took the thing from."""
    detail_type = _FAMILY[Outcome(record["outcome"])]
    held = detail_type == DetailType.HELD  # one hold, decided at every event, is one event: no decidedAt in its id
    ids = (record.get("certificateId"), record.get("caCertificateId"), record.get("outcome"), record.get("reason"))
    identity = event_id(detail_type, *ids, None if held else record.get("decidedAt"))
    replaced = list(record.get("replacedCertificateIds") or ())
    cas = list(record.get("replacedCaCertificateIds") or [None] * len(replaced))
    extra = {"replacedCertificateIds": replaced} if replaced else {}
    entries = [_entry(detail_type, _detail(identity, stack, record, **extra))]
    for old, old_ca in zip(replaced, cas, strict=True):
        replacement = {"certificateId": record.get("certificateId"), "caCertificateId": record.get("caCertificateId")}
        old_record = {**record, "certificateId": old, "caCertificateId": old_ca, "serialNumber": None, "notAfter": None}
        detail = _detail(event_id(DetailType.REPLACED, old, identity), stack, old_record, replacedBy=replacement)
        entries.append(_entry(DetailType.REPLACED, detail))
    return entries


ISSUER_ACTIONS = {  # what the revocation sync did -> (detail type, the status it set, the reason)
    "revoked": (DetailType.REVOKED_BY_ISSUER, "REVOKED", Reason.REVOKED_BY_ISSUER),
    "held": (DetailType.HELD_BY_ISSUER, "INACTIVE", Reason.CERTIFICATE_ON_HOLD),
    "released": (DetailType.RELEASED_BY_ISSUER, "ACTIVE", None),
}


def issuer_entries(
    action: str,
    ca_id: str,
    certificates: Iterable[tuple[str, str | None, str | None]],
    *,
    stack: str,
    source: str,
) -> list[dict[str, Any]]:
    """The entries of what the revocation sync did to certificates (certificate id, serial, notAfter) of one CA."""
    detail_type, status, reason = ISSUER_ACTIONS[action]
    decided_at = now()
    entries = []
    for certificate, serial, not_after in certificates:
        record = {
            "certificateId": certificate,
            "caCertificateId": ca_id,
            "outcome": status,
            "reason": reason,
            "message": f"set {status} by the revocation sync ({source})",
            "serialNumber": serial,
            "notAfter": not_after,
            "decidedAt": decided_at,
        }
        identity = event_id(detail_type, certificate, ca_id, status, decided_at)
        entries.append(_entry(detail_type, _detail(identity, stack, record)))
    return entries


ENROLLMENT_ACTIONS = {  # what `jitr enroll disable|enable` did -> (detail type, the status it set, the reason)
    "QUARANTINED": (DetailType.QUARANTINED, "INACTIVE", Reason.DEVICE_DISABLED),
    "RELEASED": (DetailType.RELEASED, "ACTIVE", None),
}


def enrollment_entries(
    action: str, product: str, certificate: str, ca_id: str | None, device: str, *, stack: str
) -> list[dict[str, Any]]:
    """The entry of what an operator's disable or enable did to the certificate provisioned for `device` (its
    enrollment identity, as `by value`) of `product`."""
    detail_type, status, reason = ENROLLMENT_ACTIONS[action]
    decided_at = now()
    record = {
        "product": product,
        "certificateId": certificate,
        "caCertificateId": ca_id,
        "outcome": status,
        "reason": reason,
        "message": f"set {status}: {device} of {product} was {'disabled' if reason else 'enabled'} by an operator",
        "decidedAt": decided_at,
    }
    identity = event_id(detail_type, certificate, ca_id, status, decided_at)
    return [_entry(detail_type, _detail(identity, stack, record))]


class EventBus:
    """The EventBridge adapter: puts entries on `bus` (a name or an ARN), ten a call, with botocore's retries."""

    def __init__(self, bus: str, client: Callable[[], Any]) -> None:
        self.bus = bus
        self._client = client
        self._made: Any = None

    @classmethod
    def connect(cls, settings: Settings) -> EventBus:
        """The bus the settings name, with botocore's retries (the handler's and the revocation sync's)."""
        assert settings.event_bus
        config = client_config(settings.max_attempts)
        return cls(
            settings.event_bus,
            lambda: boto3.session.Session().client("events", config=config, endpoint_url=settings.endpoint_url),
        )

    @property
    def client(self) -> Any:
        if self._made is None:
            self._made = self._client()
        return self._made

    def put(self, entries: list[dict[str, Any]]) -> None:
        """Raises `NotPublished` naming why, if any entry was not taken (those before it may have been)."""
        for start in range(0, len(entries), MAX_ENTRIES):
            chunk = [{**entry, "EventBusName": self.bus} for entry in entries[start : start + MAX_ENTRIES]]
            try:
                answer = self.client.put_events(Entries=chunk)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                raise NotPublished(f"PutEvents on {self.bus}: {error.get('Code')}: {error.get('Message')}") from exc
            except BotoCoreError as exc:
                raise NotPublished(f"PutEvents on {self.bus}: {exc}") from exc
            if answer.get("FailedEntryCount"):
                codes = sorted({str(e.get("ErrorCode")) for e in answer.get("Entries", []) if e.get("ErrorCode")})
                raise NotPublished(
                    f"PutEvents on {self.bus}: {answer['FailedEntryCount']} not taken ({', '.join(codes)})"
                )
