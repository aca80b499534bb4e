"""`jitr template check` and `jitr template render`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jitr.certificates import certificate_id
from jitr_tools import pki
from jitr_tools.cli import main
from tests.support import DATA, REPO


def test_check_accepts_the_documentation_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("intrinsics.json", "jitr-device.json"):
        assert main(["template", "check", str(DATA / name)]) == 0
    assert "OK" in capsys.readouterr().out


def test_check_refuses_a_broken_template_with_named_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(
        json.dumps(
            {
                "Resources": {
                    "t": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Fn::If": ["c", "a", "b"]}}}
                },
                "Conditions": {},
            }
        )
    )
    assert main(["template", "check", str(broken), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert {p["code"] for p in report["problems"]} == {"UNSUPPORTED_INTRINSIC", "UNSUPPORTED_SECTION"}
    assert any("Fn::If" in p["message"] for p in report["problems"])


def test_check_jitr_flags_the_status_override(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["template", "check", str(DATA / "jitr-device.json"), "--jitr"]) == 1
    assert "JITR_STATUS_OVERRIDE" in capsys.readouterr().err


def test_render_with_a_certificate(tmp_path: Path, capsys: pytest.CaptureFixture[str], issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "sensor-7", serial_number="SN7")
    pem = tmp_path / "device.pem"
    pem.write_text(device.pem)
    code = main(["template", "render", str(REPO / "templates" / "jitr-device.json"), "--cert", str(pem), "--json"])
    assert code == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert plan["resources"][0]["properties"]["ThingName"] == "sensor-7"
    assert plan["parameters"]["AWS::IoT::Certificate::Id"] == certificate_id(device.certificate)


def test_render_refuses_a_common_name_that_is_not_a_thing_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], issuing_ca: pki.Issued
) -> None:
    pem = tmp_path / "device.pem"
    pem.write_text(pki.make_device(issuing_ca, "dev.example.com").pem)
    assert main(["template", "render", str(REPO / "templates" / "jitr-device.json"), "--cert", str(pem)]) == 1
    assert "thing name 'dev.example.com' is not valid" in capsys.readouterr().err


def test_render_with_params_and_bad_param_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "template",
        "render",
        str(DATA / "intrinsics.json"),
        "--param",
        "SerialNumber=1",
        "--param",
        "Model=M",
        "--param",
        f"CertificateId={'a' * 64}",
    ]
    assert main(args) == 0
    assert '"M-1"' in capsys.readouterr().out
    assert main(["template", "render", str(DATA / "intrinsics.json"), "--param", "oops"]) == 2


def test_unreadable_certificate_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    assert main(["template", "render", str(DATA / "intrinsics.json"), "--cert", str(bad)]) == 2
    assert "not a readable PEM" in capsys.readouterr().err
