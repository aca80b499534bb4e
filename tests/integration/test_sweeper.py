"""The sweeper: a device whose every registration event was lost (the rule could not deliver) is still decided, within
a bounded number of runs however large the CA and however many certificates are pending on purpose."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from jitr.certificates import certificate_id
from jitr_handlers import sweeper
from jitr_handlers.registration import handler
from jitr_handlers.sweeper import CURSOR_PREFIX, PAGE_SIZE, SweepClients, SweepSettings, sweep
from jitr_tools import pki
from jitr_tools.embedded import EmbeddedIoT
from jitr_tools.rehearsing.rehearsal import create_decision_table
from tests.integration.support import FakeLambdaContext, Fleet, sqs_event

LATER = datetime.now(UTC) + timedelta(hours=1)  # the sweep runs an hour after the devices connected
LONG_AGO = datetime.now(UTC) - timedelta(days=1)  # when a loaded fleet's newest certificate was created
ACCOUNT = "123456789012"


@dataclass
class ShrinkingContext(FakeLambdaContext):
    """A Lambda context whose remaining time falls by `per_page_ms` with every ListCertificatesByCA call: a run that
    lists pages as slowly as AWS paces them, with no clock involved."""

    iot: EmbeddedIoT | None = None
    per_page_ms: int = 0
    listed_before: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.listed_before = self.pages()

    def pages(self) -> int:
        assert self.iot is not None
        return self.iot.state.calls["ListCertificatesByCA"]

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms - self.per_page_ms * (self.pages() - self.listed_before)


@pytest.fixture
def queue() -> tuple[Any, str]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    return sqs, sqs.create_queue(QueueName="jitr-intake")["QueueUrl"]


@pytest.fixture
def table(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> str:
    name = create_decision_table(boto3.client("dynamodb", region_name="us-east-1"))
    monkeypatch.setenv("JITR_DECISION_TABLE", name)  # the registration handler records its decisions there
    return name


@pytest.fixture
def clients(fleet: Fleet, queue: tuple[Any, str]) -> SweepClients:
    return SweepClients(fleet.account.client, queue[0], boto3.client("dynamodb", region_name="us-east-1"))


@pytest.fixture
def sweeper_env(fleet: Fleet, queue: tuple[Any, str], table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweeper's function as the stack configures it, unpaced (tests do not wait for AWS's quota)."""
    for name, value in {
        "JITR_SWEEP_CA_IDS": fleet.ca_id,
        "JITR_INTAKE_QUEUE_URL": queue[1],
        "JITR_SWEEP_MIN_AGE_SECONDS": "900",
        "JITR_SWEEP_MAX_PER_RUN": "500",
        "JITR_SWEEP_LIST_TPS": "1000",
    }.items():
        monkeypatch.setenv(name, value)


def _received(queue: tuple[Any, str]) -> list[dict[str, Any]]:
    sqs, url = queue
    bodies: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _swept_ids(queue: tuple[Any, str]) -> list[str]:
    return [str(event["certificateId"]) for event in _received(queue)]


def _load(
    fleet: Fleet, count: int, pending: set[int], issuer: pki.Issued | None = None, ca_id: str | None = None
) -> list[str]:
    """A CA's fleet of `count` certificates created a minute apart, the newest a day ago, ACTIVE but for the indexes
    in `pending` (0 is the newest, first in the sweeper's order). Returns their ids, newest first."""
    certificates = [
        (
            pki.make_device(issuer or fleet.ca, f"fleet-{i}").pem,
            "PENDING_ACTIVATION" if i in pending else "ACTIVE",
            LONG_AGO - timedelta(minutes=i),
        )
        for i in range(count)
    ]
    return fleet.account.iot.load_certificates(ca_id or fleet.ca_id, certificates)


def test_a_device_whose_events_were_all_lost_is_swept_and_then_provisioned(
    fleet: Fleet, lambda_context: FakeLambdaContext, queue: tuple[Any, str], table: str, clients: SweepClients
) -> None:
    # Given a device registered PENDING_ACTIVATION whose event never reached the queue (nobody took it), and one
    # already provisioned
    lost = fleet.device("sensor-lost")
    fleet.first_connect(lost)
    served = fleet.device("sensor-served")
    assert handler(sqs_event(fleet.first_connect(served)), lambda_context) == {"batchItemFailures": []}
    settings = SweepSettings((fleet.ca_id,), queue[1], table, min_age_s=900)

    # When the sweeper runs an hour later
    result = sweep(settings, clients, ACCOUNT, now=LATER)

    # Then only the pending one is put on the queue, as the rule would have
    assert (result.swept, result.complete, result.failed) == (1, True, 0)
    (event,) = _received(queue)
    assert event["certificateId"] == certificate_id(lost.certificate)
    assert event["caCertificateId"] == fleet.ca_id
    assert event["certificateStatus"] == "PENDING_ACTIVATION"
    # and the handler decides it like any other event
    assert handler(sqs_event(event), lambda_context) == {"batchItemFailures": []}
    assert fleet.status(certificate_id(lost.certificate)) == "ACTIVE"


def test_a_certificate_younger_than_the_minimum_age_is_left_to_the_rule(
    fleet: Fleet, queue: tuple[Any, str], table: str, clients: SweepClients
) -> None:
    fleet.first_connect(fleet.device("sensor-new"))
    result = sweep(SweepSettings((fleet.ca_id,), queue[1], table, min_age_s=900), clients, ACCOUNT)
    assert result.swept == 0
    assert _received(queue) == []


def test_listing_stops_while_the_invocation_has_time_left_and_sends_what_it_found(
    fleet: Fleet, queue: tuple[Any, str], sweeper_env: None
) -> None:
    # Given a CA of five pages with a lost device on the first and one on the last, and an invocation whose time
    # runs out as it lists: 150 s left, each page taking 30 s
    ids = _load(fleet, 5 * PAGE_SIZE, pending={3, 5 * PAGE_SIZE - 2})
    context = ShrinkingContext(remaining_ms=150_000, iot=fleet.account.iot, per_page_ms=30_000)

    # When the sweeper runs
    result = sweeper.handler({}, context)

    # Then it listed while more than the margin was left (150, 120 and 90 s: three pages), and sent what it found
    assert context.pages() - context.listed_before == 3
    assert context.get_remaining_time_in_millis() / 1000 <= sweeper.LISTING_MARGIN_S
    assert (result["swept"], result["complete"]) == (1, False)
    assert _swept_ids(queue) == [ids[3]]
    # and the next run goes on from the fourth page, so the device on the last one is swept too
    following = ShrinkingContext(remaining_ms=150_000, iot=fleet.account.iot, per_page_ms=30_000)
    assert sweeper.handler({}, following)["complete"] is True
    assert _swept_ids(queue) == [ids[-2]]
    assert following.pages() - following.listed_before == 2


def test_certificates_pending_on_purpose_do_not_take_a_lost_devices_place(
    fleet: Fleet,
    lambda_context: FakeLambdaContext,
    queue: tuple[Any, str],
    sweeper_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an older device whose event was lost, then more refused devices than a run sends, which the handler
    # decided with a rejection action of NONE (so they stay PENDING_ACTIVATION, on purpose)
    (lost,) = _load(fleet, 1, pending={0})
    monkeypatch.setenv("JITR_REJECTION_ACTION", "NONE")
    monkeypatch.setenv("JITR_SWEEP_MIN_AGE_SECONDS", "0")
    monkeypatch.setenv("JITR_SWEEP_MAX_PER_RUN", "3")
    refused = [fleet.first_connect(fleet.device(f"weak-{i}", key="rsa1024")) for i in range(5)]
    for event in refused:
        assert handler(event, lambda_context)["outcome"] == "REJECTED"
        assert fleet.status(event["certificateId"]) == "PENDING_ACTIVATION"

    # When the sweeper runs once
    result = sweeper.handler({}, FakeLambdaContext(remaining_ms=300_000))

    # Then the lost device is swept, and none of those the decision table holds as refused
    assert _swept_ids(queue) == [lost]
    assert result["swept"] == 1
    assert result["decided"] == 5


def test_every_pending_certificate_is_reached_within_the_stated_runs_from_the_cursor_on(
    fleet: Fleet, queue: tuple[Any, str], sweeper_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given seven newer certificates left pending that nothing decides (their decisions keep failing, or their records
    # expired) and an older lost device, and runs that send at most 3 events each
    monkeypatch.setenv("JITR_SWEEP_MAX_PER_RUN", "3")
    ids = _load(fleet, 10, pending={0, 1, 2, 3, 4, 5, 6, 8})
    lost = ids[8]

    # When the sweeper runs ceil(8 / 3) = 3 times
    runs = [sweeper.handler({}, FakeLambdaContext(remaining_ms=300_000)) for _ in range(3)]
    swept = _swept_ids(queue)

    # Then each run went on from where the last stopped, and every pending certificate was reached, the lost one too
    assert lost in swept
    assert sorted(swept) == sorted(ids[i] for i in (0, 1, 2, 3, 4, 5, 6, 8))
    assert [r["complete"] for r in runs] == [False, False, True]
    # and the next pass starts again from the top
    sweeper.handler({}, FakeLambdaContext(remaining_ms=300_000))
    assert _swept_ids(queue) == ids[:3]


def test_reading_the_decision_table_adds_nothing_to_the_client_per_certificate(
    fleet: Fleet, queue: tuple[Any, str], table: str, clients: SweepClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a page of pending certificates, each to be looked up in the decision table, and a watch on the hooks
    # registered on the DynamoDB client (Powertools adds one at every persistence layer it builds: one per lookup
    # would pile up over a run, and every request runs them all)
    _load(fleet, 6, pending=set(range(6)))
    registered: list[str] = []
    register = clients.dynamodb.meta.events.register

    def watched(event_name: str, *args: Any, **kwargs: Any) -> Any:
        registered.append(event_name)
        return register(event_name, *args, **kwargs)

    monkeypatch.setattr(clients.dynamodb.meta.events, "register", watched)
    # When the sweeper looks each one up
    result = sweep(SweepSettings((fleet.ca_id,), queue[1], table), clients, ACCOUNT)
    # Then the client gained at most the one hook of the run's one persistence layer, not one per certificate
    assert result.swept == 6
    assert len(registered) <= 1


def test_several_cas_take_pages_in_turn_each_from_its_own_cursor(
    fleet: Fleet, queue: tuple[Any, str], sweeper_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a second CA, each CA of two pages with a lost device on its second, and time for two pages a run
    other = pki.make_ca("second issuing CA")
    other_id = fleet.account.register_ca(other)
    monkeypatch.setenv("JITR_SWEEP_CA_IDS", f"{fleet.ca_id},{other_id}")
    first = _load(fleet, 2 * PAGE_SIZE, pending={PAGE_SIZE + 1})
    second = _load(fleet, 2 * PAGE_SIZE, pending={PAGE_SIZE + 2}, issuer=other, ca_id=other_id)

    # When the sweeper runs twice, each run with time for two pages
    for _ in range(2):
        sweeper.handler({}, ShrinkingContext(remaining_ms=100_000, iot=fleet.account.iot, per_page_ms=20_000))

    # Then each CA was listed to its end, one page each per run, and both lost devices were swept
    assert sorted(_swept_ids(queue)) == sorted([first[PAGE_SIZE + 1], second[PAGE_SIZE + 2]])


def test_a_marker_aws_no_longer_accepts_starts_the_pass_again_from_the_top(
    fleet: Fleet, queue: tuple[Any, str], table: str, sweeper_env: None
) -> None:
    ids = _load(fleet, 3, pending={1})
    boto3.client("dynamodb", region_name="us-east-1").put_item(
        TableName=table, Item={"id": {"S": f"{CURSOR_PREFIX}#{fleet.ca_id}"}, "marker": {"S": "ZXhwaXJlZA=="}}
    )
    assert sweeper.handler({}, FakeLambdaContext(remaining_ms=300_000))["complete"] is True
    assert _swept_ids(queue) == [ids[1]]


def test_a_run_with_less_time_than_the_margin_lists_nothing(
    fleet: Fleet, queue: tuple[Any, str], sweeper_env: None
) -> None:
    _load(fleet, 3, pending={1})
    context = ShrinkingContext(remaining_ms=int(sweeper.LISTING_MARGIN_S * 1000), iot=fleet.account.iot)
    result = sweeper.handler({}, context)
    assert context.pages() == context.listed_before
    assert result == {"swept": 0, "complete": False, "failed": 0, "listed": 0, "decided": 0, "held": 0}


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({}, "JITR_INTAKE_QUEUE_URL"),
        ({"JITR_INTAKE_QUEUE_URL": "q"}, "JITR_DECISION_TABLE"),
        ({"JITR_INTAKE_QUEUE_URL": "q", "JITR_DECISION_TABLE": "t", "JITR_SWEEP_MAX_PER_RUN": "0"}, "must be positive"),
        ({"JITR_INTAKE_QUEUE_URL": "q", "JITR_DECISION_TABLE": "t", "JITR_SWEEP_MIN_AGE_SECONDS": "soon"}, "misconfig"),
    ],
)
def test_a_misconfigured_sweeper_says_which_variable(variables: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SweepSettings.from_environment(variables)


def test_a_held_device_is_not_taken_for_a_lost_one_and_sent_every_pass(
    fleet: Fleet,
    lambda_context: FakeLambdaContext,
    queue: tuple[Any, str],
    sweeper_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a device held (its CA's only product selects another OU: NO_PRODUCT), and a device whose event was lost
    (lost,) = _load(fleet, 1, pending={0})
    monkeypatch.setenv("JITR_SWEEP_MIN_AGE_SECONDS", "0")
    monkeypatch.setenv(
        "JITR_PRODUCTS",
        json.dumps([{"name": "meter", "cas": [fleet.ca_id], "select": {"OU": "meter"}, "template": "jitr-device"}]),
    )
    held = fleet.first_connect(fleet.device("gw-1", unit="gateway"))
    assert handler(held, lambda_context)["reason"] == "NO_PRODUCT"

    # When the sweeper runs
    result = sweeper.handler({}, FakeLambdaContext(remaining_ms=300_000))

    # Then only the lost device is sent: the held one's events arrive, its next connect decides it again
    assert _swept_ids(queue) == [lost]
    assert (result["swept"], result["held"]) == (1, 1)
