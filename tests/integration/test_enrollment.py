"""Enrollment against moto's DynamoDB and SQS and the embedded IoT: the table's adapter as the handler uses it, imports
that are idempotent and resumable and requeue held devices, and the reversible quarantine of disable and enable."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from jitr.certificates import certificate_id
from jitr.enrollment import (
    Action,
    Enrollments,
    EnrollmentUnavailable,
    Intake,
    NotEnrolled,
    Status,
    Waiting,
    disable,
    enable,
    import_manifest,
    read_manifest,
)
from jitr.iot import IoT
from jitr.provisioning import RegistrationEvent
from jitr_handlers.registration import handler
from jitr_tools.cli import main
from jitr_tools.rehearsing.rehearsal import create_enrollment_table
from tests.integration.support import FakeLambdaContext, Fleet, sqs_event

PRODUCT = "sensor"
TABLE = "jitr-enrollment"
ACCOUNT = "123456789012"


@dataclass
class Stack:
    fleet: Fleet
    dynamodb: Any
    enrollments: Enrollments
    sqs: Any
    queue_url: str
    iot: IoT

    @property
    def intake(self) -> Intake:
        return Intake(self.queue_url, self.sqs, lambda c, ca: RegistrationEvent.payload(c, ca, ACCOUNT))

    def requeued(self) -> list[dict[str, Any]]:
        bodies = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return bodies

    def items(self) -> list[dict[str, Any]]:
        return list(self.dynamodb.scan(TableName=TABLE)["Items"])


@pytest.fixture
def stack(fleet: Fleet) -> Stack:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="jitr-intake")["QueueUrl"]
    return Stack(
        fleet, dynamodb, Enrollments(create_enrollment_table(dynamodb), dynamodb), sqs, url, IoT(fleet.account.client)
    )


def manifest(*serials: str, name: str = "batch-7.csv") -> Any:
    return read_manifest(name, "serialNumber,batch\n" + "".join(f"{s},B7\n" for s in serials))


def provision(stack: Stack, serial: str) -> str:
    """A device provisioned by the handler (ACTIVE), recorded on its enrollment as the handler records it."""
    device = stack.fleet.device(f"sensor-{serial}")
    assert handler(sqs_event(stack.fleet.first_connect(device)), FakeLambdaContext()) == {"batchItemFailures": []}
    certificate = certificate_id(device.certificate)
    assert stack.fleet.status(certificate) == "ACTIVE"
    stack.enrollments.provisioned(PRODUCT, "serialNumber", serial, certificate)
    return certificate


def test_a_held_certificate_waits_without_enrolling_and_an_import_sends_it_again(stack: Stack) -> None:
    assert stack.enrollments.look_up(PRODUCT, "serialNumber", "a1").status == Status.NOT_ENROLLED
    stack.enrollments.wait(PRODUCT, "serialNumber", "a1", "c" * 64, "d" * 64)
    stack.enrollments.wait(PRODUCT, "serialNumber", "a1", "c" * 64, "d" * 64)  # a duplicate event: remembered once
    held = stack.enrollments.look_up(PRODUCT, "serialNumber", "a1")
    assert held.status == Status.NOT_ENROLLED
    assert held.waiting == (Waiting("c" * 64, "d" * 64),)
    assert [e.value for e in stack.enrollments.list(PRODUCT, Status.NOT_ENROLLED)] == ["a1"]

    report = import_manifest(stack.enrollments, PRODUCT, manifest("A1", "b2"), intake=stack.intake)

    assert (report.imported, report.skipped, report.refused, report.requeued) == (2, 0, 0, 1)
    enrolled = stack.enrollments.look_up(PRODUCT, "serialNumber", "a1")
    assert (enrolled.status, enrolled.manifest, enrolled.line, enrolled.batch) == (
        Status.ENROLLED,
        "batch-7.csv",
        2,
        "B7",
    )
    [event] = stack.requeued()
    assert RegistrationEvent.model_validate(event).certificate_id == "c" * 64
    assert event["caCertificateId"] == "d" * 64
    assert event["awsAccountId"] == ACCOUNT


def test_the_held_are_remembered_up_to_a_bound(stack: Stack) -> None:
    for n in range(20):
        stack.enrollments.wait(PRODUCT, "commonName", "x", f"{n:064x}", "d" * 64)
    assert len(stack.enrollments.look_up(PRODUCT, "commonName", "x").waiting) == 16


def test_a_re_import_skips_every_row_and_never_enables_a_disabled_device(stack: Stack) -> None:
    import_manifest(stack.enrollments, PRODUCT, manifest("1", "2", "3"))
    disable(stack.enrollments, stack.iot, PRODUCT, "serialNumber", "2")

    again = import_manifest(stack.enrollments, PRODUCT, manifest("1", "2", "3", "4", name="batch-8.csv"))

    assert (again.imported, again.skipped) == (1, 3)
    assert stack.enrollments.look_up(PRODUCT, "serialNumber", "2").status == Status.DISABLED
    assert stack.enrollments.look_up(PRODUCT, "serialNumber", "1").manifest == "batch-7.csv"  # where it came from
    assert [e.value for e in stack.enrollments.list(PRODUCT, Status.ENROLLED)] == ["1", "3", "4"]


class FailingAfter:
    """The DynamoDB client, failing its writes after `n` have succeeded (a throttle that outlasted the retries)."""

    def __init__(self, client: Any, n: int) -> None:
        self.client, self.left, self.written = client, n, 0

    def update_item(self, **kwargs: Any) -> Any:
        if self.left == 0:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem")
        self.left -= 1
        answer = self.client.update_item(**kwargs)
        self.written += 1
        return answer


def test_an_import_stopped_partway_is_resumed_by_running_it_again(stack: Stack) -> None:
    rows = manifest(*(f"{n:x}" for n in range(1, 11)))
    failing = FailingAfter(stack.dynamodb, 4)

    first = import_manifest(Enrollments(TABLE, failing), PRODUCT, rows)
    counting = FailingAfter(stack.dynamodb, len(rows.rows))
    second = import_manifest(Enrollments(TABLE, counting), PRODUCT, rows)

    assert (first.imported, first.skipped) == (4, 0)
    assert first.error is not None
    assert "stopped at line 6" in first.error
    assert (second.imported, second.skipped, second.error) == (6, 4, None)
    assert first.imported + second.imported == len(rows.rows)
    assert second.imported + second.skipped == len(rows.rows)
    assert len(stack.items()) == 10
    assert failing.written + counting.written == len(rows.rows)  # no row written twice


def test_a_malformed_manifest_imports_nothing(stack: Stack) -> None:
    bad = read_manifest("m.csv", "serialNumber\n01\nxyz\n02\n01\n")
    report = import_manifest(stack.enrollments, PRODUCT, bad)
    assert (report.imported, report.skipped, report.refused, report.rows) == (0, 0, 2, 4)
    assert stack.items() == []


def test_disable_quarantines_the_provisioned_certificate_and_enable_releases_it(stack: Stack) -> None:
    import_manifest(stack.enrollments, PRODUCT, manifest("5"))
    certificate = provision(stack, "5")

    disabled = disable(stack.enrollments, stack.iot, PRODUCT, "serialNumber", "5")
    assert (disabled.action, disabled.certificate_status) == (Action.QUARANTINED, "ACTIVE")
    assert stack.fleet.status(certificate) == "INACTIVE"
    assert stack.enrollments.look_up(PRODUCT, "serialNumber", "5").quarantined
    assert disable(stack.enrollments, stack.iot, PRODUCT, "serialNumber", "5").action is None  # again: nothing more

    stack.enrollments.wait(PRODUCT, "serialNumber", "5", "e" * 64, stack.fleet.ca_id)  # held while disabled
    enabled = enable(stack.enrollments, stack.iot, PRODUCT, "serialNumber", "5", stack.intake)
    assert (enabled.action, enabled.requeued) == (Action.RELEASED, 1)
    assert stack.fleet.status(certificate) == "ACTIVE"
    after = stack.enrollments.look_up(PRODUCT, "serialNumber", "5")
    assert (after.status, after.quarantined) == (Status.ENROLLED, False)
    assert [e["certificateId"] for e in stack.requeued()] == ["e" * 64]


def test_enable_never_releases_what_jitr_did_not_quarantine_nor_a_revoked_certificate(stack: Stack) -> None:
    import_manifest(stack.enrollments, PRODUCT, manifest("6", "7"))
    held_by_operator, revoked = provision(stack, "6"), provision(stack, "7")
    stack.fleet.account.client.update_certificate(certificateId=held_by_operator, newStatus="INACTIVE")
    assert disable(stack.enrollments, stack.iot, PRODUCT, "serialNumber", "6").action is None
    disable(stack.enrollments, stack.iot, PRODUCT, "serialNumber", "7")
    stack.fleet.account.client.update_certificate(certificateId=revoked, newStatus="REVOKED")

    assert enable(stack.enrollments, stack.iot, PRODUCT, "serialNumber", "6", None).action is None
    assert enable(stack.enrollments, stack.iot, PRODUCT, "serialNumber", "7", None).action is None

    assert stack.fleet.status(held_by_operator) == "INACTIVE"
    assert stack.fleet.status(revoked) == "REVOKED"


def test_disable_of_an_identity_never_imported_changes_nothing(stack: Stack) -> None:
    with pytest.raises(NotEnrolled, match="not enrolled in product sensor"):
        disable(stack.enrollments, stack.iot, PRODUCT, "serialNumber", "99")
    assert stack.items() == []


def test_provisioned_ends_the_wait(stack: Stack) -> None:
    import_manifest(stack.enrollments, PRODUCT, manifest("8"))
    stack.enrollments.wait(PRODUCT, "serialNumber", "8", "f" * 64, "d" * 64)
    stack.enrollments.provisioned(PRODUCT, "serialNumber", "8", "f" * 64)
    found = stack.enrollments.look_up(PRODUCT, "serialNumber", "8")
    assert (found.waiting, found.provisioned_certificate_id) == ((), "f" * 64)


def test_every_table_failure_is_enrollment_unavailable(stack: Stack) -> None:
    missing = Enrollments("no-such-table", stack.dynamodb)
    with pytest.raises(EnrollmentUnavailable, match="no-such-table: ResourceNotFoundException"):
        missing.look_up(PRODUCT, "serialNumber", "1")
    with pytest.raises(EnrollmentUnavailable):
        missing.wait(PRODUCT, "serialNumber", "1", "c" * 64, "d" * 64)
    with pytest.raises(EnrollmentUnavailable):
        missing.provisioned(PRODUCT, "serialNumber", "1", "c" * 64)


def jitr(*argv: str) -> list[str]:
    return [*argv, "--product", PRODUCT, "--table", TABLE]


def test_jitr_enroll_import_says_what_it_imported_skipped_and_refused(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, bad = tmp_path / "batch-1.json", tmp_path / "batch-2.csv"
    good.write_text(json.dumps([{"commonName": "sensor-1", "batch": "B1"}, {"commonName": "sensor-2"}]))
    bad.write_text("commonName\nsensor-3\n\nsensor-3\n")
    stack.enrollments.wait(PRODUCT, "commonName", "sensor-2", "c" * 64, "d" * 64)

    assert main(jitr("enroll", "import", str(good), "--queue-url", stack.queue_url)) == 0
    assert capsys.readouterr().out.strip() == (
        "batch-1.json: 2 rows: imported 2, skipped 0 (already enrolled or disabled), refused 0;"
        " 1 held certificates sent again"
    )
    assert main(jitr("enroll", "import", str(good), "--json")) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == 2
    assert main(jitr("enroll", "import", str(bad))) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"jitr: {bad}: refused, nothing imported: 1 malformed of 2 rows",
        "  line 4: duplicate of line 2 (sensor-3)",
    ]
    assert [e["certificateId"] for e in stack.requeued()] == ["c" * 64]


def test_jitr_enroll_list_disable_and_enable(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    import_manifest(stack.enrollments, PRODUCT, manifest("5", "6"))
    certificate = provision(stack, "5")
    capsys.readouterr()

    assert main(jitr("enroll", "disable", "05")) == 0
    assert capsys.readouterr().out.strip() == "serialNumber 5 of sensor: DISABLED; its certificate set INACTIVE"
    assert stack.fleet.status(certificate) == "INACTIVE"
    assert main(jitr("enroll", "list", "--status", "DISABLED")) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.split() == ["identity", "status", "manifest", "batch", "certificate", "held"]
    assert row.split() == ["serialNumber=5", "DISABLED", "batch-7.csv:2", "B7", certificate, "(quarantined)", "0"]
    assert main(jitr("enroll", "enable", "5", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["action"] == "RELEASED"
    assert stack.fleet.status(certificate) == "ACTIVE"
    assert main(jitr("enroll", "list", "--json")) == 0
    assert [json.loads(line)["status"] for line in capsys.readouterr().out.splitlines()] == ["ENROLLED", "ENROLLED"]
    assert main(jitr("enroll", "enable", "77")) == 2
    assert capsys.readouterr().err.strip() == "jitr: '77' is not enrolled in product sensor (import its manifest first)"


def test_a_quarantine_and_its_release_are_published_as_decision_events(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.integration.test_decision_events import Subscriber

    subscriber = Subscriber("fleet")
    import_manifest(stack.enrollments, PRODUCT, manifest("5"))
    certificate = provision(stack, "5")
    assert main(jitr("enroll", "disable", "5", "--event-bus", "fleet", "--stack", "JitrProd")) == 0
    assert main(jitr("enroll", "disable", "5", "--event-bus", "fleet")) == 0  # already quarantined: nothing new
    assert main(jitr("enroll", "enable", "5", "--event-bus", "fleet", "--stack", "JitrProd")) == 0
    events = subscriber.received()
    assert [e["detail-type"] for e in events] == ["Device Quarantined", "Device Released"]
    quarantined, released = (e["detail"] for e in events)
    assert (quarantined["product"], quarantined["certificateId"], quarantined["stack"]) == (
        PRODUCT,
        certificate,
        "JitrProd",
    )
    assert (quarantined["outcome"], quarantined["reason"]) == ("INACTIVE", "DEVICE_DISABLED")
    assert (released["outcome"], released["reason"]) == ("ACTIVE", None)
    assert quarantined["eventId"] != released["eventId"]
    assert main(jitr("enroll", "disable", "5", "--event-bus", "no-such-bus")) == 1
    assert "its event was not published" in capsys.readouterr().err
