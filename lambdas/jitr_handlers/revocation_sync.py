"""The revocation sync: a scheduled function that reads each configured CA's current CRL and sets every certificate
registered in AWS IoT that it lists to REVOKED (a hold: INACTIVE until the issuer lifts it). See `jitr.revocation_sync`.

Its settings are the handler's (`JITR_REVOCATION`, `JITR_DECISION_TABLE`, `JITR_SYNC_UPDATE_TPS`, ...), read with the
same model. Metrics per CA (dimension `CA`): `RevocationsFound` (entries of registered certificates the CRL lists),
`RevocationSourceUnusable` and `RevocationSyncFailed`; and `CertificatesRevokedBySync`, `CertificatesHeldBySync`,
`CertificatesReleasedBySync`. Each has an alarm in the stack.

With `JITR_EVENT_BUS`, what a run did to each certificate is published as a decision event once it is done in AWS IoT
and recorded in the index ("Certificate Revoked By Issuer", "... Held ...", "... Released ..."). EventBridge is asked
with botocore's retries; a CA whose events still are not taken is counted (`DecisionEventsFailed`, alarmed) and its
certificates named in the log: the change stands, and `jitr explain` shows it.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from jitr.enrollment import Enrollments
from jitr.events import EventBus, NotPublished, issuer_entries
from jitr.iot import IoT, client_config
from jitr.revocation_index import RevocationIndex
from jitr.revocation_sources import CrlSources
from jitr.revocation_sync import CaSync, SyncReport, sync
from jitr.settings import Settings

from .observability import NAMESPACE, SERVICE, logger, metrics, tracer


def run(settings: Settings, *, time_left_s: Any = None) -> SyncReport:
    """One sync with clients made from the settings (the scheduled function and `jitr revocation sync`)."""
    if not settings.decision_table:
        raise ValueError(f"the revocation sync needs the decision table ({Settings.variable('decision_table')})")
    config = client_config(settings.max_attempts)
    session = boto3.session.Session()
    iot = IoT(session.client("iot", config=config, endpoint_url=settings.endpoint_url), template_ttl_s=0)
    dynamodb = session.client("dynamodb", config=config, endpoint_url=settings.endpoint_url)
    crls = CrlSources(  # a fresh cache each run: the sync reads the CRL as published now
        loopback_ok=settings.revocation_allow_loopback,
        s3_client=lambda: session.client("s3", config=config),
    )
    options = {"time_left_s": time_left_s} if time_left_s else {}
    report = sync(
        settings,
        iot,
        RevocationIndex(settings.decision_table, dynamodb),
        crls,
        update_tps=settings.sync_update_tps,
        enrollments=Enrollments(settings.enrollment_table, dynamodb) if settings.enrollment_table else None,
        **options,
    )
    if settings.event_bus:
        publish(report, settings)
    return report


def publish(report: SyncReport, settings: Settings) -> None:
    """Each CA's changes as decision events; a CA whose events EventBridge does not take says why (`unpublished`)."""
    bus = EventBus.connect(settings)
    for ca in report.cas:
        done = (("revoked", ca.revoked), ("held", ca.held), ("released", ca.released))
        entries = [
            entry
            for action, certificates in done
            for entry in issuer_entries(
                action,
                ca.ca_id,
                [(c, *ca.facts.get(c, (None, None))) for c in certificates],
                stack=SERVICE,
                source=ca.source,
            )
        ]
        if not entries:
            continue
        try:
            bus.put(entries)
        except NotPublished as exc:
            ca.unpublished = str(exc)


def record(report: SyncReport) -> None:
    """The metrics and one log line per CA: ids, counts and causes, never a CRL or a PEM."""
    for ca in report.cas:
        _per_ca(ca)
        metrics.add_metric(name="CertificatesRevokedBySync", unit=MetricUnit.Count, value=len(ca.revoked))
        metrics.add_metric(name="CertificatesHeldBySync", unit=MetricUnit.Count, value=len(ca.held))
        metrics.add_metric(name="CertificatesReleasedBySync", unit=MetricUnit.Count, value=len(ca.released))
        if ca.unpublished:
            metrics.add_metric(name="DecisionEventsFailed", unit=MetricUnit.Count, value=1)
        level = logger.warning if ca.error or ca.revoked or ca.held or ca.unpublished else logger.info
        level("revocation sync", extra=ca.to_dict())


def _per_ca(ca: CaSync) -> None:
    for name, value in (
        ("RevocationsFound", ca.registered),
        ("RevocationSourceUnusable", int(bool(ca.error) and not ca.source)),
        ("RevocationSyncFailed", int(bool(ca.error))),
    ):
        with single_metric(
            name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE, default_dimensions={"service": SERVICE}
        ) as metric:
            metric.add_dimension(name="CA", value=ca.ca_id)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """One scheduled run. A CA that fails is counted (alarm `RevocationSyncFailed`) and the others go on; raising (a
    setting is wrong) fails the invocation, and EventBridge tries it up to twice more."""
    report = run(Settings.from_environment(), time_left_s=lambda: context.get_remaining_time_in_millis() / 1000)
    record(report)
    return report.to_dict()
