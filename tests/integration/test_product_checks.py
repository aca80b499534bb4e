"""A product's own checks through the handler on the embedded AWS: enrollment (a device not yet enrolled is held and
decided again when its manifest is imported; a disabled one is held; disabling a provisioned one quarantines it,
enabling releases it) and the decision hook (allow with parameters, deny, hold, and a failing hook retried)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from jitr.enrollment import Enrollments, EnrollmentSettings, Intake, disable, enable, import_manifest, read_manifest
from jitr.hook import HookSettings
from jitr.iot import IoT
from jitr.products import Product
from jitr.provisioning import RegistrationEvent
from jitr.settings import Settings
from jitr_tools.embedded import EmbeddedIoT
from jitr_tools.rehearsing.rehearsal import create_enrollment_table
from tests.integration.support import TEMPLATE_NAME, FakeLambdaContext, Fleet, sqs_event
from tests.support import REPO

ACCOUNT = "123456789012"


def serve(monkeypatch: pytest.MonkeyPatch, product: Product, **more: str) -> None:
    from jitr_handlers import registration

    environment = Settings(template_name=TEMPLATE_NAME, products=(product,)).to_environment()
    monkeypatch.setenv("JITR_PRODUCTS", environment["JITR_PRODUCTS"])
    for name, value in more.items():
        monkeypatch.setenv(name, value)
    registration.use(None)


def decide(event: dict[str, Any]) -> dict[str, Any]:
    from jitr_handlers.registration import current

    return current().handle_one(event).to_dict()


# -- enrollment ---


@pytest.fixture
def enrolled_fleet(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> tuple[Fleet, Enrollments, Intake]:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    table = create_enrollment_table(dynamodb)
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="jitr-intake")["QueueUrl"]
    product = Product(
        name="sensor", cas=(fleet.ca_id,), template=TEMPLATE_NAME, enrollment=EnrollmentSettings(by="serialNumber")
    )
    serve(monkeypatch, product, JITR_ENROLLMENT_TABLE=table)
    intake = Intake(queue, sqs, lambda c, ca: RegistrationEvent.payload(c, ca, ACCOUNT))
    return fleet, Enrollments(table, dynamodb), intake


def requeued(intake: Intake) -> list[dict[str, Any]]:
    messages = intake.client.receive_message(QueueUrl=intake.queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_a_device_not_yet_enrolled_is_held_and_provisioned_when_its_manifest_is_imported(
    enrolled_fleet: tuple[Fleet, Enrollments, Intake],
) -> None:
    fleet, enrollments, intake = enrolled_fleet
    device = fleet.device("sensor-1", serial_number="ignored")
    serial = f"{device.certificate.serial_number:x}"
    event = fleet.first_connect(device)
    # the record is done (no dead letter) and the certificate left pending
    from jitr_handlers.registration import handler

    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": []}
    held = decide(event)
    assert (held["outcome"], held["reason"], held["product"]) == ("HELD", "NOT_ENROLLED", "sensor")
    assert fleet.status(event["certificateId"]) == "PENDING_ACTIVATION"
    # the import enrolls it and puts its event on the intake again
    report = import_manifest(enrollments, "sensor", read_manifest("b7.csv", f"serialNumber\n{serial}\n"), intake=intake)
    assert (report.imported, report.requeued) == (1, 1)
    (again,) = requeued(intake)
    decision = decide(again)
    assert decision["outcome"] == "PROVISIONED"
    assert "b7.csv line 2" in decision["enrollment"]
    assert enrollments.look_up("sensor", "serialNumber", serial).provisioned_certificate_id == event["certificateId"]


def test_a_disabled_device_is_held_and_a_provisioned_one_quarantined_then_released(
    enrolled_fleet: tuple[Fleet, Enrollments, Intake],
) -> None:
    fleet, enrollments, intake = enrolled_fleet
    first, second = fleet.device("sensor-1"), fleet.device("sensor-2")
    serials = [f"{d.certificate.serial_number:x}" for d in (first, second)]
    manifest = read_manifest("b8.json", json.dumps(serials), by="serialNumber")
    import_manifest(enrollments, "sensor", manifest, intake=intake)
    provisioned = decide(fleet.first_connect(first))
    assert provisioned["outcome"] == "PROVISIONED"
    iot = IoT(fleet.account.client)
    # disabling the provisioned device sets its certificate INACTIVE; disabling the other holds it on connect
    disable(enrollments, iot, "sensor", "serialNumber", serials[0])
    disable(enrollments, iot, "sensor", "serialNumber", serials[1])
    assert fleet.status(provisioned["certificateId"]) == "INACTIVE"
    held = decide(fleet.first_connect(second))
    assert (held["outcome"], held["reason"]) == ("HELD", "DEVICE_DISABLED")
    # enabling both: the quarantined certificate is ACTIVE again, the held one is decided again and provisioned
    enable(enrollments, iot, "sensor", "serialNumber", serials[0], intake)
    enable(enrollments, iot, "sensor", "serialNumber", serials[1], intake)
    assert fleet.status(provisioned["certificateId"]) == "ACTIVE"
    (again,) = requeued(intake)
    assert decide(again)["outcome"] == "PROVISIONED"


def test_an_unreadable_enrollment_table_is_retried_never_the_devices_fault(
    enrolled_fleet: tuple[Fleet, Enrollments, Intake], monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet, _, _ = enrolled_fleet
    monkeypatch.setenv("JITR_ENROLLMENT_TABLE", "no-such-table")
    monkeypatch.setenv("JITR_MAX_ATTEMPTS", "1")
    from jitr_handlers import registration

    registration.use(None)
    event = fleet.first_connect(fleet.device("sensor-1"))
    decision = decide(event)
    assert (decision["outcome"], decision["reason"]) == ("RETRY", "ENROLLMENT_UNAVAILABLE")
    assert fleet.status(event["certificateId"]) == "PENDING_ACTIVATION"


# -- the decision hook ---


def site_template() -> str:
    document = json.loads((REPO / "templates/jitr-device.json").read_text())
    document["Parameters"]["Site"] = {"Type": "String", "Default": "unknown"}
    document["Resources"]["thing"]["Properties"]["AttributePayload"] = {"site": {"Ref": "Site"}}
    return json.dumps(document)


@pytest.fixture
def hooked(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> tuple[Fleet, list[dict[str, Any]], dict[str, Any]]:
    """A product whose hook answers what `answer` holds, recording what it was asked in `asked`."""
    fleet.account.client.create_provisioning_template(
        templateName="t-site",
        templateBody=site_template(),
        provisioningRoleArn="arn:aws:iam::123456789012:role/jitr-provisioning",
    )
    asked: list[dict[str, Any]] = []
    answer: dict[str, Any] = {}

    def hook(event: dict[str, Any]) -> Any:
        asked.append(event)
        if answer.get("raise"):
            raise RuntimeError("allow-list unavailable")
        return answer

    EmbeddedIoT().functions.add("fleet-hook", hook)
    hook_settings = HookSettings(function="fleet-hook", timeout_seconds=2, parameters=("Site",))
    serve(monkeypatch, Product(name="gateway", cas=(fleet.ca_id,), template="t-site", hook=hook_settings))
    return fleet, asked, answer


def test_a_hook_allows_with_the_parameters_it_may_set_and_is_told_the_facts(
    hooked: tuple[Fleet, list[dict[str, Any]], dict[str, Any]],
) -> None:
    fleet, asked, answer = hooked
    answer.update(decision="allow", parameters={"Site": "plant-3"})
    event = fleet.first_connect(fleet.device("gw-1"))
    decision = decide(event)
    assert (decision["outcome"], decision["hook"]) == ("PROVISIONED", "allow")
    assert fleet.account.client.describe_thing(thingName="gw-1")["attributes"] == {"site": "plant-3"}
    (request,) = asked
    assert (request["product"], request["certificateId"]) == ("gateway", event["certificateId"])
    assert "BEGIN CERTIFICATE" not in json.dumps(request)


@pytest.mark.parametrize(
    ("answer", "outcome", "reason", "status"),
    [
        ({"decision": "deny", "reason": "unit failed end-of-line test"}, "REJECTED", "DENIED_BY_HOOK", "REVOKED"),
        ({"decision": "hold", "reason": "awaiting customer"}, "HELD", "HELD_BY_HOOK", "PENDING_ACTIVATION"),
        ({"raise": True}, "RETRY", "HOOK_FAILED", "PENDING_ACTIVATION"),
        ({"decision": "allow", "parameters": {"PolicyName": "x"}}, "RETRY", "HOOK_FAILED", "PENDING_ACTIVATION"),
        ({"decision": "maybe"}, "RETRY", "HOOK_FAILED", "PENDING_ACTIVATION"),
    ],
)
def test_a_hooks_deny_is_the_fleets_refusal_a_hold_is_held_and_no_usable_answer_is_retried(
    hooked: tuple[Fleet, list[dict[str, Any]], dict[str, Any]],
    answer: dict[str, Any],
    outcome: str,
    reason: str,
    status: str,
) -> None:
    fleet, _, current = hooked
    current.update(answer)
    event = fleet.first_connect(fleet.device("gw-2"))
    decision = decide(event)
    assert (decision["outcome"], decision["reason"]) == (outcome, reason)
    assert fleet.status(event["certificateId"]) == status
    if "reason" in answer:
        assert answer["reason"] in decision["message"]
