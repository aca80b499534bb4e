"""Enrollment: a product may require that a device be listed in a manufacturing manifest before it is provisioned.

"The CA signed it" proves who made a certificate, not that it is a device that was shipped: a CA key at a contract
manufacturer, a batch that failed its end-of-line test, a unit sent back. Operators import each batch's manifest
(serial numbers, common names or public-key SHA-256 fingerprints) into the stack's enrollment table, and disable or
enable single devices; the handler looks each certificate's identity up before it provisions it.

The table (partition key `product`, sort key `identity` = `<by>#<value>`, so a product's enrollments are one Query):
- `status`: ENROLLED or DISABLED; absent while the identity is only known from a held certificate (NOT_ENROLLED).
- where it came from: `manifest` (the file's name), `line` (its line, or its entry for JSON), `batch`, `importedAt`.
- `waiting`: the certificates held because the identity was not enrolled or disabled (a string set of
  `<certificateId>:<caCertificateId>`), sent to the intake queue again when an import or `enable` makes it enrolled.
- `provisionedCertificateId`, `provisionedAt`: the certificate provisioned for it; `quarantined` (true while jitr
  itself set that certificate INACTIVE because the device was disabled).

Raising `EnrollmentUnavailable` means the table could not be read or written: never the device's fault.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from pydantic import BaseModel, ConfigDict, Field

from .iot import CertificateRecord, IoT, NotFound
from .pacing import Pacer
from .revocation_index import RevocationIndex

By = Literal["serialNumber", "commonName", "publicKeySha256"]
BY_VALUES: tuple[str, ...] = By.__args__  # type: ignore[attr-defined]
PARTITION_KEY = "product"
SORT_KEY = "identity"
MAX_WAITING = 16  # certificates remembered per identity (a device re-issued that often is still requeued at its next
# reconnect, when AWS IoT publishes its event again)
MAX_SERIAL_HEX = 40  # RFC 5280: a serial number is at most 20 octets
MAX_COMMON_NAME = 64  # RFC 5280's ub-common-name
MAX_BATCH = 128
DEFAULT_WRITES_PER_S = 100.0  # an import's pace: well inside an on-demand table's initial 4,000 writes per second
HEX = re.compile(r"[0-9a-fA-F]+")
FINGERPRINT = re.compile(r"[0-9a-fA-F]{64}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class EnrollmentSettings(BaseModel):
    """A product's enrollment (`"enrollment": {"by": "serialNumber"}`): which identity its manifests list."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    by: By = Field(alias="by")


class EnrollmentUnavailable(Exception):
    """The enrollment table could not be read or written (RETRY: the device is not at fault)."""


class Status(StrEnum):
    ENROLLED = "ENROLLED"
    DISABLED = "DISABLED"
    NOT_ENROLLED = "NOT_ENROLLED"


def identity(certificate: x509.Certificate, by: str) -> str | None:
    """The value a manifest would list for `certificate`: the serial number as lowercase hex without leading zeros,
    the subject's common name (None unless it has exactly one), or the SHA-256 of the SubjectPublicKeyInfo's DER."""
    if by == "serialNumber":
        return f"{certificate.serial_number:x}"
    if by == "commonName":
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if len(names) == 1 else None
    if by == "publicKeySha256":
        spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(spki).hexdigest()
    raise ValueError(f"unknown enrollment identity {by!r}")


def normalized(by: str, value: str) -> str:
    """`value` as the table keeps it (`identity`'s form); raises ValueError saying what is wrong with it."""
    if not value:
        raise ValueError("empty")
    if by == "serialNumber":
        if not HEX.fullmatch(value):
            raise ValueError(f"serial number {value[:80]!r} is not hexadecimal")
        if len(value.lstrip("0")) > MAX_SERIAL_HEX:
            raise ValueError(f"serial number longer than {MAX_SERIAL_HEX} hex digits (20 octets)")
        return f"{int(value, 16):x}"
    if by == "publicKeySha256":
        if not FINGERPRINT.fullmatch(value):
            raise ValueError(f"{value[:80]!r} is not a SHA-256 fingerprint (64 hex digits)")
        return value.lower()
    if by == "commonName":
        if CONTROL.search(value):
            raise ValueError("common name holds a control character")
        if len(value) > MAX_COMMON_NAME:
            raise ValueError(f"common name longer than {MAX_COMMON_NAME} characters")
        return value
    raise ValueError(f"unknown enrollment identity {by!r}")


def sort_key(by: str, value: str) -> str:
    return f"{by}#{value}"


@dataclass(frozen=True)
class Waiting:
    """A certificate held for its identity's enrollment."""

    certificate_id: str
    ca_certificate_id: str

    def __str__(self) -> str:
        return f"{self.certificate_id}:{self.ca_certificate_id}"

    @classmethod
    def parse(cls, text: str) -> Waiting:
        certificate, _, ca = text.partition(":")
        return cls(certificate, ca)


@dataclass(frozen=True)
class Enrollment:
    """One identity of a product, as the table holds it (NOT_ENROLLED when it holds nothing for it)."""

    product: str
    by: str
    value: str
    status: Status
    batch: str | None = None
    manifest: str | None = None
    line: int | None = None
    imported_at: str | None = None
    waiting: tuple[Waiting, ...] = ()
    provisioned_certificate_id: str | None = None
    quarantined: bool = False

    @classmethod
    def from_item(cls, product: str, by: str, value: str, item: Mapping[str, Any]) -> Enrollment:
        def text(name: str) -> str | None:
            return item[name]["S"] if name in item and "S" in item[name] else None

        line = item.get("line", {}).get("N")
        return cls(
            product=product,
            by=by,
            value=value,
            status=Status(text("status") or Status.NOT_ENROLLED),
            batch=text("batch"),
            manifest=text("manifest"),
            line=int(line) if line is not None else None,
            imported_at=text("importedAt"),
            waiting=tuple(Waiting.parse(w) for w in sorted(item.get("waiting", {}).get("SS", []))),
            provisioned_certificate_id=text("provisionedCertificateId"),
            quarantined=bool(item.get("quarantined", {}).get("BOOL", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "by": self.by,
            "value": self.value,
            "status": str(self.status),
            "batch": self.batch,
            "manifest": self.manifest,
            "line": self.line,
            "importedAt": self.imported_at,
            "waiting": [
                {"certificateId": w.certificate_id, "caCertificateId": w.ca_certificate_id} for w in self.waiting
            ],
            "provisionedCertificateId": self.provisioned_certificate_id,
            "quarantined": self.quarantined,
        }

    def describe(self) -> str:
        """A sentence for a decision's message: where the enrollment came from."""
        origin = f"{self.manifest} line {self.line}" if self.manifest else "no manifest"
        batch = f", batch {self.batch}" if self.batch else ""
        when = f", imported {self.imported_at}" if self.imported_at else ""
        return f"{self.by} {self.value} of {self.product}: {self.status} ({origin}{batch}{when})"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def operator_config(max_attempts: int = 10) -> Config:
    """The operator tools' DynamoDB client: botocore's adaptive retries slow an import down when it is throttled."""
    return Config(retries={"mode": "adaptive", "total_max_attempts": max_attempts}, connect_timeout=3, read_timeout=10)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


class Enrollments:
    """The adapter over the enrollment table `table_name` (a boto3 DynamoDB client passed in)."""

    def __init__(self, table_name: str, client: Any) -> None:
        self.table_name = table_name
        self.client = client

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self.client, operation)(TableName=self.table_name, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise EnrollmentUnavailable(f"{self.table_name}: {error.get('Code')}: {error.get('Message')}") from exc
        except BotoCoreError as exc:
            raise EnrollmentUnavailable(f"{self.table_name}: {exc}") from exc
        return response

    def _update(self, product: str, by: str, value: str, **kwargs: Any) -> dict[str, Any] | None:
        """UpdateItem on the identity's item: its attributes after (ReturnValues ALL_NEW unless told), or None when
        its condition did not hold."""
        try:
            response = self._call(
                "update_item", Key=self._key(product, by, value), **{"ReturnValues": "ALL_NEW", **kwargs}
            )
        except EnrollmentUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and _code(cause) == "ConditionalCheckFailedException":
                return None
            raise
        return dict(response.get("Attributes") or {})

    @staticmethod
    def _key(product: str, by: str, value: str) -> dict[str, Any]:
        return {PARTITION_KEY: {"S": product}, SORT_KEY: {"S": sort_key(by, value)}}

    def look_up(self, product: str, by: str, value: str) -> Enrollment:
        """The identity's enrollment (consistent read: a device enabled a moment ago is enrolled)."""
        item = self._call("get_item", Key=self._key(product, by, value), ConsistentRead=True).get("Item") or {}
        return Enrollment.from_item(product, by, value, item)

    def find(self, product: str, value: str) -> list[Enrollment]:
        """The product's enrolled identities `value` may be, as any of the three (a serial number and a common name
        can look alike): what `disable ID` and `enable ID` act on when not told which."""
        found = []
        for by in BY_VALUES:
            try:
                kept = normalized(by, value)
            except ValueError:
                continue
            enrollment = self.look_up(product, by, kept)
            if enrollment.status != Status.NOT_ENROLLED:
                found.append(enrollment)
        return found

    def wait(self, product: str, by: str, value: str, certificate_id: str, ca_certificate_id: str) -> None:
        """Remember a certificate held for this identity so an import or `enable` sends its event again. It adds to
        `waiting` only (never `status`): the identity does not count as enrolled. At most MAX_WAITING are kept."""
        entry = str(Waiting(certificate_id, ca_certificate_id))
        self._update(
            product,
            by,
            value,
            UpdateExpression="ADD waiting :entry",
            ConditionExpression="attribute_not_exists(waiting) OR size(waiting) < :max OR contains(waiting, :one)",
            ExpressionAttributeValues={
                ":entry": {"SS": [entry]},
                ":one": {"S": entry},
                ":max": {"N": str(MAX_WAITING)},
            },
            ReturnValues="NONE",
        )

    def provisioned(self, product: str, by: str, value: str, certificate_id: str) -> None:
        """Record the certificate provisioned for this identity (a later `disable` quarantines it). Nothing waits for
        the identity any more: its other held certificates are decided at their own next event, as any device's."""
        self._update(
            product,
            by,
            value,
            UpdateExpression="SET provisionedCertificateId = :c, provisionedAt = :at REMOVE quarantined, waiting",
            ExpressionAttributeValues={":c": {"S": certificate_id}, ":at": {"S": now()}},
            ReturnValues="NONE",
        )

    def enroll(self, product: str, by: str, row: Row, manifest: str, imported_at: str) -> tuple[bool, Enrollment]:
        """Enroll one manifest row unless the identity is already ENROLLED or DISABLED (an import never enables a
        disabled device). Returns whether it was written, and the identity's item (after the write, or as found)."""
        values = {":s": {"S": Status.ENROLLED}, ":m": {"S": manifest}, ":l": {"N": str(row.line)}}
        values |= {":at": {"S": imported_at}, ":by": {"S": by}, ":v": {"S": row.value}}
        sets = "#status = :s, #by = :by, #value = :v, manifest = :m, #line = :l, importedAt = :at"
        if row.batch:
            values[":b"] = {"S": row.batch}
            sets += ", #batch = :b"
        names = {"#status": "status", "#by": "by", "#value": "value", "#line": "line"}
        try:
            response = self._call(
                "update_item",
                Key=self._key(product, by, row.value),
                UpdateExpression=f"SET {sets}",
                ConditionExpression="attribute_not_exists(#status)",
                ExpressionAttributeNames=names | ({"#batch": "batch"} if row.batch else {}),
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except EnrollmentUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and _code(cause) == "ConditionalCheckFailedException":
                old = cause.response.get("Item") or {}
                return False, Enrollment.from_item(product, by, row.value, old)
            raise
        return True, Enrollment.from_item(product, by, row.value, response.get("Attributes") or {})

    def set_status(self, product: str, by: str, value: str, status: Status) -> Enrollment | None:
        """Set an enrolled identity's status; None when it is not enrolled (never imported)."""
        item = self._update(
            product,
            by,
            value,
            UpdateExpression="SET #status = :s, updatedAt = :at",
            ConditionExpression="attribute_exists(#status)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":s": {"S": status}, ":at": {"S": now()}},
        )
        return None if item is None else Enrollment.from_item(product, by, value, item)

    def set_quarantined(self, product: str, by: str, value: str, quarantined: bool) -> None:
        expression = "SET quarantined = :q, quarantinedAt = :at" if quarantined else "REMOVE quarantined, quarantinedAt"
        values = {":q": {"BOOL": True}, ":at": {"S": now()}} if quarantined else {}
        self._update(
            product,
            by,
            value,
            UpdateExpression=expression,
            ReturnValues="NONE",
            **({"ExpressionAttributeValues": values} if values else {}),
        )

    def list(self, product: str, status: Status | None = None) -> Iterator[Enrollment]:
        """A product's identities (a Query, page by page), those with `status` only when given."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": PARTITION_KEY},
            "ExpressionAttributeValues": {":p": {"S": product}},
        }
        if status == Status.NOT_ENROLLED:
            kwargs["FilterExpression"] = "attribute_not_exists(#status)"
            kwargs["ExpressionAttributeNames"]["#status"] = "status"
        elif status is not None:
            kwargs["FilterExpression"] = "#status = :s"
            kwargs["ExpressionAttributeNames"]["#status"] = "status"
            kwargs["ExpressionAttributeValues"][":s"] = {"S": status}
        while True:
            page = self._call("query", **kwargs)
            for item in page.get("Items", []):
                by, _, value = item[SORT_KEY]["S"].partition("#")
                yield Enrollment.from_item(product, by, value, item)
            if not page.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# -- manifests ---------------------------------------------------------------------------------------------------


class ManifestError(ValueError):
    """The manifest as a whole cannot be read (not CSV or JSON, no identity column): one line saying why."""


@dataclass(frozen=True)
class Row:
    """One identity a manifest lists: its line (CSV) or entry (JSON), the value as the table keeps it, its batch."""

    line: int
    value: str
    batch: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A manifest read and checked: its rows, or (when any is malformed) what is wrong, row by row."""

    name: str
    by: str
    rows: tuple[Row, ...]
    total: int  # rows in the file, good and bad
    problems: tuple[str, ...] = ()  # "line 7: serial number 'xyz' is not hexadecimal", one per bad row


def read_manifest(name: str, text: str, by: str | None = None) -> Manifest:
    """Read a manifest: CSV with a header row naming the identity column (`serialNumber`, `commonName` or
    `publicKeySha256`, optionally `batch`), or JSON (a list of strings, or of objects with that key and optionally
    `batch`). `by` insists on an identity (needed for a JSON list of strings). Every row is checked: a malformed one
    (wrong format for the identity, empty, a duplicate within the file) is named in `problems` by its line."""
    if by is not None and by not in BY_VALUES:
        raise ManifestError(f"unknown identity {by!r}: one of {', '.join(BY_VALUES)}")
    text = text.removeprefix("\ufeff")  # a spreadsheet's byte order mark
    if name.lower().endswith(".json") or text.lstrip().startswith("["):
        by, label, raw = _json_rows(text, by)
    else:
        by, label, raw = _csv_rows(text, by)
    rows: list[Row] = []
    problems: list[str] = []
    first: dict[str, int] = {}
    for number, value, batch in raw:
        try:
            if value is None:
                raise ValueError(f"not a string (the {by} must be one)")
            row = Row(number, normalized(by, value), _batch(batch))
        except ValueError as exc:
            problems.append(f"{label} {number}: {exc}")
            continue
        if row.value in first:
            problems.append(f"{label} {number}: duplicate of {label} {first[row.value]} ({row.value})")
            continue
        first[row.value] = number
        rows.append(row)
    return Manifest(name, by, tuple(rows), len(raw), tuple(problems))


def _batch(batch: str | None) -> str | None:
    if not batch:
        return None
    if len(batch) > MAX_BATCH or CONTROL.search(batch):
        raise ValueError(f"batch must be at most {MAX_BATCH} printable characters")
    return batch


RawRow = tuple[int, str | None, str | None]  # (line, value, batch); value None: not a string


def _identity_column(found: list[str], by: str | None, where: str) -> str:
    if by is not None:
        if by not in found:
            raise ManifestError(f"{where} names no {by} column")
        return by
    if len(found) != 1:
        raise ManifestError(f"{where} must name one of {', '.join(BY_VALUES)}" + (" (or give --by)" if found else ""))
    return found[0]


def _csv_rows(text: str, by: str | None) -> tuple[str, str, list[RawRow]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [cell.strip() for cell in next(reader, [])]
        if not any(header):
            raise ManifestError("no header row (a CSV manifest starts with one naming its column, e.g. serialNumber)")
        column = _identity_column([c for c in BY_VALUES if c in header], by, "the header row")
        if header.count(column) > 1 or header.count("batch") > 1:
            raise ManifestError(f"the header row names {column} or batch twice")
        at, batch_at = header.index(column), header.index("batch") if "batch" in header else None
        rows: list[RawRow] = []
        line = reader.line_num
        for record in reader:
            start, line = line + 1, reader.line_num
            if not record:
                continue  # a blank line
            value = record[at].strip() if at < len(record) else ""
            batch = record[batch_at].strip() if batch_at is not None and batch_at < len(record) else None
            rows.append((start, value, batch))
    except csv.Error as exc:
        raise ManifestError(f"not a CSV file (line {reader.line_num}: {exc})") from None
    return column, "line", rows


def _json_rows(text: str, by: str | None) -> tuple[str, str, list[RawRow]]:
    try:
        entries = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ManifestError(f"not JSON ({exc})") from None
    if not isinstance(entries, list):
        raise ManifestError("a JSON manifest is a list of strings or of objects")
    keys = {key for entry in entries if isinstance(entry, dict) for key in entry if key in BY_VALUES}
    if any(isinstance(entry, dict) for entry in entries):
        by = _identity_column(sorted(keys), by, "the objects")
    elif by is None:
        raise ManifestError(f"a JSON list of strings needs --by ({', '.join(BY_VALUES)})")
    rows: list[RawRow] = []
    for number, entry in enumerate(entries, start=1):
        if isinstance(entry, dict):
            value, batch = entry.get(by), entry.get("batch")
        else:
            value, batch = entry, None
        if not isinstance(value, str) or not (batch is None or isinstance(batch, str)):
            rows.append((number, None, None))  # refused with its number
            continue
        rows.append((number, value.strip(), batch))
    return by, "entry", rows


# -- the operator side: import, disable, enable --------------------------------------------------------------------


class NotEnrolled(Exception):
    """`disable` or `enable` of an identity no manifest enrolled."""


class RequeueFailed(Exception):
    """The intake queue did not take a held certificate's event (it still waits: the next run sends it)."""


class Intake:
    """The stack's intake queue: a held certificate's registration event, sent again so it is decided at once.
    `event(certificate_id, ca_certificate_id)` builds the event's JSON (`RegistrationEvent.payload`)."""

    def __init__(self, queue_url: str, client: Any, event: Callable[[str, str], Mapping[str, Any]]) -> None:
        self.queue_url = queue_url
        self.client = client
        self.event = event

    def send(self, waiting: Waiting) -> None:
        body = json.dumps(self.event(waiting.certificate_id, waiting.ca_certificate_id), separators=(",", ":"))
        try:
            self.client.send_message(QueueUrl=self.queue_url, MessageBody=body)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise RequeueFailed(
                f"SendMessage to {self.queue_url}: {error.get('Code')}: {error.get('Message')}"
            ) from exc
        except BotoCoreError as exc:
            raise RequeueFailed(f"SendMessage to {self.queue_url}: {exc}") from exc


@dataclass
class ImportReport:
    """What an import did: every row is imported, skipped (already ENROLLED or DISABLED) or refused (malformed: then
    nothing is imported). `error` says where a run stopped; running it again goes on from there."""

    manifest: str
    product: str
    rows: int
    imported: int = 0
    skipped: int = 0
    refused: int = 0
    requeued: int = 0
    problems: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "product": self.product,
            "rows": self.rows,
            "imported": self.imported,
            "skipped": self.skipped,
            "refused": self.refused,
            "requeued": self.requeued,
            "problems": list(self.problems),
            **({"error": self.error} if self.error else {}),
        }


def import_manifest(
    enrollments: Enrollments,
    product: str,
    manifest: Manifest,
    *,
    intake: Intake | None = None,
    pacer: Pacer | None = None,
    imported_at: str | None = None,
) -> ImportReport:
    """Enroll every row of a checked manifest, one conditional write each at the pacer's rate (idempotent: a row
    already ENROLLED or DISABLED is skipped, a disabled device stays disabled). The certificates held for an identity
    now enrolled are sent to the intake again. Stops at the first failed write (`error`): the next run resumes."""
    report = ImportReport(manifest.name, product, manifest.total, problems=manifest.problems)
    if manifest.problems:
        report.refused = len(manifest.problems)
        return report
    imported_at = imported_at or now()
    for row in manifest.rows:
        if pacer is not None:
            pacer.wait()
        try:
            written, enrollment = enrollments.enroll(product, manifest.by, row, manifest.name, imported_at)
        except EnrollmentUnavailable as exc:
            report.error = f"stopped at line {row.line}: {exc}"
            return report
        report.imported += written
        report.skipped += not written
        if intake is not None and enrollment.status == Status.ENROLLED:
            try:
                report.requeued += _requeue(intake, enrollment)
            except RequeueFailed as exc:
                report.error = f"line {row.line}: {exc}"
    return report


def _requeue(intake: Intake, enrollment: Enrollment) -> int:
    for waiting in enrollment.waiting:
        intake.send(waiting)
    return len(enrollment.waiting)


ISSUER_HOLD = x509.ReasonFlags.certificate_hold.value  # the reason the revocation sync records for a hold


class Action(StrEnum):
    """What `disable` or `enable` did to the certificate provisioned for the device."""

    QUARANTINED = "QUARANTINED"  # set INACTIVE by jitr
    RELEASED = "RELEASED"  # set ACTIVE again by jitr


@dataclass
class Change:
    """What `disable` or `enable` did: the enrollment after, and the provisioned certificate's fate."""

    enrollment: Enrollment
    certificate_id: str | None = None
    ca_certificate_id: str | None = None
    certificate_status: str | None = None  # as found (None: no certificate, or AWS IoT no longer has it)
    action: Action | None = None
    requeued: int = 0
    issuer_hold: bool = False  # `enable` left it INACTIVE: its issuer holds it, and the sync releases it

    def to_dict(self) -> dict[str, Any]:
        return {
            "enrollment": self.enrollment.to_dict(),
            "certificateId": self.certificate_id,
            "caCertificateId": self.ca_certificate_id,
            "certificateStatus": self.certificate_status,
            "action": self.action and str(self.action),
            "requeued": self.requeued,
            "issuerHold": self.issuer_hold,
        }


def _status(enrollments: Enrollments, product: str, by: str, value: str, status: Status) -> Enrollment:
    enrollment = enrollments.set_status(product, by, value, status)
    if enrollment is None:
        raise NotEnrolled(f"{by} {value} is not enrolled in product {product} (import its manifest first)")
    return enrollment


def _provisioned(iot: IoT, enrollment: Enrollment, change: Change) -> CertificateRecord | None:
    """The provisioned certificate as AWS IoT has it (None: none was provisioned, or AWS IoT has it no more)."""
    if not enrollment.provisioned_certificate_id:
        return None
    change.certificate_id = enrollment.provisioned_certificate_id
    try:
        record = iot.describe_certificate(enrollment.provisioned_certificate_id)
    except NotFound:
        return None
    change.ca_certificate_id, change.certificate_status = record.ca_certificate_id, record.status
    return record


def _issuer_holds(index: RevocationIndex, record: CertificateRecord) -> bool:
    """Whether the certificate's issuer holds it: its serial is among the held ones the last sync read on its CA's
    CRL. If so, the hold is recorded as the sync's own, so the sync sets it ACTIVE once the issuer lifts it (the sync
    does not hold a certificate that was INACTIVE already, as a quarantined one is). Raises `IndexUnavailable`."""
    if record.ca_certificate_id is None:
        return False
    state = index.sync_state(record.ca_certificate_id) or {}
    serial = f"{x509.load_pem_x509_certificate(record.pem.encode()).serial_number:x}"
    if serial not in set(state.get("heldSerials", ())):
        return False
    index.mark_synced(record.ca_certificate_id, serial, "INACTIVE", reason=ISSUER_HOLD, source="jitr enroll enable")
    return True


def disable(enrollments: Enrollments, iot: IoT, product: str, by: str, value: str) -> Change:
    """Disable an enrolled device: it is refused while disabled, and the certificate provisioned for it, if ACTIVE, is
    set INACTIVE (a quarantine `enable` lifts). Recorded before it is done, so an interrupted run is finished by the
    next. Raises `NotEnrolled`, `EnrollmentUnavailable`, or `IoTError`."""
    enrollment = _status(enrollments, product, by, value, Status.DISABLED)
    change = Change(enrollment)
    record = _provisioned(iot, enrollment, change)
    if record is not None and record.status == "ACTIVE":
        enrollments.set_quarantined(product, by, value, True)
        iot.update_certificate(enrollment.provisioned_certificate_id or "", "INACTIVE")
        change.action = Action.QUARANTINED
    return change


def enable(
    enrollments: Enrollments,
    iot: IoT,
    product: str,
    by: str,
    value: str,
    intake: Intake | None,
    index: RevocationIndex | None = None,
) -> Change:
    """Enable a device: ENROLLED again; a certificate jitr quarantined is set ACTIVE again if it is still INACTIVE
    (never one REVOKED, never one jitr did not set INACTIVE); the certificates held while it was disabled are sent to
    the intake again. With `index` (the decision table's revocation index, where the stack syncs CRLs), a certificate
    its issuer holds stays INACTIVE, handed to the sync, which sets it ACTIVE when the hold is lifted. Raises
    `NotEnrolled`, `EnrollmentUnavailable`, `IoTError`, `IndexUnavailable` or `RequeueFailed`."""
    enrollment = _status(enrollments, product, by, value, Status.ENROLLED)
    change = Change(enrollment)
    if enrollment.quarantined:
        record = _provisioned(iot, enrollment, change)
        if record is not None and record.status == "INACTIVE":
            if index is not None and _issuer_holds(index, record):
                change.issuer_hold = True
            else:
                iot.update_certificate(record.certificate_id, "ACTIVE")
                change.action = Action.RELEASED
        enrollments.set_quarantined(product, by, value, False)
    if intake is not None:
        change.requeued = _requeue(intake, enrollment)
    return change
