"""The sweeper over a large CA: how many runs until every lost device is swept, and what a run costs.

A CA of 200,000 certificates on the embedded IoT (real certificates, each with its own key, loaded into the backend
with their creation dates, a minute apart), of which `LOST` are pending with their events lost, spread evenly through
the listing, and every `ON_PURPOSE_EVERY`-th is pending on purpose: refused with a rejection action of NONE, its
decision in the decision table (moto's DynamoDB, written through the handler's own Powertools record). One more lost
device registers between the second and third runs, while a pass is under way, as late as the bound allows.

The runs follow the deployed stack's figures (`jitr_cdk.sweeper`: a 300 s timeout, 2 pages per second; every 15 minutes)
on a clock of their own: each page takes the pacing interval (0.5 s) off the invocation's remaining time, so a run
lists what it would on AWS, and `now` moves on 15 minutes a run. Between runs the real registration handler decides
the events the run put on the queue, as the intake would. Measured here: the runs until every lost device was swept
(against the stated bound), and each run's real time on this machine, which is jitr's own work per page plus moto's
(no pacing is waited for).
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from jitr.outcomes import Outcome, Reason
from jitr.provisioning import Decision, RegistrationEvent
from jitr_cdk.sweeper import LIST_TPS, TIMEOUT_S
from jitr_config.model import DEFAULTS
from jitr_handlers.once import DecideOnce
from jitr_handlers.sweeper import LISTING_MARGIN_S, PAGE_SIZE, SweepClients, SweepSettings, sweep
from jitr_tools import embedded, pki
from jitr_tools.embedded import EmbeddedIoT
from jitr_tools.rehearsing.lambda_context import LambdaContext
from jitr_tools.rehearsing.rehearsal import create_decision_table, handler_environment, prepare_account

CERTIFICATES = 200_000
LOST = 20
ON_PURPOSE_EVERY = 10  # 10 % of the fleet pending on purpose: 20,000 of 200,000
INTERVAL = timedelta(minutes=DEFAULTS["sweepIntervalMinutes"])
MIN_AGE = timedelta(minutes=DEFAULTS["sweepMinAgeMinutes"])
MAX_RUNS = 10
ACCOUNT = embedded.DEFAULT_ACCOUNT
REGION = embedded.DEFAULT_REGION


def run(certificates: int = CERTIFICATES) -> dict[str, Any]:
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION})
    with embedded.mock(), handler_environment(REGION, io.StringIO(), function_name="jitr-sweep-bench") as handlers:
        iot = EmbeddedIoT()
        clients = SweepClients(*(boto3.client(n, region_name=REGION) for n in ("iot", "sqs", "dynamodb")))
        table = create_decision_table(clients.dynamodb)
        ca = pki.make_ca("sweep benchmark CA")
        ca_id = prepare_account(clients.iot, ca, ACCOUNT)
        started = time.monotonic()
        start = datetime.now(UTC)
        lost, on_purpose = _load_fleet(iot, ca, ca_id, certificates, start - timedelta(days=1))
        loaded_s = time.monotonic() - started
        _decide_refused(on_purpose, ca_id, table, clients.dynamodb)
        setup_s = time.monotonic() - started
        queue_url = clients.sqs.create_queue(QueueName="jitr-intake")["QueueUrl"]
        settings = SweepSettings(
            (ca_id,), queue_url, table, MIN_AGE.total_seconds(), DEFAULTS["sweepMaxPerRun"], list_tps=1e9
        )
        decide = handlers()
        late_created = start + INTERVAL + timedelta(minutes=1)  # after the second run: the pass is under way
        runs, swept_at = _runs(iot, clients, settings, decide, start, late_created, ca, ca_id, set(lost))
    capacity = math.floor((TIMEOUT_S - LISTING_MARGIN_S) * LIST_TPS) * PAGE_SIZE
    late_stale_run = math.ceil((late_created + MIN_AGE - start) / INTERVAL)
    late = swept_at.pop("late", None)
    return {
        "certificates": certificates,
        "lost": LOST + 1,
        "pending_on_purpose": len(on_purpose),
        "per_run_capacity": capacity,
        "bound_runs": math.ceil(certificates / capacity) + 1,
        "runs_until_spread_lost_swept": max(swept_at.values(), default=-1) + 1 if len(swept_at) == LOST else None,
        "late_runs_after_stale": None if late is None else late - late_stale_run + 1,
        "runs": runs,
        "sent_not_lost": sum(r["swept"] for r in runs) - LOST - (late is not None),
        "run_s_max": max(r["seconds"] for r in runs),
        "ms_per_page": round(1000 * sum(r["seconds"] for r in runs) / max(1, sum(r["pages"] for r in runs)), 1),
        "load_s": round(loaded_s, 1),
        "setup_s": round(setup_s, 1),
    }


def _load_fleet(
    iot: EmbeddedIoT, ca: pki.Issued, ca_id: str, count: int, newest: datetime
) -> tuple[list[str], list[str]]:
    """The CA's fleet, newest first a minute apart; returns the lost and the pending-on-purpose certificates' ids."""
    lost_at = {count * i // LOST + count // (2 * LOST) + 1 for i in range(LOST)}  # evenly spread, never on purpose

    def status(i: int) -> str:
        return "PENDING_ACTIVATION" if i in lost_at or i % ON_PURPOSE_EVERY == 0 else "ACTIVE"

    def fleet() -> Iterator[tuple[str, str, datetime]]:
        for i in range(count):
            yield pki.make_device(ca, f"sensor-{i}").pem, status(i), newest - timedelta(minutes=i)

    ids = iot.load_certificates(ca_id, fleet())
    return [ids[i] for i in sorted(lost_at)], [ids[i] for i in range(0, count, ON_PURPOSE_EVERY) if i not in lost_at]


def _decide_refused(certificate_ids: list[str], ca_id: str, table: str, dynamodb: Any) -> None:
    """Each one's decision as the handler records it for a refusal with a rejection action of NONE."""

    def refuse(event: RegistrationEvent) -> Decision:
        return Decision(
            Outcome.REJECTED, event.certificate_id, ca_id, Reason.VALIDITY_TOO_LONG, "refused; left pending (NONE)"
        )

    once = DecideOnce(refuse, table_name=table, retention_days=30, dynamodb_client=dynamodb)
    once.register_lambda_context(LambdaContext())  # type: ignore[arg-type]  # the stand-in has what Powertools reads
    for certificate_id in certificate_ids:
        once(RegistrationEvent.model_validate(RegistrationEvent.payload(certificate_id, ca_id, ACCOUNT)))


def _runs(
    iot: EmbeddedIoT,
    clients: SweepClients,
    settings: SweepSettings,
    decide: Any,
    start: datetime,
    late_created: datetime,
    ca: pki.Issued,
    ca_id: str,
    lost: set[str],
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Run the sweeper every interval until every lost device was swept; the handler decides what each run sent."""
    runs: list[dict[str, Any]] = []
    swept_at: dict[str, int] = {}
    late: str | None = None
    for number in range(MAX_RUNS):
        now = start + number * INTERVAL
        if late is None and now >= late_created:
            late = iot.load_certificates(
                ca_id, [(pki.make_device(ca, "late").pem, "PENDING_ACTIVATION", late_created)]
            )[0]
        listed_before = iot.state.calls["ListCertificatesByCA"]
        began = time.monotonic()
        result = sweep(settings, clients, ACCOUNT, now=now, time_left_s=_paced_invocation(iot))
        seconds = time.monotonic() - began
        for event in _drain(clients.sqs, settings.queue_url):
            decide(event)
            key = "late" if event["certificateId"] == late else event["certificateId"]
            if key == "late" or key in lost:
                swept_at.setdefault(key, number)
        runs.append(
            {
                **result.to_dict(),
                "pages": iot.state.calls["ListCertificatesByCA"] - listed_before,
                "seconds": round(seconds, 1),
            }
        )
        if len(swept_at) == len(lost) + 1:
            break
    return runs, swept_at


def _paced_invocation(iot: EmbeddedIoT) -> Callable[[], float]:
    """The invocation's remaining seconds if each page took the pacing interval, as on AWS, from now."""
    listed_before = iot.state.calls["ListCertificatesByCA"]
    return lambda: TIMEOUT_S - (iot.state.calls["ListCertificatesByCA"] - listed_before) / LIST_TPS


def _drain(sqs: Any, url: str) -> Iterator[dict[str, Any]]:
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            yield json.loads(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


if __name__ == "__main__":
    import sys

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else CERTIFICATES), indent=2))
