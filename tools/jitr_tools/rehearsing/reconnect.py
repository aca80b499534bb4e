"""How a device reconnects after AWS IoT drops its connection: the AWS IoT Device SDK v2's MQTT5 client's defaults
(aws-c-mqtt: a minimum reconnect delay of 1 s, a maximum of 120 s, exponential backoff with full jitter), with no limit
on the number of attempts. A rehearsal that runs `factor` times faster than AWS (its quotas multiplied by `factor`)
divides both delays by `factor`, so devices reconnect as often relative to the quota as they would on AWS."""

from __future__ import annotations

import random
from dataclasses import dataclass

SDK_MIN_RECONNECT_DELAY_S = 1.0
SDK_MAX_RECONNECT_DELAY_S = 120.0


@dataclass(frozen=True)
class Reconnect:
    """Exponential backoff with full jitter: after the `failures`-th dropped connection in a row, a delay drawn
    uniformly from [0, min(max_s, min_s x 2^(failures - 1))]. Never gives up: a device reconnects until it is connected
    or its certificate is refused."""

    min_s: float = SDK_MIN_RECONNECT_DELAY_S
    max_s: float = SDK_MAX_RECONNECT_DELAY_S

    def __post_init__(self) -> None:
        if not 0 < self.min_s <= self.max_s:
            raise ValueError(f"reconnect delays must satisfy 0 < min <= max, got {self.min_s} and {self.max_s}")

    @classmethod
    def sdk(cls, factor: float = 1.0) -> Reconnect:
        """The SDK's defaults, `factor` times faster."""
        if factor <= 0:
            raise ValueError(f"the time factor must be positive, got {factor}")
        return cls(SDK_MIN_RECONNECT_DELAY_S / factor, SDK_MAX_RECONNECT_DELAY_S / factor)

    def ceiling(self, failures: int) -> float:
        # 2**failures grows past max_s long before it overflows a float: stop doubling at 64
        return min(self.max_s, self.min_s * 2.0 ** min(max(failures - 1, 0), 64))

    def delay(self, failures: int, rng: random.Random) -> float:
        return rng.uniform(0.0, self.ceiling(failures))
