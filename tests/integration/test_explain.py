"""`jitr explain`: the decision jitr would make now, with no effect on AWS, beside the one it recorded."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from jitr.certificates import certificate_id
from jitr_handlers.registration import handler
from jitr_tools.cli import main
from jitr_tools.rehearsal import create_decision_table
from tests.integration.support import TEMPLATE_NAME, FakeLambdaContext, Fleet


@pytest.fixture
def table(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> str:
    name = create_decision_table(boto3.client("dynamodb", region_name="us-east-1"))
    monkeypatch.setenv("JITR_DECISION_TABLE", name)
    return name


def _explain(capsys: pytest.CaptureFixture[str], certificate: str, *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["explain", certificate, "--template-name", TEMPLATE_NAME, "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def _state(fleet: Fleet) -> tuple[Any, ...]:
    client = fleet.account.client
    certificates = sorted((c["certificateId"], c["status"]) for c in client.list_certificates()["certificates"])
    return certificates, client.list_things()["things"], dict(fleet.account.iot.state.calls)


def test_a_pending_good_device_would_be_provisioned_and_nothing_changes(
    fleet: Fleet, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    device = fleet.device("sensor-42")
    fleet.first_connect(device)
    cert = certificate_id(device.certificate)
    certificates, things, _ = _state(fleet)

    code, report = _explain(capsys, cert, "--decision-table", table)

    assert code == 0
    assert report["status"] == "PENDING_ACTIVATION"
    assert report["now"]["outcome"] == "PROVISIONED"
    assert report["now"]["thingName"] == "sensor-42"
    assert any(effect.startswith("RegisterThing") for effect in report["now"]["would"])
    assert report["recorded"] is None  # never decided
    after_certificates, after_things, calls = _state(fleet)
    assert (after_certificates, after_things) == (certificates, things)  # no effect on AWS
    assert "RegisterThing" not in calls
    assert "UpdateCertificate" not in calls


def test_a_defective_device_would_be_revoked_and_says_why_without_being_revoked(
    fleet: Fleet, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    device = fleet.device("weak-1", key="rsa1024")
    fleet.first_connect(device)
    cert = certificate_id(device.certificate)
    code, report = _explain(capsys, cert, "--decision-table", table)
    assert code == 0
    assert (report["now"]["outcome"], report["now"]["reason"]) == ("REJECTED", "WEAK_KEY")
    assert report["now"]["would"] == [f"UpdateCertificate {cert} to REVOKED"]
    assert fleet.status(cert) == "PENDING_ACTIVATION"


def test_the_recorded_decision_is_shown_beside_the_one_jitr_would_make_now(
    fleet: Fleet, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    device = fleet.device("sensor-7")
    assert handler(fleet.first_connect(device), FakeLambdaContext())["outcome"] == "PROVISIONED"
    cert = certificate_id(device.certificate)
    capsys.readouterr()  # the handler's own log lines
    code, report = _explain(capsys, cert, "--decision-table", table)
    assert code == 0
    assert report["recorded"]["outcome"] == "PROVISIONED"
    assert report["recorded"]["thingName"] == "sensor-7"
    assert "decidedAt" in report["recorded"]
    assert report["now"]["outcome"] == "ALREADY_ACTIVE"
    # and the text form puts them side by side, one line each
    assert main(["explain", cert, "--template-name", TEMPLATE_NAME, "--decision-table", table]) == 0
    out = capsys.readouterr().out
    assert "now          ALREADY_ACTIVE" in out
    assert "recorded     PROVISIONED" in out


def test_an_unknown_certificate_is_one_line(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "ab" * 32, "--template-name", TEMPLATE_NAME]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jitr: AWS IoT:")
    assert len(err.splitlines()) == 1


def test_a_malformed_certificate_id_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "not-an-id"]) == 2
    assert "64 hexadecimal digits" in capsys.readouterr().err


def test_with_function_it_decides_with_the_deployed_functions_settings(
    fleet: Fleet, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import io
    import zipfile

    from jitr.settings import Settings

    # Given the deployed function, whose settings say a CN must look like "sensor-<digits>"
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="jitr-handler", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    settings = Settings(template_name=TEMPLATE_NAME, cn_pattern="^sensor-[0-9]+$", decision_table=table)
    boto3.client("lambda", region_name="us-east-1").create_function(
        FunctionName="jitr-registration",
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": settings.to_environment()},
    )
    device = fleet.device("gateway-1")
    fleet.first_connect(device)
    # When explained with the function's settings, the CN pattern applies (the default settings have none)
    _code, report = _explain(capsys, certificate_id(device.certificate), "--function", "jitr-registration")
    assert (report["now"]["outcome"], report["now"]["reason"]) == ("REJECTED", "CN_MISMATCH")
    assert report["decisionTable"] == table
