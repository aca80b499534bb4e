"""`jitr simulate`: the fleet on one machine, every device accounted for, read from the IoT and the handler's log."""

from __future__ import annotations

import dataclasses
import json

import pytest

from jitr_tools import pki
from jitr_tools.cli import main
from jitr_tools.embedded.errors import InvalidRequestException
from jitr_tools.rehearsing.reconnect import Reconnect
from jitr_tools.rehearsing.simulate import Options, simulate, summary

FAST = Reconnect(0.03, 0.5)  # devices reconnecting every few tens of ms at first, then at most every half second


def test_a_mixed_fleet_is_fully_accounted_for_with_duplicates_absorbed() -> None:
    # Given a quota that takes about two seconds to onboard the fleet, and devices reconnecting until they get in
    result = simulate(Options(devices=40, invalid_fraction=0.25, quota=15, seed=11, reconnect=FAST))

    assert result.lost == 0
    assert result.unexpected == []
    assert result.provisioned == 30
    assert result.provisioned + result.rejected + result.refused_at_connect == 40
    assert result.refused_at_connect >= 1  # the forged ones never reach the handler
    assert result.events > result.devices - result.refused_at_connect  # reconnects while pending publish again
    assert result.duplicates_absorbed >= 1
    assert result.dead_letters == 0
    # each device decided is one event on the bus, however many duplicates it sent
    assert result.decision_events == {"Device Provisioned": 30, "Device Rejected": result.rejected}
    assert f"decision events      {30 + result.rejected}  (Device Provisioned 30, Device Rejected" in summary(result)


def test_the_json_output_accounts_for_every_device(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--devices", "30", "--invalid-fraction", "0.2", "--quota", "50", "--json", "--seed", "3"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["lost"] == 0
    assert data["provisioned"] + data["rejected"] + data["refused_at_connect"] == 30
    assert sum(data["rejected_by_reason"].values()) == data["rejected"]


def test_devices_whose_events_end_in_the_dead_letter_queue_count_as_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    from jitr_tools.embedded.iot import EmbeddedIoT

    original = EmbeddedIoT.set_quota

    def broken(self: EmbeddedIoT, operation: str, per_second: float, burst: float | None = None) -> None:
        original(self, operation, per_second, burst)
        # RegisterThing refuses every request (an error botocore does not retry, so each decision is quick): every
        # record fails (RETRY PROVISIONING_REFUSED) and is redelivered
        self.inject_faults("RegisterThing", *(InvalidRequestException("refused") for _ in range(10_000)))

    monkeypatch.setattr(EmbeddedIoT, "set_quota", broken)
    options = Options(
        devices=3, invalid_fraction=0, seed=1, visibility_timeout_s=0.05, max_receive_count=3, reconnect=FAST
    )
    # (8 s: every device's events reach the dead-letter queue well within it, also on a busy 2-core machine, where
    # 3 s was once too short for the third device's)
    result = simulate(dataclasses.replace(options, timeout_s=8.0))
    # the devices kept reconnecting, every event failed: the rehearsal ran to its timeout, and reports the devices
    # lost (events of theirs were given up on), not merely unfinished
    assert result.provisioned == 0
    assert result.dead_letters >= 3
    assert result.lost == 3
    assert result.unfinished == 0


def test_a_bad_defect_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--devices", "2", "--defects", "cosmic-ray", "--json"]) == 2
    assert "unknown defect" in capsys.readouterr().err
    assert set(pki.DEFECTS) >= {"expired", "weak-key", "wrong-issuer"}


def test_a_rehearsal_cut_short_reports_unfinished_devices_not_lost_ones() -> None:
    # Given a quota so low the queue cannot drain before the (tiny) timeout
    options = Options(devices=20, invalid_fraction=0, quota=2, seed=5, batch_size=1, timeout_s=1.0, reconnect=FAST)
    result = simulate(options)
    assert not result.queue_drained
    assert result.unfinished > 0
    assert result.lost == 0
    assert result.provisioned + result.unfinished == 20
    assert "NOT drained" in summary(result)


@pytest.mark.slow
def test_the_command_says_so_in_its_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    # two pollers, each at 1 RegisterThing per second: after a second most of the 30 devices are still undecided
    args = ["simulate", "--devices", "30", "--invalid-fraction", "0", "--quota", "2"]
    assert main([*args, "--timeout", "1"]) == 1
    assert "NOT drained" in capsys.readouterr().out


def test_devices_reconnect_until_served_and_the_later_the_more_events_each_costing_no_aws_iot_call() -> None:
    # Given a quota that serves the fleet over about two seconds, and devices reconnecting as the SDK does (scaled)
    result = simulate(Options(devices=30, invalid_fraction=0, quota=15, seed=4, reconnect=FAST))
    assert result.lost == 0
    assert result.provisioned == 30
    # no fixed count: the last devices served kept reconnecting, one event per connect while pending
    assert result.max_events_per_device > 4
    assert result.events > 2 * result.devices
    # and each certificate was read once, whatever its duplicates
    assert result.calls_by_operation["DescribeCertificate"] == 30


def test_without_the_decision_table_every_duplicate_reads_the_certificate_again() -> None:
    slower = Reconnect(0.2, 1.0)
    options = Options(devices=20, invalid_fraction=0, quota=15, seed=4, reconnect=slower, absorb_duplicates=False)
    result = simulate(options)
    assert result.lost == 0
    assert result.provisioned == 20
    assert result.calls_by_operation["DescribeCertificate"] > 20


def test_a_device_throttled_before_it_registered_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from jitr_tools.embedded.iot import EmbeddedIoT
    from jitr_tools.embedded.quotas import AUTO_REGISTRATION
    from jitr_tools.embedded.state import TokenBucket

    original = EmbeddedIoT.set_quota

    def one_registration_per_second(
        self: EmbeddedIoT, operation: str, per_second: float, burst: float | None = None
    ) -> None:
        original(self, operation, per_second, burst)
        self.state.device_quotas[AUTO_REGISTRATION] = TokenBucket(1.0, 1.0)

    monkeypatch.setattr(EmbeddedIoT, "set_quota", one_registration_per_second)
    # Given three devices connecting at once and room for one auto-registration per second: the first is registered
    # and decided at once, the other two are throttled and register on later reconnects
    result = simulate(Options(devices=3, invalid_fraction=0, seed=1, reconnect=FAST, timeout_s=30.0))
    # Then the rehearsal waits for them: a device that never registered yet still has something to decide
    assert result.provisioned == 3
    assert result.lost == 0


def test_devices_the_ca_revoked_are_rejected_revoked_by_issuer_and_none_is_lost() -> None:
    # Given a fleet whose CA revoked three good devices before their first connect (its CRL served on 127.0.0.1)
    options = Options(devices=16, invalid_fraction=0.25, defects=("weak-key",), quota=50, seed=8, reconnect=FAST)
    result = simulate(dataclasses.replace(options, revoked=3))

    assert result.revoked_by_issuer == 3
    assert result.rejected_by_reason == {"REVOKED_BY_ISSUER": 3, "WEAK_KEY": 4}
    assert (result.provisioned, result.rejected, result.lost, result.unexpected) == (9, 7, 0, [])
    assert "revoked by the CA    3" in summary(result)


def test_the_command_line_fleet_has_revoked_devices_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--devices", "10", "--invalid-fraction", "0", "--quota", "50", "--json", "--seed", "2"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (data["revoked_by_issuer"], data["rejected_by_reason"], data["lost"]) == (3, {"REVOKED_BY_ISSUER": 3}, 0)
