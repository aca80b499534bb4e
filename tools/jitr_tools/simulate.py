"""`jitr simulate`: a fleet's first connects on the embedded AWS IoT, wired as the stack wires them.

registration events -> topic rule -> a queue with SQS semantics (batches, visibility timeout, redelivery, a
dead-letter queue after max receives) -> an event source mapping (concurrent pollers, batch size, partial batch
failures) -> the real handler. Devices reconnect with backoff while pending, so duplicate events happen as on AWS.
RegisterThing is held to `quota` calls per second by the embedded IoT (ThrottlingException beyond).

The `direct` wiring is the naive one the benchmarks compare against: rule -> Lambda asynchronous invoke, no queue, no
pacing, two retries, then the event is dropped.

Times are real, but the queue's visibility timeout and the devices' backoff are scaled down (seconds, not minutes) so a
rehearsal stays short; the handler, its retries (botocore's standard mode) and the IoT's checks are unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import io
import json
import random
import sys
import threading
import time
import uuid
import warnings
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from jitr.outcomes import Outcome
from jitr.pacing import max_concurrency
from jitr.provisioning import Decision

from . import embedded, pki
from .embedded import EmbeddedIoT
from .embedded.iot import Connect
from .rehearsal import handler_environment, prepare_account

NAIVE_CONCURRENCY = 100  # rule -> Lambda: as many concurrent invocations as events arrive, up to this many threads


# -- the queue: SQS standard-queue semantics in memory ---------------------------------------------------------------


@dataclass
class _Message:
    message_id: str
    body: str
    sent_at: float
    receive_count: int = 0
    visible_at: float = 0.0
    receipt: str | None = None


class Queue:
    """A standard SQS queue: at-least-once, a visibility timeout per receive, a dead-letter queue after
    `max_receive_count` receives. Visible messages wait in order; received ones in a heap by the time they return."""

    def __init__(self, visibility_timeout_s: float, max_receive_count: int) -> None:
        self.visibility_timeout_s = visibility_timeout_s
        self.max_receive_count = max_receive_count
        self.messages: dict[str, _Message] = {}
        self.visible: deque[str] = deque()
        self.invisible: list[tuple[float, str]] = []
        self.dead_letters: list[_Message] = []
        self.sent = 0
        self.condition = threading.Condition()

    def send(self, body: str) -> None:
        with self.condition:
            message = _Message(str(uuid.uuid4()), body, time.monotonic())
            self.messages[message.message_id] = message
            self.visible.append(message.message_id)
            self.sent += 1
            self.condition.notify()

    def _return_due(self, now: float) -> None:
        while self.invisible and self.invisible[0][0] <= now:
            due, message_id = heapq.heappop(self.invisible)
            message = self.messages.get(message_id)
            if message is not None and message.visible_at == due:  # not deleted, not received again since
                self.visible.append(message_id)

    def receive(self, max_messages: int, wait_s: float) -> list[_Message]:
        """Up to `max_messages` visible messages, waiting up to `wait_s` for the first (long polling)."""
        deadline = time.monotonic() + wait_s
        with self.condition:
            while True:
                now = time.monotonic()
                self._return_due(now)
                batch: list[_Message] = []
                while self.visible and len(batch) < max_messages:
                    message = self.messages.get(self.visible.popleft())
                    if message is None:
                        continue
                    if message.receive_count >= self.max_receive_count:  # redrive: it would exceed the limit
                        del self.messages[message.message_id]
                        self.dead_letters.append(message)
                        continue
                    message.receive_count += 1
                    message.visible_at = now + self.visibility_timeout_s
                    message.receipt = str(uuid.uuid4())
                    heapq.heappush(self.invisible, (message.visible_at, message.message_id))
                    batch.append(dataclasses.replace(message))  # a snapshot: this receive's receipt
                if batch or now >= deadline:
                    return batch
                next_due = self.invisible[0][0] - now if self.invisible else wait_s
                self.condition.wait(timeout=max(0.001, min(next_due, deadline - now)))

    def delete(self, message_id: str, receipt: str | None) -> None:
        with self.condition:
            message = self.messages.get(message_id)
            if message is not None and message.receipt == receipt:
                del self.messages[message_id]

    @property
    def depth(self) -> int:
        with self.condition:
            return len(self.messages)


def sqs_record(message: _Message, queue_arn: str) -> dict[str, Any]:
    """The record Lambda's SQS event source mapping hands the function."""
    return {
        "messageId": message.message_id,
        "receiptHandle": message.receipt,
        "body": message.body,
        "attributes": {
            "ApproximateReceiveCount": str(message.receive_count),
            "SentTimestamp": str(int(message.sent_at * 1000)),
            "SenderId": "AROAIOTRULE",
            "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }


class EventSourceMapping:
    """`concurrency` pollers, each receiving a batch and invoking the function with it; records the function reports
    as failed (batchItemFailures) stay in the queue and return after the visibility timeout."""

    def __init__(
        self,
        queue: Queue,
        new_environment: Callable[[], Callable[[dict[str, Any]], Any]],
        concurrency: int,
        batch_size: int,
    ) -> None:
        self.queue = queue
        self.new_environment = new_environment  # each poller is one execution environment
        self.batch_size = batch_size
        self.stopping = threading.Event()
        self.in_flight = 0
        self.invocations = 0
        self.errors = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._poll, daemon=True) for _ in range(concurrency)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _poll(self) -> None:
        arn = "arn:aws:sqs:us-east-1:123456789012:jitr-intake"
        invoke = self.new_environment()
        while not self.stopping.is_set():
            batch = self.queue.receive(self.batch_size, wait_s=0.2)
            if not batch:
                continue
            with self.lock:
                self.in_flight += 1
                self.invocations += 1
            try:
                response = invoke({"Records": [sqs_record(m, arn) for m in batch]})
                failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
            except Exception:  # an invocation error: the whole batch returns to the queue
                failed = {m.message_id for m in batch}
                with self.lock:
                    self.errors += 1
            finally:
                with self.lock:
                    self.in_flight -= 1
            for message in batch:
                if message.message_id not in failed:
                    self.queue.delete(message.message_id, message.receipt)

    @property
    def busy(self) -> bool:
        with self.lock:
            return self.in_flight > 0


class AsyncInvoke:
    """The naive wiring: every event is an asynchronous Lambda invoke (up to `concurrency` at once), retried twice on
    error after a delay, then dropped."""

    def __init__(self, invoke: Callable[[dict[str, Any]], Any], concurrency: int, retry_delay_s: float) -> None:
        self.invoke = invoke
        self.retry_delay_s = retry_delay_s
        self.pool = ThreadPoolExecutor(max_workers=concurrency)
        self.pending = 0
        self.dropped = 0
        self.invocations = 0
        self.errors = 0
        self.lock = threading.Lock()

    def send(self, body: str) -> None:
        with self.lock:
            self.pending += 1
        self.pool.submit(self._run, json.loads(body), 0)

    def _run(self, event: dict[str, Any], attempt: int) -> None:
        with self.lock:
            self.invocations += 1
        try:
            self.invoke(event)
        except Exception:
            with self.lock:
                self.errors += 1
            if attempt < 2:
                timer = threading.Timer(
                    self.retry_delay_s * (attempt + 1), self.pool.submit, (self._run, event, attempt + 1)
                )
                timer.daemon = True
                timer.start()
                return
            with self.lock:
                self.dropped += 1
        with self.lock:
            self.pending -= 1

    @property
    def busy(self) -> bool:
        with self.lock:
            return self.pending > 0

    def stop(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


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
            ) as new_environment,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            if options.wiring == "direct":
                sink: Any = AsyncInvoke(new_environment(), concurrency=concurrency, retry_delay_s=1.0)
            else:
                queue = Queue(options.visibility_timeout_s, options.max_receive_count)
                sink = queue
                mapping = EventSourceMapping(queue, new_environment, concurrency, options.batch_size)
                mapping.start()
            events = Counter[str]()

            def rule(_topic: str, event: dict[str, Any]) -> None:  # the topic rule: SELECT * -> the target
                events[event["certificateId"]] += 1
                sink.send(json.dumps(event))

            iot.subscribe("$aws/events/certificates/registered/+", rule)
            outcomes = _run_fleet(iot, fleet, options, rng, started, lambda: len(log.provisioned_at))
            connects_done = time.monotonic()
            deadline = connects_done + options.drain_timeout_s
            while time.monotonic() < deadline:
                busy = sink.busy if options.wiring == "direct" else (queue.depth > 0 or mapping.busy)
                if not busy:
                    break
                _progress(options, len(log.decisions), options.devices, started, sink)
                time.sleep(0.05)
            drained = time.monotonic()
            if options.wiring == "direct":
                sink.stop()
                stats = {"invocations": sink.invocations, "errors": sink.errors, "dropped": sink.dropped, "dead": 0}
            else:
                mapping.stop()
                stats = {
                    "invocations": mapping.invocations,
                    "errors": mapping.errors,
                    "dropped": 0,
                    "dead": len(queue.dead_letters),
                }
        if options.progress:
            print(file=sys.stderr)
        return _account(iot, client, fleet, outcomes, events, log, options, concurrency, stats, started, drained)


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


def _progress(options: Options, decided: int, total: int, started: float, sink: Any) -> None:
    if options.progress:
        depth = sink.depth if isinstance(sink, Queue) else sink.pending
        _bar(decided, total, started, f"queue {depth}")


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
    stats: dict[str, int],
    started: float,
    drained: float,
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
        unexpected=unexpected[:20],
        events=sum(events.values()),
        duplicates_absorbed=decided_outcomes["ALREADY_ACTIVE"] + decided_outcomes["SKIPPED"],
        register_calls=iot.state.calls["RegisterThing"],
        repeat_provisions=max(0, decided_outcomes["PROVISIONED"] - provisioned),
        throttles=iot.state.throttled["RegisterThing"],
        dead_letters=stats["dead"],
        invocations=stats["invocations"],
        invocation_errors=stats["errors"],
        dropped=stats["dropped"],
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
