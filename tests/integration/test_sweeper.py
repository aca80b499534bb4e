"""The sweeper: a device whose every registration event was lost (the rule could not deliver) is still decided."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from jitr.certificates import certificate_id
from jitr_handlers.registration import handler
from jitr_handlers.sweeper import SweepSettings, sweep
from tests.integration.support import FakeLambdaContext, Fleet, sqs_event

LATER = datetime.now(UTC) + timedelta(hours=1)  # the sweep runs an hour after the devices connected


def _queue() -> tuple[Any, str]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    return sqs, sqs.create_queue(QueueName="jitr-intake")["QueueUrl"]


def _received(sqs: Any, url: str) -> list[dict[str, object]]:
    bodies: list[dict[str, object]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_a_device_whose_events_were_all_lost_is_swept_and_then_provisioned(
    fleet: Fleet, lambda_context: FakeLambdaContext
) -> None:
    # Given a device registered PENDING_ACTIVATION whose event never reached the queue (nobody took it), and one
    # already provisioned
    lost = fleet.device("sensor-lost")
    fleet.first_connect(lost)
    served = fleet.device("sensor-served")
    assert handler(sqs_event(fleet.first_connect(served)), lambda_context) == {"batchItemFailures": []}
    sqs, url = _queue()
    settings = SweepSettings((fleet.ca_id,), url, min_age_s=900)

    # When the sweeper runs an hour later
    result = sweep(settings, fleet.account.client, sqs, "123456789012", now=LATER)

    # Then only the pending one is put on the queue, as the rule would have
    assert (result.swept, result.complete, result.failed) == (1, True, 0)
    (event,) = _received(sqs, url)
    assert event["certificateId"] == certificate_id(lost.certificate)
    assert event["caCertificateId"] == fleet.ca_id
    assert event["certificateStatus"] == "PENDING_ACTIVATION"
    # and the handler decides it like any other event
    assert handler(sqs_event(event), lambda_context) == {"batchItemFailures": []}
    assert fleet.status(certificate_id(lost.certificate)) == "ACTIVE"


def test_a_certificate_younger_than_the_minimum_age_is_left_to_the_rule(fleet: Fleet) -> None:
    fleet.first_connect(fleet.device("sensor-new"))
    sqs, url = _queue()
    result = sweep(SweepSettings((fleet.ca_id,), url, min_age_s=900), fleet.account.client, sqs, "123456789012")
    assert result.swept == 0
    assert _received(sqs, url) == []


def test_each_run_is_bounded_and_the_rest_waits_for_the_next(fleet: Fleet) -> None:
    for i in range(5):
        fleet.first_connect(fleet.device(f"sensor-{i}"))
    sqs, url = _queue()
    settings = SweepSettings((fleet.ca_id,), url, min_age_s=0, max_per_run=3)
    result = sweep(settings, fleet.account.client, sqs, "123456789012", now=LATER)
    assert (result.swept, result.complete) == (3, False)  # the bound stopped it; the next run goes on
    assert len(_received(sqs, url)) == 3
    # and a run out of time stops listing too
    late = sweep(settings, fleet.account.client, sqs, "123456789012", now=LATER, list_until=0.0)
    assert (late.swept, late.complete) == (0, False)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({}, "JITR_INTAKE_QUEUE_URL"),
        ({"JITR_INTAKE_QUEUE_URL": "q", "JITR_SWEEP_MAX_PER_RUN": "0"}, "must be positive"),
        ({"JITR_INTAKE_QUEUE_URL": "q", "JITR_SWEEP_MIN_AGE_SECONDS": "soon"}, "misconfigured"),
    ],
)
def test_a_misconfigured_sweeper_says_which_variable(variables: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SweepSettings.from_environment(variables)
