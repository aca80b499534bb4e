"""Keep AWS IoT in step with the issuer: read each configured CA's current CRL and set every certificate registered in
AWS IoT that it lists to REVOKED (a hold: INACTIVE, and ACTIVE again once the issuer releases it).

The certificates are found through the serial index (`revocation_index`), never by a DescribeCertificate per
registered device. UpdateCertificate is paced to the sync's share of its quota (the handler uses the rest). A CRL
whose number the last complete sync already read is not read again. A run that runs short of time stops and leaves
the rest to the next (an item is marked once its certificate is updated, so nothing is done twice). A revoked
device's thing is left in place: a replacement certificate may take it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509

from .certificates import BadCertificate, load_certificate
from .enrollment import Enrollments, EnrollmentUnavailable, identity
from .enrollment import Status as EnrollmentStatus
from .iot import CertificateRecord, IoT, IoTError, NotFound, Retryable
from .pacing import Pacer
from .products import candidates, needs_subject, select
from .revocation import IndexedCrl, UnusableCrl
from .revocation_index import IndexUnavailable, RevocationIndex
from .revocation_sources import CrlSources, SourceUnavailable
from .settings import RevocationSource, Settings

TIME_MARGIN_S = 30.0  # stop acting when less than this is left of the run
HOLD = x509.ReasonFlags.certificate_hold.value


@dataclass
class CaSync:
    """What one CA's sync found and did."""

    ca_id: str
    source: str = ""
    crl_number: int | None = None
    listed: int = 0  # entries in the CRL
    registered: int = 0  # of those, certificates the index knows
    revoked: list[str] = field(default_factory=list)  # certificate ids set REVOKED by this run
    held: list[str] = field(default_factory=list)  # set INACTIVE (certificateHold)
    released: list[str] = field(default_factory=list)  # ACTIVE again (the hold was lifted)
    unchanged: bool = False  # the CRL's number was read completely before: nothing new
    complete: bool = True
    error: str | None = None
    note: str | None = None  # why nothing was read, when that is as configured (a CA with no CRL URL)
    held_serials: set[str] | None = None  # registered certificates the CRL holds (kept in the state for releases)
    # certificate id -> (serial, notAfter) of each certificate acted on (what its decision event says)
    facts: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    unpublished: str | None = None  # why the events of what it did were not published

    def to_dict(self) -> dict[str, Any]:
        return {
            "caCertificateId": self.ca_id,
            "source": self.source,
            "crlNumber": self.crl_number,
            "listed": self.listed,
            "registered": self.registered,
            "revoked": self.revoked,
            "held": self.held,
            "released": self.released,
            "unchanged": self.unchanged,
            "complete": self.complete,
            "error": self.error,
            "note": self.note,
            **({"eventsNotPublished": self.unpublished} if self.unpublished else {}),
        }


@dataclass
class SyncReport:
    cas: list[CaSync] = field(default_factory=list)

    @property
    def failed(self) -> list[CaSync]:
        return [ca for ca in self.cas if ca.error]

    def to_dict(self) -> dict[str, Any]:
        return {"cas": [ca.to_dict() for ca in self.cas]}


@dataclass
class _Run:
    settings: Settings
    iot: IoT
    index: RevocationIndex
    crls: CrlSources
    at: datetime
    time_left_s: Callable[[], float]
    pacer: Pacer | None
    enrollments: Enrollments | None = None  # the stack's enrollment table, when a product requires enrollment

    def _pace(self) -> None:
        if self.pacer is not None:
            self.pacer.wait()

    def short_of_time(self) -> bool:
        return self.time_left_s() < TIME_MARGIN_S


def sync(
    settings: Settings,
    iot: IoT,
    index: RevocationIndex,
    crls: CrlSources,
    *,
    at: datetime | None = None,
    time_left_s: Callable[[], float] = lambda: math.inf,
    update_tps: float | None = None,
    enrollments: Enrollments | None = None,
) -> SyncReport:
    """Sync every CA `settings.revocation` configures; a CA that fails is reported and the others go on. With
    `enrollments`, a hold lifted from a device an operator disabled leaves it INACTIVE, as the disable's quarantine."""
    pacer = Pacer(update_tps) if update_tps else None
    run = _Run(settings, iot, index, crls, at or datetime.now(UTC), time_left_s, pacer, enrollments)
    report = SyncReport()
    for ca_id, source in settings.revocation.items():
        if not source.crl:  # OCSP or certificates' own distribution points: asked per certificate, nothing to list
            report.cas.append(CaSync(ca_id, note="no CRL URL is configured for this CA: nothing to sync"))
            continue
        if run.short_of_time():
            report.cas.append(CaSync(ca_id, complete=False, error="the run ran out of time before this CA"))
            continue
        report.cas.append(_sync_ca(run, ca_id, source))
    return report


def _sync_ca(run: _Run, ca_id: str, source: RevocationSource) -> CaSync:
    result = CaSync(ca_id)
    try:
        state = run.index.sync_state(ca_id) or {}
    except IndexUnavailable as exc:
        result.error, result.complete = str(exc), False
        return result  # nothing can be recorded either: the next run tries again
    try:
        issuer = _issuer(run.iot, ca_id)
        crl = _current_crl(run, issuer, source, result)
    except (SourceUnavailable, UnusableCrl, IoTError, BadCertificate) as exc:
        result.error = str(exc)
        result.complete = False
        _save(run, result, state)
        return result
    result.source, result.crl_number, result.listed = crl.source, crl.number, len(crl)
    if crl.number is not None and state.get("crlNumber") == crl.number and "lastError" not in state:
        result.unchanged = True
        _save(run, result, state, crl)
        return result
    try:
        _act(run, ca_id, crl, result, set(state.get("heldSerials", [])))
    except (IoTError, BadCertificate, IndexUnavailable, EnrollmentUnavailable) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        result.complete = False
    _save(run, result, state, crl)
    return result


def _issuer(iot: IoT, ca_id: str) -> x509.Certificate:
    try:
        return load_certificate(iot.describe_ca_certificate(ca_id).pem)
    except NotFound:
        raise SourceUnavailable(
            f"CA {ca_id} is not registered in AWS IoT: only a registered CA's device certificates are synced"
        ) from None


def _current_crl(run: _Run, issuer: x509.Certificate, source: RevocationSource, result: CaSync) -> IndexedCrl:
    """The first configured CRL that is usable and current now."""
    grace = timedelta(seconds=source.grace_seconds)
    skew = timedelta(seconds=run.settings.clock_skew_seconds)
    causes: list[str] = []
    for url in source.crl:
        try:
            crl = run.crls.crl(url, issuer, source)
        except (SourceUnavailable, UnusableCrl) as exc:
            causes.append(f"{url}: {exc}")
            continue
        if crl.this_update > run.at + skew:
            causes.append(f"{url}: its thisUpdate is in the future")
        elif crl.next_update is None or crl.next_update + grace < run.at:
            causes.append(f"{url}: it is stale (nextUpdate plus the grace has passed)")
        else:
            return crl
    raise SourceUnavailable("; ".join(causes))


def _act(run: _Run, ca_id: str, crl: IndexedCrl, result: CaSync, held_before: set[str]) -> None:
    revoked: dict[str, tuple[str, str]] = {}  # serial -> (reason, revocation date)
    held: set[str] = set()
    for number in crl.positions:
        entry = crl.entry(number)
        if entry is None or entry.problem:
            continue  # an entry jitr cannot read decides nothing
        key = f"{number:x}"
        if entry.reason == HOLD:
            held.add(key)
        else:
            revoked[key] = (entry.reason, entry.revoked_at.isoformat(timespec="seconds"))
    released = held_before - held - set(revoked)
    known = run.index.lookup(ca_id, [*revoked, *held, *released])
    result.registered = len(known.keys() & (revoked.keys() | held))
    result.facts = {item["certificateId"]: (serial, item.get("notAfter")) for serial, item in known.items()}
    for serial, (reason, when) in sorted(revoked.items()):
        item = known.get(serial)
        if item and item.get("syncedStatus") != "REVOKED" and _may_act(run, result):
            _set(run, ca_id, serial, item, "REVOKED", reason, crl.source, when)
            result.revoked.append(item["certificateId"])
    for serial in sorted(held):
        item = known.get(serial)
        if (
            item
            and item.get("syncedStatus") is None
            and _may_act(run, result)
            and _hold(run, ca_id, serial, item, crl.source)
        ):
            result.held.append(item["certificateId"])
    for serial in sorted(released):
        item = known.get(serial)
        if (
            item
            and item.get("syncedStatus") == "INACTIVE"
            and _may_act(run, result)
            and _release(run, ca_id, serial, item)
        ):
            result.released.append(item["certificateId"])
    result.held_serials = {serial for serial in held if serial in known}


def _may_act(run: _Run, result: CaSync) -> bool:
    if run.short_of_time():
        result.complete = False
        return False
    return True


def _set(
    run: _Run, ca_id: str, serial: str, item: dict[str, Any], status: str, reason: str, source: str, when: str
) -> None:
    """UpdateCertificate to `status`; a certificate deleted meanwhile, or already there, is done."""
    run._pace()
    try:
        run.iot.update_certificate(item["certificateId"], status)
    except NotFound:
        pass
    except Retryable:
        raise
    except IoTError:
        if run.iot.describe_certificate(item["certificateId"]).status != status:
            raise
    run.index.mark_synced(ca_id, serial, status, reason=reason, source=source, revoked_at=when)


def _hold(run: _Run, ca_id: str, serial: str, item: dict[str, Any], source: str) -> bool:
    """A hold suspends only a certificate that is ACTIVE (never one an operator set otherwise): INACTIVE."""
    try:
        status = run.iot.describe_certificate(item["certificateId"]).status
    except NotFound:
        return False
    if status != "ACTIVE":
        return False
    _set(run, ca_id, serial, item, "INACTIVE", HOLD, source, "")
    return True


def _release(run: _Run, ca_id: str, serial: str, item: dict[str, Any]) -> bool:
    """A hold lifted: ACTIVE again, only if it is still the INACTIVE the hold left, and its device is not disabled
    (then the disable's quarantine keeps it INACTIVE, and `jitr enroll enable` releases it)."""
    try:
        record = run.iot.describe_certificate(item["certificateId"])
    except NotFound:
        record = None
    released = record is not None and record.status == "INACTIVE" and not _quarantined(run, ca_id, record)
    if released:
        run._pace()
        run.iot.update_certificate(item["certificateId"], "ACTIVE")
    run.index.mark_synced(ca_id, serial, None)
    return released


def _quarantined(run: _Run, ca_id: str, record: CertificateRecord) -> bool:
    """Whether the certificate's device is disabled in its product's enrollment; if so, its quarantine is recorded
    (what `jitr enroll enable` lifts). Raises `EnrollmentUnavailable`: the CA's run fails, the next one releases."""
    if run.enrollments is None or not any(p.enrollment for p in run.settings.product_lines):
        return False
    leaf = load_certificate(record.pem)
    serving = candidates(run.settings.product_lines, ca_id)
    product = select(serving, ca_id, leaf.subject if needs_subject(serving) else None).product
    if product is None or product.enrollment is None:
        return False
    value = identity(leaf, product.enrollment.by)
    if value is None:
        return False
    enrollment = run.enrollments.look_up(product.name, product.enrollment.by, value)
    if enrollment.status != EnrollmentStatus.DISABLED:
        return False
    if enrollment.provisioned_certificate_id != record.certificate_id:  # what `enable` sets ACTIVE again
        run.enrollments.provisioned(product.name, product.enrollment.by, value, record.certificate_id)
    run.enrollments.set_quarantined(product.name, product.enrollment.by, value, True)
    return True


def _save(run: _Run, result: CaSync, state: dict[str, Any], crl: IndexedCrl | None = None) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    held = result.held_serials
    new_state: dict[str, Any] = {
        "lastSyncAt": now,
        "lastSource": result.source or state.get("lastSource"),
        # a CRL number counts as read only once a run went through it completely and without error
        "crlNumber": result.crl_number if result.complete and not result.error else state.get("crlNumber"),
        "crlThisUpdate": crl.this_update.isoformat() if crl else state.get("crlThisUpdate"),
        "crlNextUpdate": crl.next_update.isoformat() if crl and crl.next_update else state.get("crlNextUpdate"),
        "listed": result.listed if crl else state.get("listed"),
        "revokedLastRun": len(result.revoked),
        "revokedTotal": int(state.get("revokedTotal", 0)) + len(result.revoked),
        "heldSerials": held if held is not None else set(state.get("heldSerials", [])),
    }
    if result.error:
        new_state["lastError"] = result.error
        new_state["lastErrorAt"] = now
    run.index.put_sync_state(result.ca_id, new_state)


@dataclass
class Backfill:
    ca_id: str
    indexed: int = 0  # certificates recorded in the index by this run
    skipped: int = 0  # certificates that are not ACTIVE or INACTIVE (pending, revoked, ...), or unreadable
    complete: bool = False  # the CA's whole listing was read (the next backfill starts again from the top)

    def to_dict(self) -> dict[str, Any]:
        return {
            "caCertificateId": self.ca_id,
            "indexed": self.indexed,
            "skipped": self.skipped,
            "complete": self.complete,
        }


def backfill(
    iot: IoT,
    index: RevocationIndex,
    ca_id: str,
    *,
    time_left_s: Callable[[], float] = lambda: math.inf,
    describe_tps: float | None = 2.0,
) -> Backfill:
    """Record in the index the certificates of `ca_id` decided before the index existed (or provisioned in `jitp`
    mode): ListCertificatesByCA, then a DescribeCertificate (paced to `describe_tps`) for each ACTIVE or INACTIVE one.
    Resumable: the listing's marker is kept after every page, so an interrupted backfill goes on where it stopped."""
    pacer = Pacer(describe_tps) if describe_tps else None
    marker, indexed = index.backfill_marker(ca_id)
    result = Backfill(ca_id)
    while time_left_s() > TIME_MARGIN_S:
        ids, next_marker = iot.certificates_by_ca(ca_id, marker)
        for certificate_id in ids:
            if pacer is not None:
                pacer.wait()
            if _index_one(iot, index, ca_id, certificate_id):
                result.indexed += 1
            else:
                result.skipped += 1
        marker = next_marker
        index.put_backfill_marker(ca_id, marker, indexed + result.indexed)
        if not marker:
            result.complete = True
            break
    return result


def _index_one(iot: IoT, index: RevocationIndex, ca_id: str, certificate_id: str) -> bool:
    try:
        record = iot.describe_certificate(certificate_id)
    except NotFound:
        return False
    if record.status not in ("ACTIVE", "INACTIVE"):
        return False
    try:
        certificate = load_certificate(record.pem)
    except BadCertificate:
        return False
    index.record(ca_id, f"{certificate.serial_number:x}", certificate_id, certificate.not_valid_after_utc)
    return True
