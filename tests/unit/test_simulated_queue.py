"""The simulation's queue behaves as an SQS standard queue: visibility timeout, redelivery, dead-letter redrive."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from jitr_tools.rehearsing.wiring import DirectWiring, Queue


def test_a_received_message_is_invisible_until_its_timeout_then_returns() -> None:
    queue = Queue(visibility_timeout_s=0.2, max_receive_count=5)
    queue.send("a")
    (first,) = queue.receive(10, wait_s=0)
    assert queue.receive(10, wait_s=0) == []
    time.sleep(0.25)
    (again,) = queue.receive(10, wait_s=0)
    assert again.message_id == first.message_id
    assert again.receive_count == 2
    assert again.receipt != first.receipt


def test_deleting_with_a_stale_receipt_does_nothing() -> None:
    queue = Queue(visibility_timeout_s=0.0, max_receive_count=5)
    queue.send("a")
    (old,) = queue.receive(1, wait_s=0)
    stale = old.receipt
    queue.receive(1, wait_s=0)  # received again: a new receipt
    queue.delete(old.message_id, stale)
    assert queue.depth == 1


def test_after_max_receives_the_message_moves_to_the_dead_letter_queue() -> None:
    queue = Queue(visibility_timeout_s=0.0, max_receive_count=3)
    queue.send("poison")
    receives = 0
    while queue.receive(1, wait_s=0):
        receives += 1
    assert receives == 3
    assert [m.body for m in queue.dead_letters] == ["poison"]
    assert queue.depth == 0


def test_batches_hold_at_most_the_batch_size() -> None:
    queue = Queue(visibility_timeout_s=30, max_receive_count=5)
    for index in range(25):
        queue.send(str(index))
    sizes = [len(queue.receive(10, wait_s=0)) for _ in range(4)]
    assert sizes == [10, 10, 5, 0]


def test_the_naive_wiring_stops_only_when_its_running_invocations_have_finished() -> None:
    # An invocation that outlived the rehearsal would call AWS IoT after the embedded account is gone (the real
    # endpoint, from a rehearsal) and print to the terminal; a retry timer firing after stop would start another.
    finished: list[str] = []
    started = threading.Event()

    def new_environment() -> Callable[[dict[str, Any]], Any]:
        def invoke(event: dict[str, Any]) -> None:
            if event["n"] == 0:
                started.set()
                time.sleep(0.3)
                finished.append("slow")
                return
            raise RuntimeError("fails, retried after a delay")

        return invoke

    wiring = DirectWiring(new_environment, concurrency=2, retry_delay_s=0.2)
    wiring.send(json.dumps({"n": 0}))
    wiring.send(json.dumps({"n": 1}))
    assert started.wait(2)
    wiring.stop()
    assert finished == ["slow"]  # waited for
    invocations = wiring.stats().invocations
    time.sleep(0.5)  # past the retry's delay
    assert wiring.stats().invocations == invocations  # the retry never ran
