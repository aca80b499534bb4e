"""`jitr simulate`: a fleet's first connects on the embedded AWS IoT, wired as the stack wires them (or naively, for
comparison: see `jitr_tools.wiring`), deciding with the real handler. Devices reconnect with backoff while pending, so
duplicate events happen as on AWS. RegisterThing is held to `quota` calls per second by the embedded IoT
(ThrottlingException beyond). The summary is read from the account and from the decisions the handler reports.

Times are real, but the queue's visibility timeout and the devices' backoff are scaled down (seconds, not minutes) so a
rehearsal stays short; the handler, its retries (botocore's standard mode) and the IoT's checks are unchanged.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import json
import random
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from jitr.outcomes import Outcome
from jitr.pacing import AWS_DEFAULT_TPS, max_concurrency
from jitr.provisioning import Decision

from . import embedded, pki
from .embedded import EmbeddedIoT
from .embedded.iot import Connect
from .rehearsal import create_decision_table, handler_environment, prepare_account
from .wiring import DirectWiring, QueueWiring, Wiring, WiringStats

NAIVE_CONCURRENCY = 100  # rule -> Lambda: as many concurrent invocations as events arrive, up to this many threads


# -- decisions, as the handler makes them ------------------------------------------------------------------------------


class DecisionRecorder:
    """Every decision the handler makes (its `on_decision` hook), as the fields of its log line."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.lock = threading.Lock()
        self.decisions: list[dict[str, Any]] = []
        self.provisioned_at: list[float] = []

    def __call__(self, decision: Decision) -> None:
        with self.lock:
            self.decisions.append(decision.to_dict())
            if decision.outcome == Outcome.PROVISIONED:
                self.provisioned_at.append(time.monotonic() - self.started)


class _Discard(io.StringIO):
    """Where the handler's log lines go during a rehearsal: the decisions arrive through the hook."""

    def write(self, text: str) -> int:
        return len(text)


# -- the rehearsal ----------------------------------------------------------------------------------------------------


@dataclass
class Options:
    devices: int = 60
    invalid_fraction: float = 0.2
    reconnects: int = 2
    quota: float = 20.0  # RegisterThing calls per second (AWS's default is 10)
    seed: int | None = None
    wiring: str = "queue"  # "queue" (the stack) or "direct" (naive: rule -> Lambda, no queue)
    batch_size: int = 10
    max_receive_count: int = 5
    visibility_timeout_s: float = 30.0  # 6 x 5 s: a paced batch of 10 takes about 5 s (see jitr.pacing)
    concurrency: int | None = None  # default: the stack's ceil(quota x 0.5), at least 2
    backoff_s: float = 0.5  # first reconnect delay; doubles, with jitter
    latency_ms: float = 0.0  # added to each RegisterThing (AWS's own time); 0 answers at once
    aws_quotas: bool = False  # enforce AWS's default quota of every operation, scaled as `quota` scales RegisterThing
    drain_timeout_s: float = 300.0
    defects: tuple[str, ...] = tuple(pki.DEFECTS)
    progress: bool = False


@dataclass
class Result:
    devices: int
    provisioned: int
    rejected: int
    rejected_by_reason: dict[str, int]
    refused_at_connect: int
    lost: int
    lost_devices: list[str]
    unexpected: list[str]
    events: int
    duplicates_absorbed: int
    register_calls: int
    throttles: int
    repeat_provisions: int  # RegisterThing succeeded again for a device already provisioned (same end state)
    dead_letters: int
    invocations: int
    invocation_errors: int
    dropped: int
    wall_s: float
    drain_s: float
    throughput_per_s: float
    quota: float
    concurrency: int
    wiring: str
    calls_by_operation: dict[str, int] = field(default_factory=dict)  # AWS IoT calls, RegisterThing's own included
    throttles_by_operation: dict[str, int] = field(default_factory=dict)
    unfinished: int = 0  # still pending in the queue when the drain timeout ended the rehearsal
    queue_drained: bool = True
    timeline: list[tuple[float, int]] = field(default_factory=list)

    @property
    def throughput_ratio(self) -> float:
        return self.throughput_per_s / self.quota if self.quota else 0.0

    def to_dict(self, timeline: bool = False) -> dict[str, Any]:
        data = asdict(self)
        data["throughput_ratio"] = round(self.throughput_ratio, 3)
        if not timeline:
            data.pop("timeline")
        return data


def mapping_concurrency(quota: float) -> int:
    # the stack's own rule, so the rehearsal paces as the deployment does
    return max_concurrency(max(1, round(quota)))


def simulate(options: Options) -> Result:
    """Run one rehearsal on a fresh embedded account. Everything the result says is read back from the IoT's state and
    the handler's log, not assumed."""
    import boto3

    rng = random.Random(options.seed)  # noqa: S311 (backoff jitter)
    ca = pki.make_ca("jitr simulation CA")
    fleet = pki.make_fleet(
        ca, options.devices, invalid_fraction=options.invalid_fraction, defects=options.defects, seed=options.seed
    )
    concurrency = options.concurrency or mapping_concurrency(options.quota)
    if options.wiring == "direct":
        concurrency = options.concurrency or NAIVE_CONCURRENCY
    with embedded.mock(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        iot = EmbeddedIoT()
        client = boto3.client("iot", region_name=iot.region)
        prepare_account(client, ca, iot.account_id)
        if options.aws_quotas:
            iot.apply_aws_quotas(options.quota / AWS_DEFAULT_TPS["RegisterThing"])
        else:
            iot.set_quota("RegisterThing", options.quota)
        if options.latency_ms:
            iot.set_latency("RegisterThing", options.latency_ms / 1000)

        started = time.monotonic()
        log = DecisionRecorder(started)
        # The handler's EMF metric lines go to standard output, as in Lambda; here they would bury the summary.
        with (
            handler_environment(
                iot.region,
                _Discard(),
                function_name="jitr-simulate",
                quota=None if options.wiring == "direct" else options.quota,
                concurrency=concurrency,
                on_decision=log,
                decision_table=create_decision_table(boto3.client("dynamodb", region_name=iot.region)),
            ) as new_environment,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            wiring: Wiring = (
                DirectWiring(new_environment, concurrency=concurrency)
                if options.wiring == "direct"
                else QueueWiring(
                    new_environment,
                    concurrency=concurrency,
                    batch_size=options.batch_size,
                    visibility_timeout_s=options.visibility_timeout_s,
                    max_receive_count=options.max_receive_count,
                )
            )
            events = Counter[str]()

            def rule(_topic: str, event: dict[str, Any]) -> None:  # the topic rule: SELECT * -> the target
                events[event["certificateId"]] += 1
                wiring.send(json.dumps(event))

            iot.subscribe("$aws/events/certificates/registered/+", rule)
            outcomes = _run_fleet(iot, fleet, options, rng, started, lambda: len(log.provisioned_at))
            connects_done = time.monotonic()
            deadline = connects_done + options.drain_timeout_s
            while time.monotonic() < deadline and wiring.busy:
                _progress(options, len(log.decisions), options.devices, started, wiring)
                time.sleep(0.05)
            drained = time.monotonic()
            wiring.stop()  # the batches in flight finish; what is still queued stays undecided
            queue_drained = not wiring.busy
            stats = wiring.stats()
        if options.progress:
            print(file=sys.stderr)
        return _account(
            iot, client, fleet, outcomes, events, log, options, concurrency, stats, started, drained, queue_drained
        )


def _run_fleet(
    iot: EmbeddedIoT,
    fleet: list[pki.FleetDevice],
    options: Options,
    rng: random.Random,
    started: float,
    provisioned: Callable[[], int],
) -> dict[str, str]:
    """Every device connects at once, then reconnects with exponential backoff and jitter while pending."""
    last: dict[str, str] = {}
    schedule: list[tuple[float, int, int]] = [(started, index, 0) for index in range(len(fleet))]
    heapq.heapify(schedule)
    shown = 0.0
    while schedule:
        due, index, attempt = heapq.heappop(schedule)
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        device = fleet[index]
        result = iot.connect(device.issued.pem, device.issued.chain_pem)
        last[device.name] = str(result.outcome)
        if result.outcome in (Connect.REGISTERED, Connect.PENDING) and attempt < options.reconnects:
            backoff = options.backoff_s * (2**attempt) * rng.uniform(0.5, 1.5)
            heapq.heappush(schedule, (time.monotonic() + backoff, index, attempt + 1))
        if options.progress and time.monotonic() - shown > 0.5:
            shown = time.monotonic()
            _bar(provisioned(), len(fleet), started, f"connects queued {len(schedule)}")
    return last


def _progress(options: Options, decided: int, total: int, started: float, wiring: Wiring) -> None:
    if options.progress:
        _bar(decided, total, started, f"queue {wiring.depth}")


def _bar(done: int, total: int, started: float, extra: str) -> None:
    width = 30
    filled = min(width, int(width * done / max(total, 1)))
    sys.stderr.write(
        f"\r[{'#' * filled}{' ' * (width - filled)}] {done}/{total} decided"
        f"  {extra}  {time.monotonic() - started:5.1f} s"
    )
    sys.stderr.flush()


def _account(
    iot: EmbeddedIoT,
    client: Any,
    fleet: list[pki.FleetDevice],
    outcomes: dict[str, str],
    events: Counter[str],
    log: DecisionRecorder,
    options: Options,
    concurrency: int,
    stats: WiringStats,
    started: float,
    drained: float,
    queue_drained: bool,
) -> Result:
    from jitr.certificates import certificate_id

    by_certificate: dict[str, list[dict[str, Any]]] = {}
    for decision in log.decisions:
        by_certificate.setdefault(str(decision.get("certificateId")), []).append(decision)
    statuses = {
        c["certificateId"]: c["status"]
        for page in client.get_paginator("list_certificates").paginate(pageSize=250)
        for c in page["certificates"]
    }
    provisioned = rejected = refused = 0
    reasons: Counter[str] = Counter()
    lost: list[str] = []
    unfinished = 0
    unexpected: list[str] = []
    for device in fleet:
        cert_id = certificate_id(device.issued.certificate)
        status = statuses.get(cert_id)
        decisions = by_certificate.get(cert_id, [])
        final = next((d for d in decisions if d["outcome"] in ("PROVISIONED", "REJECTED")), None)
        if status is None and outcomes.get(device.name) == Connect.CLOSED:
            refused += 1  # AWS's TLS handshake refused it: never registered, no event
            if device.defect is None:
                unexpected.append(f"{device.name}: a good device was refused at connect")
            continue
        elif status == "ACTIVE" and final and final["outcome"] == "PROVISIONED":
            provisioned += 1
            actual = None
        elif status == "REVOKED" and final and final["outcome"] == "REJECTED":
            rejected += 1
            reasons[final["reason"]] += 1
            actual = final["reason"]
        elif not queue_drained and status == "PENDING_ACTIVATION":
            unfinished += 1  # still queued when the rehearsal stopped waiting: not decided yet, not lost
            continue
        else:
            lost.append(f"{device.name}: status {status}, decisions {[d['outcome'] for d in decisions]}")
            continue
        if device.defect is not None and device.defect.reason is not None and actual != device.expected_reason:
            unexpected.append(f"{device.name}: expected {device.expected_reason}, got {actual or 'PROVISIONED'}")
        if device.defect is None and actual is not None:
            unexpected.append(f"{device.name}: a good device was rejected: {actual}")
    decided_outcomes = Counter(d["outcome"] for d in log.decisions)
    timeline = _timeline(log.provisioned_at)
    first_to_last = (log.provisioned_at[-1] if log.provisioned_at else 0.0) or 1e-9
    return Result(
        devices=len(fleet),
        provisioned=provisioned,
        rejected=rejected,
        rejected_by_reason=dict(sorted(reasons.items())),
        refused_at_connect=refused,
        lost=len(lost),
        lost_devices=lost[:20],
        unfinished=unfinished,
        queue_drained=queue_drained,
        calls_by_operation=dict(sorted(iot.state.calls.items())),
        throttles_by_operation=dict(sorted(iot.state.throttled.items())),
        unexpected=unexpected[:20],
        events=sum(events.values()),
        duplicates_absorbed=decided_outcomes["DUPLICATE"]
        + decided_outcomes["ALREADY_ACTIVE"]
        + decided_outcomes["SKIPPED"],
        register_calls=iot.state.calls["RegisterThing"],
        repeat_provisions=max(0, decided_outcomes["PROVISIONED"] - provisioned),
        throttles=iot.state.throttled["RegisterThing"],
        dead_letters=stats.dead_letters,
        invocations=stats.invocations,
        invocation_errors=stats.errors,
        dropped=stats.dropped,
        wall_s=round(time.monotonic() - started, 3),
        drain_s=round(drained - started, 3),
        throughput_per_s=round(provisioned / first_to_last, 2),
        quota=options.quota,
        concurrency=concurrency,
        wiring=options.wiring,
        timeline=timeline,
    )


def _timeline(times: list[float], step_s: float = 0.5) -> list[tuple[float, int]]:
    """Cumulative devices provisioned, sampled every `step_s` seconds from the start."""
    if not times:
        return [(0.0, 0)]
    ordered = sorted(times)
    points: list[tuple[float, int]] = []
    count = 0
    t = 0.0
    while t <= ordered[-1] + step_s:
        while count < len(ordered) and ordered[count] <= t:
            count += 1
        points.append((round(t, 2), count))
        t += step_s
    return points


def summary(result: Result) -> str:
    lines = [
        f"devices              {result.devices}  ({result.wiring} wiring, RegisterThing quota {result.quota:g}/s,"
        f" concurrency {result.concurrency})",
        f"provisioned          {result.provisioned}",
        f"rejected             {result.rejected}"
        + (f"  ({', '.join(f'{k} {v}' for k, v in result.rejected_by_reason.items())})" if result.rejected else ""),
        f"refused at connect   {result.refused_at_connect}  (AWS's TLS handshake: not signed by the registered CA)",
        f"lost                 {result.lost}",
        *(
            []
            if result.queue_drained
            else [f"unfinished           {result.unfinished}  (the queue was NOT drained within the drain timeout)"]
        ),
        f"events               {result.events}  (duplicates absorbed: {result.duplicates_absorbed})",
        f"RegisterThing calls  {result.register_calls}  (throttled: {result.throttles}; repeated on an already"
        f" provisioned device: {result.repeat_provisions})",
        f"dead letters         {result.dead_letters}",
        f"wall time            {result.wall_s:.1f} s  (drained at {result.drain_s:.1f} s)",
        f"throughput           {result.throughput_per_s:.1f} provisioned/s"
        f"  ({result.throughput_ratio:.0%} of the quota)",
    ]
    lines += [f"LOST {line}" for line in result.lost_devices]
    lines += [f"UNEXPECTED {line}" for line in result.unexpected]
    return "\n".join(lines)
