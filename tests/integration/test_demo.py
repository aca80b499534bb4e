"""`make demo` runs `jitr demo`: the main job on the embedded IoT must succeed and show both decisions."""

from __future__ import annotations

import pytest

from jitr_tools.cli import main


def test_demo_provisions_one_device_and_refuses_the_weak_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "handler: PROVISIONED as thing sensor-0001" in out
    assert "the device reconnects: CONNECTED" in out
    assert "REJECTED WEAK_KEY" in out
    assert "its certificate is now REVOKED" in out
