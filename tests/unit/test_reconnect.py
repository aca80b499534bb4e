"""The rehearsal devices' reconnect delays: the AWS IoT Device SDK v2's defaults, scaled, with full jitter."""

from __future__ import annotations

import random

import pytest

from jitr_tools.rehearsing.reconnect import Reconnect


def test_the_sdk_defaults_scale_with_the_rehearsals_time_factor() -> None:
    assert Reconnect.sdk() == Reconnect(1.0, 120.0)
    assert Reconnect.sdk(5) == Reconnect(0.2, 24.0)


def test_the_ceiling_doubles_from_the_minimum_to_the_maximum_and_stays_there() -> None:
    policy = Reconnect(1.0, 120.0)
    assert [policy.ceiling(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 64, 120, 120]
    assert policy.ceiling(10_000) == 120  # no overflow however long a device has been trying


def test_delays_are_drawn_below_the_ceiling_with_full_jitter() -> None:
    policy, rng = Reconnect(1.0, 120.0), random.Random(3)
    delays = [policy.delay(4, rng) for _ in range(2000)]
    assert all(0 <= d <= 8 for d in delays)
    assert min(delays) < 1  # spread over the whole range, not clustered at the ceiling
    assert max(delays) > 7


@pytest.mark.parametrize(("low", "high"), [(0, 1), (2, 1), (-1, 5)])
def test_nonsense_delays_are_refused(low: float, high: float) -> None:
    with pytest.raises(ValueError, match="reconnect delays"):
        Reconnect(low, high)


def test_a_nonpositive_time_factor_is_refused() -> None:
    with pytest.raises(ValueError, match="time factor"):
        Reconnect.sdk(0)
