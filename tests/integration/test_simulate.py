"""`jitr simulate`: the fleet on one machine, every device accounted for, read from the IoT and the handler's log."""

from __future__ import annotations

import json

import pytest

from jitr_tools import pki
from jitr_tools.cli import main
from jitr_tools.embedded.errors import ServiceUnavailableException
from jitr_tools.simulate import Options, simulate


def test_a_mixed_fleet_is_fully_accounted_for_with_duplicates_absorbed() -> None:
    # Given a quota that takes about two seconds to onboard the fleet, and devices retrying every few tens of ms
    result = simulate(Options(devices=40, invalid_fraction=0.25, reconnects=2, quota=15, seed=11, backoff_s=0.03))

    assert result.lost == 0
    assert result.unexpected == []
    assert result.provisioned == 30
    assert result.provisioned + result.rejected + result.refused_at_connect == 40
    assert result.refused_at_connect >= 1  # the forged ones never reach the handler
    assert result.events > result.devices - result.refused_at_connect  # reconnects while pending publish again
    assert result.duplicates_absorbed >= 1
    assert result.dead_letters == 0


def test_the_json_output_accounts_for_every_device(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["simulate", "--devices", "30", "--invalid-fraction", "0.2", "--reconnects", "1", "--json", "--seed", "3"]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["lost"] == 0
    assert data["provisioned"] + data["rejected"] + data["refused_at_connect"] == 30
    assert sum(data["rejected_by_reason"].values()) == data["rejected"]


def test_events_that_keep_failing_end_in_the_dead_letter_queue_and_their_devices_count_as_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jitr_tools.embedded.iot import EmbeddedIoT

    original = EmbeddedIoT.set_quota

    def broken(self: EmbeddedIoT, operation: str, per_second: float, burst: float | None = None) -> None:
        original(self, operation, per_second, burst)
        # RegisterThing is down for every attempt: every record fails and is redelivered
        self.inject_faults("RegisterThing", *(ServiceUnavailableException("down") for _ in range(10_000)))

    monkeypatch.setattr(EmbeddedIoT, "set_quota", broken)
    monkeypatch.setenv("JITR_MAX_ATTEMPTS", "1")
    result = simulate(
        Options(devices=3, invalid_fraction=0, reconnects=0, seed=1, visibility_timeout_s=0.05, max_receive_count=3)
    )
    assert result.provisioned == 0
    assert result.dead_letters == 3
    assert result.lost == 3


def test_a_bad_defect_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--devices", "2", "--defects", "cosmic-ray", "--json"]) == 2
    assert "unknown defect" in capsys.readouterr().err
    assert set(pki.DEFECTS) >= {"expired", "weak-key", "wrong-issuer"}


def test_a_rehearsal_cut_short_reports_unfinished_devices_not_lost_ones() -> None:
    # Given a quota so low the queue cannot drain before the (tiny) drain timeout
    options = Options(devices=20, invalid_fraction=0, reconnects=0, quota=2, seed=5, batch_size=1, drain_timeout_s=0.5)
    result = simulate(options)
    assert not result.queue_drained
    assert result.unfinished > 0
    assert result.lost == 0
    assert result.provisioned + result.unfinished == 20
    from jitr_tools.simulate import summary

    assert "NOT drained" in summary(result)


@pytest.mark.slow
def test_the_command_says_so_in_its_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    # two pollers take a batch of 10 each at 1 RegisterThing per second; 10 of 30 devices are still queued
    args = ["simulate", "--devices", "30", "--invalid-fraction", "0", "--reconnects", "0", "--quota", "2"]
    assert main([*args, "--drain-timeout", "0.3"]) == 1
    assert "NOT drained" in capsys.readouterr().out
