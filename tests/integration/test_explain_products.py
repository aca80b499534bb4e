"""`jitr explain` on a stack with products: the product behind a decision, the enrollment table's and the decision
hook's answers, and for a certificate held, what the operator can do. On the embedded IoT, with moto's DynamoDB (the
enrollment table) and the embedded Lambda (the hook)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from jitr.certificates import certificate_id
from jitr.enrollment import Enrollments, EnrollmentSettings, disable, import_manifest, read_manifest
from jitr.hook import HookSettings
from jitr.iot import IoT
from jitr.products import Product
from jitr.settings import Settings
from jitr_handlers.registration import handler
from jitr_tools import pki
from jitr_tools.cli import main
from jitr_tools.embedded import EmbeddedIoT
from jitr_tools.rehearsing.rehearsal import create_decision_table
from tests.integration.support import TEMPLATE_NAME, FakeLambdaContext, Fleet, sqs_event
from tests.integration.test_enrollment import create_enrollment_table

REGION = "us-east-1"


@dataclass
class Stack:
    """A stack of two products of the fleet's CA, by OU: sensors require enrollment, gateways ask a hook."""

    fleet: Fleet
    enrollments: Enrollments
    hook_answer: dict[str, Any]
    environment: dict[str, str]

    def sensor(self, name: str) -> pki.Issued:
        return self.fleet.device(name, unit="sensors")

    def gateway(self, name: str) -> pki.Issued:
        return self.fleet.device(name, unit="gateways")

    def enroll(self, device: pki.Issued) -> str:
        serial = f"{device.certificate.serial_number:x}"
        import_manifest(self.enrollments, "sensor", read_manifest("b7.csv", f"serialNumber\n{serial}\n"))
        return serial

    def explain(self, capsys: pytest.CaptureFixture[str], device: pki.Issued) -> dict[str, Any]:
        capsys.readouterr()
        variables = [f"--env={name}={value}" for name, value in self.environment.items()]
        cert = certificate_id(device.certificate)
        assert main(["explain", cert, "--template-name", TEMPLATE_NAME, "--json", *variables]) == 0
        report: dict[str, Any] = json.loads(capsys.readouterr().out)
        return report


@pytest.fixture
def stack(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Stack:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    enrollment_table = create_enrollment_table(dynamodb, "jitr-enrollment")
    decision_table = create_decision_table(dynamodb)
    answer: dict[str, Any] = {"decision": "allow"}
    EmbeddedIoT(region=REGION).functions.add("fleet-hook", lambda _event: answer)
    products = (
        Product(
            name="sensor",
            cas=(fleet.ca_id,),
            select={"OU": "sensors"},
            template=TEMPLATE_NAME,
            enrollment=EnrollmentSettings(by="serialNumber"),
        ),
        Product(
            name="gateway",
            cas=(fleet.ca_id,),
            select={"OU": "gateways"},
            template=TEMPLATE_NAME,
            hook=HookSettings(function="fleet-hook", timeout_seconds=2),
        ),
    )
    environment = Settings(
        template_name=TEMPLATE_NAME,
        products=products,
        enrollment_table=enrollment_table,
        decision_table=decision_table,
    ).to_environment()
    for name, value in environment.items():  # the handler's, for a decision to record
        monkeypatch.setenv(name, value)
    return Stack(fleet, Enrollments(enrollment_table, dynamodb), answer, environment)


def test_a_device_not_enrolled_names_its_product_and_says_to_import_its_manifest_changing_nothing(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    device = stack.sensor("sensor-1")
    stack.fleet.first_connect(device)
    serial = f"{device.certificate.serial_number:x}"

    report = stack.explain(capsys, device)

    now = report["now"]
    assert (now["outcome"], now["reason"], now["product"]) == ("HELD", "NOT_ENROLLED", "sensor")
    assert now["enrollment"] == f"serialNumber {serial} of sensor: NOT_ENROLLED (no manifest)"
    assert report["advice"] == (
        f"import the manifest that lists serialNumber {serial}: jitr enroll import MANIFEST --product sensor"
        " (the import decides it again)"
    )
    cert = certificate_id(device.certificate)
    assert any(e.startswith(f"remember {cert} on serialNumber {serial} of sensor") for e in now["would"])
    # read-only: nothing is remembered on the identity's item
    assert stack.enrollments.look_up("sensor", "serialNumber", serial).waiting == ()


def test_a_disabled_device_says_how_to_enable_it(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    device = stack.sensor("sensor-2")
    serial = stack.enroll(device)
    disable(stack.enrollments, IoT(stack.fleet.account.client), "sensor", "serialNumber", serial)
    stack.fleet.first_connect(device)

    report = stack.explain(capsys, device)

    assert (report["now"]["reason"], report["now"]["product"]) == ("DEVICE_DISABLED", "sensor")
    assert report["now"]["enrollment"].startswith(f"serialNumber {serial} of sensor: DISABLED (b7.csv line 2")
    assert report["advice"] == (
        f"if the device may connect again: jitr enroll enable {serial} --by serialNumber --product sensor"
        " (the enable decides it again)"
    )


def test_a_device_no_product_claims_says_to_add_a_product_for_its_ca_and_subject(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    device = stack.fleet.device("meter-1", unit="meters")
    stack.fleet.first_connect(device)

    report = stack.explain(capsys, device)

    assert (report["now"]["outcome"], report["now"]["reason"]) == ("HELD", "NO_PRODUCT")
    assert "product" not in report["now"]
    assert report["advice"].startswith(f"add a product that serves CA {stack.fleet.ca_id} (with a select matching")
    assert "OU=meters" in report["advice"]


def test_a_device_the_hook_holds_gives_the_hooks_reason(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    stack.hook_answer.update(decision="hold", reason="awaiting customer acceptance")
    device = stack.gateway("gw-1")
    stack.fleet.first_connect(device)

    report = stack.explain(capsys, device)

    now = report["now"]
    assert (now["reason"], now["product"], now["hook"]) == (
        "HELD_BY_HOOK",
        "gateway",
        "hold: awaiting customer acceptance",
    )
    assert report["advice"].startswith(
        "the decision hook of product gateway holds it (awaiting customer acceptance): settle that with the hook's"
    )


def test_a_provisioned_device_shows_the_product_and_enrollment_it_was_decided_with(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    device = stack.sensor("sensor-3")
    stack.enroll(device)
    assert handler(sqs_event(stack.fleet.first_connect(device)), FakeLambdaContext()) == {"batchItemFailures": []}

    report = stack.explain(capsys, device)

    recorded = report["recorded"]
    assert (recorded["outcome"], recorded["product"]) == ("PROVISIONED", "sensor")
    assert "b7.csv line 2" in recorded["enrollment"]
    assert report["advice"] is None
    # and the text form gives each answer a line under its decision
    variables = [f"--env={name}={value}" for name, value in stack.environment.items()]
    assert main(["explain", certificate_id(device.certificate), *variables]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("recorded     PROVISIONED"))
    assert lines[at + 1] == "  product    sensor"
    assert lines[at + 2].startswith("  enrollment serialNumber ")
