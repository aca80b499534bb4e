"""How fast the event source mapping may drive RegisterThing. Pure arithmetic: `jitr simulate` and the benchmarks pace
the embedded IoT with the same rule the stack deploys, without importing the CDK."""

from __future__ import annotations

import math

SECONDS_PER_REGISTRATION = 0.5  # one decision on AWS: two describes, validation, RegisterThing (a generous estimate)
MIN_CONCURRENCY = 2  # the event source mapping's lower bound
MAX_CONCURRENCY = 1000  # and its upper bound


def max_concurrency(register_thing_tps: int) -> int:
    """Handlers work through their batch one record at a time, so N concurrent handlers make at most about
    N / SECONDS_PER_REGISTRATION RegisterThing calls per second: enough to use the quota, not enough to storm it."""
    return max(MIN_CONCURRENCY, min(MAX_CONCURRENCY, math.ceil(register_thing_tps * SECONDS_PER_REGISTRATION)))
