"""Pacing RegisterThing to the account's quota: the one home of the rule the stack deploys, the handler follows and
the rehearsal reproduces.

The event source mapping runs at most `max_concurrency(quota)` execution environments; each takes `share(quota,
concurrency)` calls per second with a `Pacer`, so all of them together stay under the quota. A decision reserves its
slot before it reads the certificate (`Pacer.slot`), so the state it rests on is fresh when RegisterThing runs, and
gives the slot back when it makes no RegisterThing (a duplicate, a refusal).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType

# AWS IoT's default quotas, in calls per second, for every operation the JITR flow calls (AWS's limits page; see the
# project's AWS notes, "Quotas"): the handler paces itself to them, the embedded IoT enforces them. Where AWS publishes
# no figure the value is an assumption: DescribeProvisioningTemplate (not in the 2019 table), DetachThingPrincipal and
# ListPrincipalThings (not listed) are taken as 10, their neighbours' figure. CreateThing and AttachThingPrincipal use
# the 2019 table's 15 (a later dump of Service Quotas says 100): the stricter one. The last three are RegisterThing's
# own calls.
AWS_DEFAULT_TPS: Mapping[str, float] = MappingProxyType(
    {
        "RegisterThing": 10,
        "DescribeCertificate": 10,
        "DescribeCACertificate": 10,
        "UpdateCertificate": 10,
        "ListThingPrincipals": 10,
        "ListPrincipalThings": 10,
        "DescribeProvisioningTemplate": 10,
        "DetachThingPrincipal": 10,
        "DescribeThing": 350,
        "AttachPolicy": 15,
        "AttachThingPrincipal": 15,
        "CreateThing": 15,
    }
)

SECONDS_PER_REGISTRATION = 0.5  # one decision on AWS: two describes, validation, RegisterThing (a generous estimate)
MIN_CONCURRENCY = 2  # the event source mapping's lower bound
MAX_CONCURRENCY = 1000  # and its upper bound


def max_concurrency(register_thing_tps: int) -> int:
    """Handlers work through their batch one record at a time, so N concurrent handlers make at most about
    N / SECONDS_PER_REGISTRATION RegisterThing calls per second: enough to use the quota, not enough to storm it."""
    return max(MIN_CONCURRENCY, min(MAX_CONCURRENCY, math.ceil(register_thing_tps * SECONDS_PER_REGISTRATION)))


def share(register_thing_tps: float | None, concurrency: int | None) -> float | None:
    """One execution environment's calls per second: the quota over the mapping's concurrency (None: unpaced)."""
    if not register_thing_tps:
        return None
    return register_thing_tps / (concurrency or 1)


class Pacer:
    """At most `rate_per_s` calls per second from this execution environment (no burst). With the account's quota
    shared out over the event source mapping's maximum concurrency, all environments together stay under the quota,
    so a fleet powering up at once is onboarded at the quota instead of in a storm of throttles and retries."""

    def __init__(self, rate_per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = 1.0 / rate_per_s
        self.clock = clock
        self.next_at = 0.0
        self.lock = threading.Lock()
        self.reserved = False

    def wait(self) -> float:
        """Block until this environment may make the next call, and reserve it; returns the seconds waited."""
        with self.lock:
            now = self.clock()
            start = max(now, self.next_at)
            self.next_at = start + self.interval_s
        delay = start - now
        if delay > 0:
            time.sleep(delay)
        return delay

    def refund(self) -> None:
        """Give back the last reservation, unused (the event was a duplicate or a refusal)."""
        with self.lock:
            self.next_at = max(self.clock(), self.next_at - self.interval_s)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Reserve the next call for what happens inside; refunded on exit unless `use()` took it."""
        self.wait()
        self.reserved = True
        try:
            yield
        finally:
            if self.reserved:
                self.refund()
            self.reserved = False

    def use(self) -> None:
        """Make the call now: take the reserved slot, or wait for one outside a slot."""
        if not self.reserved:
            self.wait()
        self.reserved = False
