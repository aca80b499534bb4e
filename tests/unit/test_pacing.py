"""RegisterThing pacing: each execution environment takes its share of the account's quota."""

from __future__ import annotations

from jitr.pacing import Pacer
from jitr.settings import Settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_pacer_spaces_calls_by_its_interval_without_a_burst(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    slept: list[float] = []
    monkeypatch.setattr("jitr.pacing.time.sleep", slept.append)
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


def test_an_unused_slot_is_given_back(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("jitr.pacing.time.sleep", lambda _s: None)
    clock = FakeClock()
    pacer = Pacer(2.0, clock=clock)
    assert pacer.wait() == 0.0  # reserved now; the next slot is 0.5 s away
    pacer.refund()  # a duplicate: no RegisterThing was made
    assert pacer.wait() == 0.0  # so the next event takes the slot at once


def test_a_decision_reserves_its_slot_before_reading_and_refunds_it_when_nothing_is_registered(
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    from jitr.iot import IoT

    monkeypatch.setattr("jitr.pacing.time.sleep", lambda _s: None)
    calls: list[str] = []

    class Client:
        def register_thing(self, **_: object) -> dict[str, object]:
            calls.append("register")
            return {"resourceArns": {}}

    clock = FakeClock()
    iot = IoT(Client(), pacer=Pacer(1.0, clock=clock))
    with iot.registration_slot():
        pass  # a duplicate: nothing registered
    with iot.registration_slot():
        iot.register_thing("{}", {})
    assert calls == ["register"]
    assert iot.pacer is not None
    assert iot.pacer.next_at == clock.now + 1.0  # one slot used, the refunded one free again
