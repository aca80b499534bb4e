"""`jitr simulate`: a fleet's first connects on the embedded AWS IoT, wired as the stack wires them (or naively, for
comparison: see `wiring`), deciding with the real handler. Devices reconnect as the AWS IoT Device SDK v2
does (`reconnect`: backoff with jitter, no limit) until they are connected or refused, and AWS publishes
the registered event on every connect of a pending certificate, so duplicate events happen as on AWS. RegisterThing is
held to `quota` calls per second by the embedded IoT (ThrottlingException beyond); with `aws_quotas`, every operation
the flow calls is held to AWS's default quota scaled by the same factor. The summary is read from the account and from
the decisions the handler reports.

With `revoked`, the CA has revoked that many of the good devices before they first connect: its CRL is published on
127.0.0.1, every good device names it as its CRL distribution point, and the handler checks each against it (the
revoked ones are rejected REVOKED_BY_ISSUER).

With the decision table (as the stack deploys it), each decision is published to the account's default EventBridge
bus, as the stack's default `decisionEvents` does; a rule forwards them to a queue, and the summary counts them.

Times are real but run `quota / 10` times faster than on AWS: the devices' reconnect delays are divided by that factor,
and the queue's visibility timeout is scaled down too, so a rehearsal stays short; the handler, its retries (botocore's
standard mode) and the IoT's checks are unchanged.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import json
import random
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.console import RenderableType
from rich.progress import Progress
from rich.table import Table
from rich.text import Text

from jitr.outcomes import Outcome
from jitr.pacing import AWS_DEFAULT_TPS, max_concurrency
from jitr.provisioning import Decision
from jitr.settings import RevocationSource
from jitr_tools import embedded, pki, terminal
from jitr_tools.embedded import EmbeddedIoT
from jitr_tools.embedded.iot import Connect, ConnectResult
from jitr_tools.pki.crl_server import CrlServer
from jitr_tools.rehearsing.event_tap import EventTap
from jitr_tools.rehearsing.reconnect import Reconnect
from jitr_tools.rehearsing.rehearsal import create_decision_table, handler_environment, prepare_account
from jitr_tools.rehearsing.simulate_products import (
    LateManifest,
    ProductFleet,
    count_by_product,
    deploy,
    make_product_fleet,
    product_table,
)
from jitr_tools.rehearsing.wiring import DirectWiring, QueueWiring, Wiring, WiringStats

DEFAULT_REVOKED = 3  # the command line's fleet: this many good devices revoked by the CA (fewer in a smaller fleet)
NAIVE_CONCURRENCY = 100  # rule -> Lambda: as many concurrent invocations as events arrive, up to this many threads


# -- decisions, as the handler makes them ------------------------------------------------------------------------------


class DecisionRecorder:
    """Every decision the handler makes (its `on_decision` hook), as the fields of its log line."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.lock = threading.Lock()
        self.decisions: list[dict[str, Any]] = []
        self.provisioned_at: list[float] = []
        self.settled: set[str] = set()  # certificate ids provisioned or rejected: their next connect sends no event
        self.held: dict[str, str] = {}  # certificate ids held and not (yet) provisioned or rejected: the reason
        self.observers: list[Callable[[dict[str, Any]], None]] = []  # told each decision (outside the lock)

    def __call__(self, decision: Decision) -> None:
        fields = decision.to_dict()
        with self.lock:
            self.decisions.append(fields)
            if decision.outcome == Outcome.PROVISIONED:
                self.provisioned_at.append(time.monotonic() - self.started)
            if decision.outcome in (Outcome.PROVISIONED, Outcome.REJECTED) and decision.certificate_id:
                self.settled.add(decision.certificate_id)
                self.held.pop(decision.certificate_id, None)
            elif decision.outcome == Outcome.HELD and decision.certificate_id not in self.settled:
                self.held[str(decision.certificate_id)] = str(decision.reason)
        for observer in self.observers:
            observer(fields)


class _Discard(io.StringIO):
    """Where the handler's log lines go during a rehearsal: the decisions arrive through the hook."""

    def write(self, text: str) -> int:
        return len(text)


# -- the rehearsal ----------------------------------------------------------------------------------------------------


@dataclass
class Options:
    devices: int = 60
    invalid_fraction: float = 0.2
    quota: float = 20.0  # RegisterThing calls per second (AWS's default is 10): the rehearsal's time factor is quota/10
    seed: int | None = None
    wiring: str = "queue"  # "queue" (the stack) or "direct" (naive: rule -> Lambda, no queue)
    batch_size: int = 10
    max_receive_count: int = 5
    visibility_timeout_s: float = 30.0  # 6 x 5 s: a paced batch of 10 takes about 5 s (see jitr.pacing)
    concurrency: int | None = None  # default: the stack's ceil(quota x 0.5), at least 2
    reconnect: Reconnect | None = None  # default: the SDK's delays divided by the time factor
    latency_ms: float = 0.0  # added to each RegisterThing (AWS's own time); 0 answers at once
    aws_quotas: bool = False  # enforce AWS's default quota of every operation, scaled as `quota` scales RegisterThing
    absorb_duplicates: bool = True  # the decision table; off: every duplicate is decided again (reads the certificate)
    timeout_s: float = 300.0  # the rehearsal stops here, decided or not
    defects: tuple[str, ...] = tuple(pki.DEFECTS)
    revoked: int = 0  # good devices the CA revokes before they connect (its CRL served on 127.0.0.1)
    products: bool = False  # three product lines from a products configuration (`simulate_products`), no defects
    progress: bool = False

    @property
    def time_factor(self) -> float:
        return self.quota / AWS_DEFAULT_TPS["RegisterThing"]

    @property
    def reconnect_policy(self) -> Reconnect:
        return self.reconnect or Reconnect.sdk(self.time_factor)


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
    revoked_by_issuer: int = 0  # devices the CA revoked before their first connect (expected: REVOKED_BY_ISSUER)
    time_factor: float = 1.0  # how much faster than AWS the rehearsal runs (its quotas and reconnect delays)
    absorb_duplicates: bool = True
    connects: int = 0  # every connect the devices made, first ones and reconnects
    max_events_per_device: int = 0  # the most registration events one device's connects published
    connects_throttled: dict[str, int] = field(default_factory=dict)  # over the CONNECT or auto-registration rate
    calls_by_operation: dict[str, int] = field(default_factory=dict)  # the AWS IoT calls jitr made
    inner_calls_by_operation: dict[str, int] = field(default_factory=dict)  # RegisterThing's own, against their quotas
    throttles_by_operation: dict[str, int] = field(default_factory=dict)  # each one a call jitr saw throttled
    unfinished: int = 0  # still pending when the rehearsal stopped, with events of theirs still to be decided
    queue_drained: bool = True
    decision_events: dict[str, int] = field(default_factory=dict)  # by detail-type, as a subscriber received them
    held: int = 0  # left pending by a product's check (enrollment, hook), as expected of them
    held_by_reason: dict[str, int] = field(default_factory=dict)
    by_product: dict[str, dict[str, int]] = field(default_factory=dict)  # with --products: each product's counts
    timeline: list[tuple[float, int]] = field(default_factory=list)

    @property
    def throughput_ratio(self) -> float:
        return self.throughput_per_s / self.quota if self.quota else 0.0

    @property
    def iot_calls(self) -> int:
        return sum(self.calls_by_operation.values())

    @property
    def iot_calls_per_provisioned(self) -> float:
        return self.iot_calls / self.provisioned if self.provisioned else 0.0

    @property
    def throttled_share(self) -> float:
        """Throttled calls over all the AWS IoT calls jitr made (an inner call throttled fails its RegisterThing)."""
        return sum(self.throttles_by_operation.values()) / self.iot_calls if self.iot_calls else 0.0

    @property
    def ideal_drain_s(self) -> float:
        """The devices to provision at the RegisterThing quota: no wiring can onboard them sooner."""
        return self.provisioned / self.quota if self.quota else 0.0

    def to_dict(self, timeline: bool = False) -> dict[str, Any]:
        data = asdict(self)
        data["throughput_ratio"] = round(self.throughput_ratio, 3)
        data["iot_calls"] = self.iot_calls
        data["iot_calls_per_provisioned"] = round(self.iot_calls_per_provisioned, 3)
        data["throttled_share"] = round(self.throttled_share, 5)
        data["ideal_drain_s"] = round(self.ideal_drain_s, 1)
        if not timeline:
            data.pop("timeline")
        return data


def mapping_concurrency(quota: float) -> int:
    # the stack's own rule, so the rehearsal paces as the deployment does
    return max_concurrency(max(1, round(quota)))


def simulate(options: Options) -> Result:
    """Run one rehearsal on a fresh embedded account. Everything the result says is read back from the IoT's state and
    the handler's log, not assumed."""
    reconnect = options.reconnect_policy  # refuses bad delays before anything starts
    rng = random.Random(options.seed)  # noqa: S311 (reconnect jitter)
    if options.products:
        if options.revoked:
            raise ValueError("--revoked is not rehearsed with --products")
        with tempfile.TemporaryDirectory(prefix="jitr-products-") as folder:
            products = make_product_fleet(options.devices, Path(folder))
            return _simulate(options, None, products.fleet, [], reconnect, rng, products)
    good = good_devices(options)
    if options.revoked > good:
        raise ValueError(f"--revoked {options.revoked} is more than the fleet's {good} good devices")
    with contextlib.ExitStack() as published:
        crl_server = published.enter_context(CrlServer()) if options.revoked else None
        crl_urls = [crl_server.url(CRL_PATH)] if crl_server else []
        ca = pki.make_ca("jitr simulation CA")
        fleet = pki.make_fleet(
            ca,
            options.devices,
            invalid_fraction=options.invalid_fraction,
            defects=options.defects,
            seed=options.seed,
            crl_urls=crl_urls,
        )
        if crl_server:
            revoke_some(fleet, options.revoked, options.seed)
            crl_server.publish(CRL_PATH, _crl(ca, fleet))
        return _simulate(options, ca, fleet, crl_urls, reconnect, rng)


def good_devices(options: Options) -> int:
    """How many devices of the fleet have no defect (`pki.make_fleet`'s count)."""
    return options.devices - (round(options.devices * options.invalid_fraction) if options.defects else 0)


CRL_PATH = "/simulation-ca.crl"
REASONS = (x509.ReasonFlags.key_compromise, x509.ReasonFlags.cessation_of_operation, x509.ReasonFlags.superseded)


def revoke_some(fleet: list[pki.FleetDevice], count: int, seed: int | None) -> None:
    """Mark `count` good devices of `fleet`, chosen by `seed`, as revoked by their CA."""
    good = [index for index, device in enumerate(fleet) if device.defect is None]
    for index in random.Random(seed).sample(good, count):  # noqa: S311 (which devices; not a secret)
        fleet[index] = pki.FleetDevice(fleet[index].name, fleet[index].issued, pki.REVOKED)


def _crl(ca: pki.Issued, fleet: list[pki.FleetDevice]) -> bytes:
    revoked = [d.issued.certificate for d in fleet if d.defect is pki.REVOKED]
    crl = pki.make_crl(ca, [(c, REASONS[i % len(REASONS)]) for i, c in enumerate(revoked)])
    return crl.public_bytes(serialization.Encoding.DER)


def _simulate(
    options: Options,
    ca: pki.Issued | None,
    fleet: list[pki.FleetDevice],
    crl_urls: list[str],
    reconnect: Reconnect,
    rng: random.Random,
    products: ProductFleet | None = None,
) -> Result:
    import boto3

    concurrency = options.concurrency or mapping_concurrency(options.quota)
    if options.wiring == "direct":
        concurrency = options.concurrency or NAIVE_CONCURRENCY
    with embedded.mock(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        iot = EmbeddedIoT()
        client = boto3.client("iot", region_name=iot.region)
        quota = None if options.wiring == "direct" else options.quota
        settings = late = None
        if products is not None:  # the account the products configuration deploys
            settings = deploy(iot, products, quota=quota, concurrency=concurrency)
            late = LateManifest(products, iot.region, iot.account_id)
        else:
            assert ca is not None  # a fleet of one CA, deployed as `make demo` deploys it
            ca_id = prepare_account(client, ca, iot.account_id)
        if options.aws_quotas:
            iot.apply_aws_quotas(options.time_factor)
        else:
            iot.set_quota("RegisterThing", options.quota)
        if options.latency_ms:
            iot.set_latency("RegisterThing", options.latency_ms / 1000)
        table = tap = None
        if options.absorb_duplicates or products is not None:  # (products: the stack's table, always)
            if products is None:
                table = create_decision_table(boto3.client("dynamodb", region_name=iot.region))
            tap = EventTap("default", iot.region)

        revocation = {ca_id: RevocationSource(crl=tuple(crl_urls))} if crl_urls else None
        iot.reset_counters()  # the account's set-up is not the fleet's traffic
        started = time.monotonic()
        log = DecisionRecorder(started)
        if late is not None:
            log.observers.append(late.seen)
        # The handler's EMF metric lines go to standard output, as in Lambda; here they would bury the summary.
        with (
            handler_environment(
                iot.region,
                _Discard(),
                function_name="jitr-simulate",
                quota=quota,
                concurrency=concurrency,
                on_decision=log,
                decision_table=table,
                revocation=revocation,
                event_bus="default" if tap else None,
                settings=settings,
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
            deadline = started + options.timeout_s
            with FleetProgress(len(fleet)) if options.progress else contextlib.nullcontext() as progress:
                fleet_run = _run_fleet(iot, fleet, reconnect, rng, deadline, log, wiring, progress, late)
            settled_at = time.monotonic()
            wiring.stop()  # the batches in flight finish; what is still queued stays undecided
            queue_drained = not wiring.busy
            stats = wiring.stats()
        result = _account(
            iot, client, fleet, fleet_run, events, log, options, concurrency, stats, started, settled_at, queue_drained
        )
        decision_events = tap.drain() if tap is not None else []
        result.decision_events = dict(sorted(Counter(e["detail-type"] for e in decision_events).items()))
        if products is not None:
            result.by_product = count_by_product(products, client, log.decisions, events, decision_events, result)
        return result


@dataclass
class FleetRun:
    last: dict[str, ConnectResult]  # each device's last connect
    connects: int


def _run_fleet(
    iot: EmbeddedIoT,
    fleet: list[pki.FleetDevice],
    reconnect: Reconnect,
    rng: random.Random,
    deadline: float,
    log: DecisionRecorder,
    wiring: Wiring,
    progress: FleetProgress | None = None,
    late: LateManifest | None = None,
) -> FleetRun:
    """Every device connects at once, then each reconnects after a dropped connection until it is connected or refused.
    Stops early once nothing is left to decide (every registered certificate provisioned or rejected, the wiring idle,
    and no device throttled before its certificate was ever registered: the devices' next connects would only succeed
    or be refused; a certificate held pending counts as decided once no manifest is still to arrive: its next connects
    would be held again), or at the deadline. `late` is a manifest imported partway, once its devices are held."""
    last: dict[str, ConnectResult] = {}
    registered: set[str] = set()
    unregistered: set[int] = set()  # devices throttled before their first registration: they will still register
    schedule: list[tuple[float, int, int]] = [(time.monotonic(), index, 0) for index in range(len(fleet))]
    heapq.heapify(schedule)
    connects = 0
    while schedule and time.monotonic() < deadline:
        due, index, failures = schedule[0]
        now = time.monotonic()
        if late is not None:
            late.arrive_when_due(wiring)
        if due > now:
            if not unregistered and _settled(registered, log, wiring, late):
                break
            time.sleep(min(due - now, 0.05, max(0.0, deadline - now)))
            continue
        heapq.heappop(schedule)
        device = fleet[index]
        result = iot.connect(device.issued.pem, device.issued.chain_pem)
        connects += 1
        last[device.name] = result
        if result.outcome in (Connect.REGISTERED, Connect.PENDING):
            registered.add(result.certificate_id)
        if result.outcome == Connect.THROTTLED and result.certificate_id not in registered:
            unregistered.add(index)
        else:  # registered, connected or refused: decided by now, or by the handler
            unregistered.discard(index)
        if result.outcome in (Connect.REGISTERED, Connect.PENDING, Connect.THROTTLED):
            heapq.heappush(schedule, (time.monotonic() + reconnect.delay(failures + 1, rng), index, failures + 1))
        if progress:
            progress.show(len(log.settled), len(schedule), wiring.depth)
    while time.monotonic() < deadline and not _settled(registered, log, wiring, late):  # the queue drains
        if progress:
            progress.show(len(log.settled), len(schedule), wiring.depth)
        time.sleep(0.05)
    return FleetRun(last, connects)


def _settled(registered: set[str], log: DecisionRecorder, wiring: Wiring, late: LateManifest | None = None) -> bool:
    with log.lock:
        done = log.settled | (set(log.held) if late is None or not late.pending else set())
        decided = registered <= done
    return decided and not wiring.busy


class FleetProgress:
    """The live progress bar on a terminal: the devices decided (provisioned or rejected), the devices still to
    reconnect and the events queued."""

    def __init__(self, devices: int) -> None:
        self.bar: Progress = terminal.progress("rehearsing")
        self.task = self.bar.add_task("fleet", total=devices, status="decided")

    def __enter__(self) -> FleetProgress:
        self.bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.bar.stop()

    def show(self, decided: int, reconnecting: int, queued: int) -> None:
        self.bar.update(self.task, completed=decided, status=f"decided  reconnecting {reconnecting}  queue {queued}")


def _account(
    iot: EmbeddedIoT,
    client: Any,
    fleet: list[pki.FleetDevice],
    fleet_run: FleetRun,
    events: Counter[str],
    log: DecisionRecorder,
    options: Options,
    concurrency: int,
    stats: WiringStats,
    started: float,
    settled_at: float,
    queue_drained: bool,
) -> Result:
    from jitr.certificates import certificate_id

    state = iot.state
    with state.lock:  # before this accounting's own calls
        own_calls = state.calls - state.inner_calls
        inner_calls, throttled, device_throttled = (
            Counter(state.inner_calls),
            Counter(state.throttled),
            Counter(state.device_throttled),
        )
    by_certificate: dict[str, list[dict[str, Any]]] = {}
    for decision in log.decisions:
        by_certificate.setdefault(str(decision.get("certificateId")), []).append(decision)
    statuses = {
        c["certificateId"]: c["status"]
        for page in client.get_paginator("list_certificates").paginate(pageSize=250)
        for c in page["certificates"]
    }
    given_up = Counter(str(json.loads(body).get("certificateId")) for body in stats.given_up)
    provisioned = rejected = refused = held = 0
    reasons: Counter[str] = Counter()
    held_reasons: Counter[str] = Counter()
    lost: list[str] = []
    unfinished = 0
    unexpected: list[str] = []
    for device in fleet:
        cert_id = certificate_id(device.issued.certificate)
        status = statuses.get(cert_id)
        decisions = by_certificate.get(cert_id, [])
        final = next((d for d in decisions if d["outcome"] in ("PROVISIONED", "REJECTED")), None)
        last = fleet_run.last.get(device.name)
        if status is None and last is not None and last.outcome == Connect.CLOSED:
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
        elif status == "PENDING_ACTIVATION" and final is None and cert_id in log.held and not given_up[cert_id]:
            held += 1  # left pending by its product's check (its hook, its enrollment), decided again at each event
            held_reasons[log.held[cert_id]] += 1
            actual = log.held[cert_id]
        elif status == "PENDING_ACTIVATION" and not queue_drained and not given_up[cert_id]:
            unfinished += 1  # the rehearsal stopped before its events were decided: not decided yet, not lost
            continue
        else:  # undecided with nothing left to decide it, or events of it given up on (the dead-letter queue's alarm)
            lost.append(
                f"{device.name}: status {status}, decisions {[d['outcome'] for d in decisions]},"
                f" events given up on {given_up[cert_id]}"
            )
            continue
        if device.defect is not None and device.defect.reason is not None and actual != device.expected_reason:
            unexpected.append(f"{device.name}: expected {device.expected_reason}, got {actual or 'PROVISIONED'}")
        if device.defect is None and actual is not None:
            done = "held" if status == "PENDING_ACTIVATION" else "rejected"
            unexpected.append(f"{device.name}: a good device was {done}: {actual}")
    decided_outcomes = Counter(d["outcome"] for d in log.decisions)
    timeline = _timeline(log.provisioned_at)
    first_to_last = (log.provisioned_at[-1] if log.provisioned_at else 0.0) or 1e-9
    return Result(
        devices=len(fleet),
        provisioned=provisioned,
        rejected=rejected,
        rejected_by_reason=dict(sorted(reasons.items())),
        held=held,
        held_by_reason=dict(sorted(held_reasons.items())),
        refused_at_connect=refused,
        lost=len(lost),
        lost_devices=lost[:20],
        unfinished=unfinished,
        queue_drained=queue_drained,
        time_factor=options.time_factor,
        absorb_duplicates=options.absorb_duplicates,
        connects=fleet_run.connects,
        max_events_per_device=max(events.values(), default=0),
        connects_throttled=dict(sorted(device_throttled.items())),
        calls_by_operation=dict(sorted(own_calls.items())),
        inner_calls_by_operation=dict(sorted(inner_calls.items())),
        throttles_by_operation=dict(sorted(throttled.items())),
        unexpected=unexpected[:20],
        events=sum(events.values()),
        duplicates_absorbed=decided_outcomes["DUPLICATE"]
        + decided_outcomes["ALREADY_ACTIVE"]
        + decided_outcomes["SKIPPED"],
        register_calls=own_calls["RegisterThing"],
        repeat_provisions=max(0, decided_outcomes["PROVISIONED"] - provisioned),
        throttles=throttled["RegisterThing"],
        dead_letters=stats.dead_letters,
        invocations=stats.invocations,
        invocation_errors=stats.errors,
        dropped=stats.dropped,
        wall_s=round(time.monotonic() - started, 3),
        drain_s=round(settled_at - started, 3),
        throughput_per_s=round(provisioned / first_to_last, 2),
        quota=options.quota,
        concurrency=concurrency,
        wiring=options.wiring,
        revoked_by_issuer=sum(1 for device in fleet if device.defect is pki.REVOKED),
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


Row = tuple[str, str, str, str]  # a summary line: its label, its value, a note (in parentheses), the value's colour


def summary(result: Result) -> str:
    """The summary as plain text (what a file or a pipe receives)."""
    return terminal.plain(*report(result))


def report(result: Result) -> list[RenderableType]:
    """The summary: a table of counts, with --products a table of each product's, then the devices lost or
    unexpected."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for label, value, note, style in _rows(result):
        table.add_row(label, Text.assemble((value, style), (f"  ({note})" if note else "", "dim")))
    products: list[RenderableType] = [Text(), product_table(result.by_product)] if result.by_product else []
    lines: list[RenderableType] = [Text(f"LOST {line}", style="red") for line in result.lost_devices]
    lines += [Text(f"UNEXPECTED {line}", style="red") for line in result.unexpected]
    return [table, *products, *lines]


def _rows(result: Result) -> list[Row]:
    def counts(by: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in by.items())

    rejected = counts(result.rejected_by_reason) if result.rejected else ""
    calls = sum(result.throttles_by_operation.values())
    rows: list[Row | None] = [
        (
            "devices",
            str(result.devices),
            f"{result.wiring} wiring, RegisterThing quota {result.quota:g}/s, concurrency {result.concurrency},"
            f" {result.time_factor:g} x faster than AWS",
            "",
        ),
        ("provisioned", str(result.provisioned), "", "green"),
        ("rejected", str(result.rejected), rejected, "yellow" if result.rejected else ""),
        ("revoked by the CA", str(result.revoked_by_issuer), "listed in its CRL before their first connect", "")
        if result.revoked_by_issuer
        else None,
        ("held", str(result.held), counts(result.held_by_reason), "yellow") if result.held else None,
        (
            "refused at connect",
            str(result.refused_at_connect),
            "AWS's TLS handshake: not signed by the registered CA",
            "",
        ),
        ("lost", str(result.lost), "", "red" if result.lost else "green"),
        None
        if result.queue_drained
        else ("unfinished", str(result.unfinished), "NOT drained: the rehearsal's timeout came first", "red"),
        ("connects", str(result.connects), "devices reconnect until connected or refused", ""),
        ("events", str(result.events), f"duplicates absorbed: {result.duplicates_absorbed}", ""),
        (
            "AWS IoT calls",
            str(result.iot_calls),
            f"{result.iot_calls_per_provisioned:.2f} per device provisioned; throttled: {calls}",
            "",
        ),
        (
            "RegisterThing calls",
            str(result.register_calls),
            f"throttled: {result.throttles}; repeated on an already provisioned device: {result.repeat_provisions}",
            "",
        ),
        ("dead letters", str(result.dead_letters), "", "red" if result.dead_letters else ""),
        ("decision events", str(sum(result.decision_events.values())), counts(result.decision_events), ""),
        (
            "wall time",
            f"{result.wall_s:.1f} s",
            f"every device decided at {result.drain_s:.1f} s; at the quota: {result.ideal_drain_s:.1f} s",
            "",
        ),
        (
            "throughput",
            f"{result.throughput_per_s:.1f} provisioned/s",
            f"{result.throughput_ratio:.0%} of the quota",
            "",
        ),
    ]
    return [row for row in rows if row is not None]
