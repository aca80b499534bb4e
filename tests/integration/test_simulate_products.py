"""`jitr simulate --products`: three product lines from one products configuration, every device accounted for by
product: each provisioned with its own template (the accounting reads each thing's product attribute), sensors held
NOT_ENROLLED until their manifest arrives partway, the gateway hook's deny and hold, the meter's own cnPattern."""

from __future__ import annotations

import json

import pytest

from jitr_tools.cli import main
from jitr_tools.rehearsing.reconnect import Reconnect
from jitr_tools.rehearsing.simulate import Options, simulate, summary

FAST = Reconnect(0.03, 0.5)


def test_a_fleet_of_three_products_is_accounted_for_product_by_product() -> None:
    result = simulate(Options(devices=18, products=True, quota=30, seed=3, reconnect=FAST))

    assert result.unexpected == []  # every thing carries its own product's attribute; every odd device as expected
    assert result.lost == 0
    assert result.queue_drained
    assert (result.provisioned, result.rejected, result.held) == (15, 2, 1)
    assert result.rejected_by_reason == {"CN_MISMATCH": 1, "DENIED_BY_HOOK": 1}
    assert result.held_by_reason == {"HELD_BY_HOOK": 1}
    sensor, gateway, meter = (result.by_product[p] for p in ("sensor", "gateway", "meter"))
    # six sensors: the three of the late manifest held NOT_ENROLLED first, then provisioned when it arrived
    assert (sensor["devices"], sensor["provisioned"], sensor["held_first"], sensor["held"]) == (6, 6, 3, 0)
    assert (gateway["provisioned"], gateway["rejected"], gateway["held"]) == (4, 1, 1)
    assert (meter["provisioned"], meter["rejected"], meter["held"]) == (5, 1, 0)
    for counts in result.by_product.values():
        assert counts["retry"] == 0
        assert counts["events"] >= counts["devices"]
        assert counts["decision_events"] >= counts["provisioned"] + counts["rejected"] + counts["held"]
    assert sum(c["decision_events"] for c in result.by_product.values()) == sum(result.decision_events.values())
    assert sum(c["events"] for c in result.by_product.values()) == result.events

    text = summary(result)
    assert "held                 1  (HELD_BY_HOOK 1)" in text
    *_, header, sensor, gateway, meter = text.splitlines()  # the table by product ends the summary
    assert (
        " ".join(header.split())
        == "by product devices provisioned rejected held held first retry events decision events"
    )
    assert [row.split()[:5] for row in (sensor, gateway, meter)] == [
        ["sensor", "6", "6", "0", "0"],
        ["gateway", "6", "4", "1", "1"],
        ["meter", "6", "5", "1", "0"],
    ]


def test_the_command_runs_the_products_and_prints_them_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--products", "--devices", "9", "--quota", "50", "--seed", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["by_product"]) == {"sensor", "gateway", "meter"}
    assert data["lost"] == 0


@pytest.mark.parametrize(
    ("args", "said"),
    [(["--devices", "5"], "at least 9 devices"), (["--revoked", "2"], "--revoked is not rehearsed with --products")],
)
def test_what_the_products_rehearsal_cannot_run_is_one_line(
    args: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["simulate", "--products", *args]) == 2
    assert said in capsys.readouterr().err


def test_without_products_the_summary_has_no_product_lines() -> None:
    result = simulate(Options(devices=6, invalid_fraction=0, quota=50, seed=2, reconnect=FAST))
    assert result.by_product == {}
    assert result.held == 0
    assert "by product" not in summary(result)
    assert "held " not in summary(result)
