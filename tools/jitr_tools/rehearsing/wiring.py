"""The wirings a rehearsal can run the handler behind, each behind one small interface (`Wiring`: send, busy, depth,
stop, stats):

- `QueueWiring`, as the stack wires it: topic rule -> a queue with SQS semantics (batches, visibility timeout,
  redelivery, a dead-letter queue after max receives) -> an event source mapping (concurrent pollers, each one
  execution environment, batch size, partial batch failures) -> the handler.
- `DirectWiring`, the naive one the benchmarks compare against: rule -> Lambda asynchronous invoke, no queue, no pacing,
  two retries, then the event is dropped.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

Invoke = Callable[[dict[str, Any]], Any]
NewEnvironment = Callable[[], Invoke]


@dataclass(frozen=True)
class WiringStats:
    invocations: int
    errors: int
    dropped: int  # events given up on (direct: after the retries)
    dead_letters: int  # events moved to the dead-letter queue (queue)
    given_up: tuple[str, ...] = ()  # the bodies of those events, dropped or dead-lettered


class Wiring(Protocol):
    def send(self, body: str) -> None: ...

    @property
    def busy(self) -> bool: ...

    @property
    def depth(self) -> int: ...

    def stop(self) -> None: ...

    def stats(self) -> WiringStats: ...


# -- the queue: SQS standard-queue semantics in memory ---------------------------------------------------------------


@dataclass
class Message:
    """One message in the queue: its body, when it was sent, and its receives."""

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
        self.messages: dict[str, Message] = {}
        self.visible: deque[str] = deque()
        self.invisible: list[tuple[float, str]] = []
        self.dead_letters: list[Message] = []
        self.sent = 0
        self.condition = threading.Condition()

    def send(self, body: str) -> None:
        with self.condition:
            message = Message(str(uuid.uuid4()), body, time.monotonic())
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

    def receive(self, max_messages: int, wait_s: float) -> list[Message]:
        """Up to `max_messages` visible messages, waiting up to `wait_s` for the first (long polling)."""
        deadline = time.monotonic() + wait_s
        with self.condition:
            while True:
                now = time.monotonic()
                self._return_due(now)
                batch: list[Message] = []
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


def sqs_record(message: Message, queue_arn: str) -> dict[str, Any]:
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
        new_environment: NewEnvironment,
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
    error after a delay, then dropped. Each worker is one execution environment, as each concurrent invocation is on
    Lambda: its own Registration, made on the worker's first invoke."""

    def __init__(self, new_environment: NewEnvironment, concurrency: int, retry_delay_s: float) -> None:
        self.retry_delay_s = retry_delay_s
        self.pool = ThreadPoolExecutor(max_workers=concurrency, initializer=self._start_environment)
        self.new_environment = new_environment
        self.environment = threading.local()
        self.pending = 0
        self.dropped: list[str] = []
        self.invocations = 0
        self.errors = 0
        self.lock = threading.Lock()
        self.stopped = False
        self.timers: set[threading.Timer] = set()

    def send(self, body: str) -> None:
        with self.lock:
            if self.stopped:
                return
            self.pending += 1
        self.pool.submit(self._run, body, 0)

    def _retry(self, body: str, attempt: int) -> None:
        with self.lock:
            self.timers.discard(threading.current_thread())  # a Timer runs its function in its own thread
            if self.stopped:
                return
        self.pool.submit(self._run, body, attempt)

    def _run(self, body: str, attempt: int) -> None:
        with self.lock:
            self.invocations += 1
        try:
            self.environment.invoke(json.loads(body))
        except Exception:
            with self.lock:
                self.errors += 1
            if attempt < 2:
                timer = threading.Timer(self.retry_delay_s * (attempt + 1), self._retry, (body, attempt + 1))
                timer.daemon = True
                with self.lock:
                    self.timers.add(timer)
                timer.start()
                return
            with self.lock:
                self.dropped.append(body)
        with self.lock:
            self.pending -= 1

    def _start_environment(self) -> None:
        self.environment.invoke = self.new_environment()

    @property
    def busy(self) -> bool:
        with self.lock:
            return self.pending > 0

    def stop(self) -> None:
        """No new invocations; the ones running finish (they use the account, which must outlive them)."""
        with self.lock:
            self.stopped = True
            timers, self.timers = list(self.timers), set()
        for timer in timers:
            timer.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)


class QueueWiring:
    """The stack's wiring: the queue and the event source mapping's pollers, started at once."""

    def __init__(
        self,
        new_environment: NewEnvironment,
        *,
        concurrency: int,
        batch_size: int,
        visibility_timeout_s: float,
        max_receive_count: int,
    ) -> None:
        self.queue = Queue(visibility_timeout_s, max_receive_count)
        self.mapping = EventSourceMapping(self.queue, new_environment, concurrency, batch_size)
        self.mapping.start()

    def send(self, body: str) -> None:
        self.queue.send(body)

    @property
    def busy(self) -> bool:
        return self.queue.depth > 0 or self.mapping.busy

    @property
    def depth(self) -> int:
        return self.queue.depth

    def stop(self) -> None:
        self.mapping.stop()

    def stats(self) -> WiringStats:
        given_up = tuple(m.body for m in self.queue.dead_letters)
        return WiringStats(self.mapping.invocations, self.mapping.errors, 0, len(given_up), given_up)


class DirectWiring:
    """The naive wiring: every event an asynchronous invoke, each worker its own execution environment."""

    def __init__(self, new_environment: NewEnvironment, *, concurrency: int, retry_delay_s: float = 1.0) -> None:
        self.invoker = AsyncInvoke(new_environment, concurrency=concurrency, retry_delay_s=retry_delay_s)

    def send(self, body: str) -> None:
        self.invoker.send(body)

    @property
    def busy(self) -> bool:
        return self.invoker.busy

    @property
    def depth(self) -> int:
        return self.invoker.pending

    def stop(self) -> None:
        self.invoker.stop()

    def stats(self) -> WiringStats:
        with self.invoker.lock:
            given_up = tuple(self.invoker.dropped)
        return WiringStats(self.invoker.invocations, self.invoker.errors, len(given_up), 0, given_up)
