"""RegisterThing pacing: each execution environment takes its share of the account's quota."""

from __future__ import annotations

from jitr.iot import Pacer
from jitr.settings import Settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_pacer_spaces_calls_by_its_interval_without_a_burst(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    slept: list[float] = []
    monkeypatch.setattr("jitr.iot.time.sleep", slept.append)
    clock = FakeClock()
    pacer = Pacer(4.0, clock=clock)
    waits = [pacer.wait() for _ in range(3)]
    assert waits == [0.0, 0.25, 0.5]
    assert slept == [0.25, 0.5]
    clock.now += 10  # idle for a while: the next call goes at once, no saved-up burst
    assert pacer.wait() == 0.0


def test_the_share_is_the_quota_over_the_mappings_concurrency() -> None:
    env = {"JITR_TEMPLATE_NAME": "t", "JITR_REGISTER_THING_TPS": "10", "JITR_MAX_CONCURRENCY": "5"}
    assert Settings.from_environment(env).register_rate_per_s == 2.0
    assert Settings.from_environment({"JITR_TEMPLATE_NAME": "t"}).register_rate_per_s is None
