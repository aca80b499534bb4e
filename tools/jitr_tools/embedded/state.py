"""What the embedded IoT keeps beside moto's backend: templates, quotas, injected faults, subscribers, counters."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import ConflictingResourceUpdateException, ThrottlingException, _Error
from .listing import CertificatesByCa

Subscriber = Callable[[str, dict[str, Any]], None]


class TokenBucket:
    """A per-second quota as AWS enforces it: `rate` calls per second with a burst of `burst`."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self.tokens = self.burst
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False


@dataclass
class ProvisioningTemplateRecord:
    name: str
    arn: str
    body: str
    role_arn: str
    type: str
    enabled: bool
    description: str
    created: datetime
    modified: datetime
    version: int = 1
    pre_provisioning_hook: dict[str, Any] | None = None


@dataclass
class Extension:
    """State of one embedded account and region, beside moto's `IoTBackend` of the same account and region."""

    templates: dict[str, ProvisioningTemplateRecord] = field(default_factory=dict)
    quotas: dict[str, TokenBucket] = field(default_factory=dict)
    device_quotas: dict[str, TokenBucket] = field(default_factory=dict)  # CONNECTs, auto-registrations (`quotas`)
    device_throttled: Counter[str] = field(default_factory=Counter)
    faults: dict[str, deque[_Error | None]] = field(default_factory=dict)  # None: that call passes
    latency_s: dict[str, float] = field(default_factory=dict)
    subscribers: list[tuple[str, Subscriber]] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)  # every call against each quota, RegisterThing's own included
    inner_calls: Counter[str] = field(default_factory=Counter)  # of which RegisterThing made on the caller's behalf
    throttled: Counter[str] = field(default_factory=Counter)
    succeeded: Counter[str] = field(default_factory=Counter)
    lock: threading.RLock = field(default_factory=threading.RLock)
    in_flight: set[str] = field(default_factory=set)
    thing_principals: dict[str, set[str]] = field(default_factory=dict)  # thing name -> principal ARNs (an index)
    certificates_by_ca: CertificatesByCa = field(default_factory=CertificatesByCa)  # ListCertificatesByCA's order

    def __getstate__(self) -> dict[str, Any]:
        """What an account keeps between runs of `jitr serve --state`: its templates and the thing index. Quotas,
        faults, subscribers, counters and the lock belong to one run."""
        return {"templates": self.templates, "thing_principals": self.thing_principals}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]  # every field at its default, then the kept ones
        self.__dict__.update(state)

    def admit(self, operation: str, inner: bool = False) -> None:
        """Count a call (`inner`: one RegisterThing makes on the caller's behalf), then raise an injected fault or
        ThrottlingException when the quota is spent."""
        with self.lock:
            self.calls[operation] += 1
            if inner:
                self.inner_calls[operation] += 1
            queued = self.faults.get(operation)
            fault = queued.popleft() if queued else None
            if fault is not None:
                raise fault
        bucket = self.quotas.get(operation)
        if bucket is not None and not bucket.take():
            with self.lock:
                self.throttled[operation] += 1
            raise ThrottlingException(f"Rate exceeded for {operation}")

    def admit_device(self, limit: str) -> bool:
        """Whether a device's connect fits the account's device-side `limit` (counted when it does not)."""
        bucket = self.device_quotas.get(limit)
        if bucket is None or bucket.take():
            return True
        with self.lock:
            self.device_throttled[limit] += 1
        return False

    def pause(self, operation: str) -> None:
        """Take as long as the configured latency of `operation` (AWS's own processing time)."""
        delay = self.latency_s.get(operation)
        if delay:
            time.sleep(delay)

    @contextmanager
    def claim(self, certificate_id: str | None) -> Iterator[None]:
        """Hold `certificate_id` for one RegisterThing; a concurrent one on the same certificate conflicts."""
        if certificate_id is None:
            yield
            return
        with self.lock:
            if certificate_id in self.in_flight:
                raise ConflictingResourceUpdateException(
                    f"Another provisioning request is updating certificate {certificate_id}"
                )
            self.in_flight.add(certificate_id)
        try:
            yield
        finally:
            with self.lock:
                self.in_flight.discard(certificate_id)
