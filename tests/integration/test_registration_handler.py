"""The registration handler invoked as Lambda invokes it, against the embedded IoT."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import pytest

from jitr.certificates import certificate_id
from jitr_handlers.registration import RedeliverRecord, handler
from jitr_tools import pki
from jitr_tools.embedded import Connect
from jitr_tools.embedded.errors import (
    ResourceRegistrationFailureException,
    ServiceUnavailableException,
    ThrottlingException,
)
from tests.integration.support import FakeLambdaContext, Fleet, sqs_event


def test_good_device_becomes_a_thing_with_its_policy_and_an_active_certificate(
    fleet: Fleet, lambda_context: FakeLambdaContext
) -> None:
    # Given a device's first connect
    device = fleet.device("sensor-1")
    event = fleet.first_connect(device)

    # When the event reaches the handler through SQS
    response = handler(sqs_event(event), lambda_context)

    # Then
    assert response == {"batchItemFailures": []}
    cert_id = certificate_id(device.certificate)
    assert fleet.status(cert_id) == "ACTIVE"
    client = fleet.account.client
    assert client.describe_thing(thingName="sensor-1")["attributes"] == {"provisionedBy": "jitr"}
    arn = client.describe_certificate(certificateId=cert_id)["certificateDescription"]["certificateArn"]
    assert [p["policyName"] for p in client.list_attached_policies(target=arn)["policies"]] == ["jitr-device"]
    assert fleet.account.iot.connect(device.pem).outcome == Connect.CONNECTED


def test_raw_event_returns_the_decision(fleet: Fleet, lambda_context: FakeLambdaContext) -> None:
    event = fleet.first_connect(fleet.device("raw-1"))
    assert handler(event, lambda_context)["outcome"] == "PROVISIONED"
    assert handler(event, lambda_context)["outcome"] == "ALREADY_ACTIVE"


def test_the_same_event_twice_gives_one_thing(fleet: Fleet, lambda_context: FakeLambdaContext) -> None:
    event = fleet.first_connect(fleet.device("dup-1"))
    assert handler(sqs_event(event, event), lambda_context) == {"batchItemFailures": []}
    assert handler(sqs_event(event), lambda_context) == {"batchItemFailures": []}
    assert [t["thingName"] for t in fleet.account.client.list_things()["things"]] == ["dup-1"]
    assert fleet.account.iot.state.calls["RegisterThing"] == 1


def test_ten_concurrent_copies_give_exactly_one_thing(fleet: Fleet, lambda_context: FakeLambdaContext) -> None:
    fleet.account.iot.set_latency("RegisterThing", 0.05)  # widen the race window
    event = fleet.first_connect(fleet.device("race-1"))
    outcomes: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(10)

    def deliver() -> None:
        barrier.wait()
        try:
            for _ in range(20):  # SQS delivers a failed record again (a CONFLICT while the first copy is in flight)
                try:
                    outcomes.append(handler(event, FakeLambdaContext())["outcome"])
                    return
                except RedeliverRecord:
                    continue
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then: no error, every copy accounted for, and one effect: one thing, one ACTIVE certificate
    assert errors == []
    assert len(outcomes) == 10
    assert set(outcomes) <= {"PROVISIONED", "ALREADY_ACTIVE"}
    assert "PROVISIONED" in outcomes
    assert [t["thingName"] for t in fleet.account.client.list_things()["things"]] == ["race-1"]
    assert fleet.status(event["certificateId"]) == "ACTIVE"
    assert fleet.account.iot.state.succeeded["RegisterThing"] == outcomes.count("PROVISIONED")


def _expired(fleet: Fleet) -> pki.Issued:
    return fleet.device("old", not_before=pki.now() - dt.timedelta(days=400), days=30)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda f: f.device("forged", signer=pki.new_key()), "UNTRUSTED_CHAIN"),
        (_expired, "EXPIRED"),
        (lambda f: f.device("future", not_before=pki.now() + dt.timedelta(days=2)), "NOT_YET_VALID"),
        (lambda f: f.device("weak", key="rsa1024"), "WEAK_KEY"),
        (lambda f: pki.resign(f.device("sha1"), f.ca.key, hash_name="sha1"), "WEAK_SIGNATURE"),
        (lambda f: pki.resign(f.device("v1"), f.ca.key, version1=True), "LEGACY_V1_CERTIFICATE"),
        (lambda f: f.device("server", eku=pki.SERVER_AUTH_ONLY), "NOT_CLIENT_AUTH"),
        (lambda f: f.device("dev.example.com"), "INVALID_DEVICE_NAME"),
    ],
)
def test_rejections_revoke_the_certificate_and_say_why(
    fleet: Fleet, lambda_context: FakeLambdaContext, make: Any, reason: str
) -> None:
    device = make(fleet)
    event = fleet.first_connect(device)
    decision = handler(event, lambda_context)
    assert (decision["outcome"], decision["reason"]) == ("REJECTED", reason)
    assert decision["message"]
    assert fleet.status(certificate_id(device.certificate)) == "REVOKED"
    assert fleet.account.client.list_things()["things"] == []
    assert fleet.account.iot.connect(device.pem).outcome == Connect.CLOSED


def test_event_whose_ca_does_not_match_is_rejected_without_touching_the_device(
    fleet: Fleet, lambda_context: FakeLambdaContext
) -> None:
    device = fleet.device("liar")
    event = {**fleet.first_connect(device), "caCertificateId": "0" * 64}
    decision = handler(event, lambda_context)
    assert (decision["outcome"], decision["reason"]) == ("REJECTED", "CA_MISMATCH")
    assert fleet.status(certificate_id(device.certificate)) == "PENDING_ACTIVATION"


@pytest.mark.parametrize(("action", "status"), [("INACTIVE", "INACTIVE"), ("NONE", "PENDING_ACTIVATION")])
def test_rejection_action_is_configurable(
    fleet: Fleet, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch, action: str, status: str
) -> None:
    monkeypatch.setenv("JITR_REJECTION_ACTION", action)
    device = fleet.device("weak", key="rsa1024")
    assert handler(fleet.first_connect(device), lambda_context)["reason"] == "WEAK_KEY"
    assert fleet.status(certificate_id(device.certificate)) == status


def test_cn_pattern_from_settings(
    fleet: Fleet, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JITR_CN_PATTERN", r"sensor-\d{4}")
    assert handler(fleet.first_connect(fleet.device("sensor-0001")), lambda_context)["outcome"] == "PROVISIONED"
    assert handler(fleet.first_connect(fleet.device("camera-1")), lambda_context)["reason"] == "CN_MISMATCH"


def test_revoked_and_unknown_certificates_are_skipped(fleet: Fleet, lambda_context: FakeLambdaContext) -> None:
    device = fleet.device("gone")
    event = fleet.first_connect(device)
    fleet.account.client.update_certificate(certificateId=event["certificateId"], newStatus="REVOKED")
    assert handler(event, lambda_context)["reason"] == "CERTIFICATE_REVOKED"
    unknown = {**event, "certificateId": "f" * 64}
    assert handler(unknown, lambda_context)["reason"] == "UNKNOWN_CERTIFICATE"


def test_throttling_is_retried_by_botocore_to_success(fleet: Fleet, lambda_context: FakeLambdaContext) -> None:
    fleet.account.iot.inject_faults(
        "RegisterThing", ThrottlingException("slow down"), ServiceUnavailableException("busy")
    )
    event = fleet.first_connect(fleet.device("patient"))
    assert handler(event, lambda_context)["outcome"] == "PROVISIONED"
    assert fleet.account.iot.state.calls["RegisterThing"] == 3


def test_throttling_beyond_the_retries_fails_the_record_for_redelivery(
    fleet: Fleet, lambda_context: FakeLambdaContext
) -> None:
    fleet.account.iot.inject_faults("RegisterThing", *[ThrottlingException("no") for _ in range(4)])
    event = fleet.first_connect(fleet.device("later"))
    assert handler(sqs_event(event), lambda_context) == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert fleet.status(event["certificateId"]) == "PENDING_ACTIVATION"
    assert handler(sqs_event(event), lambda_context) == {"batchItemFailures": []}  # the redelivery succeeds


def test_a_registerthing_refusal_is_never_blamed_on_the_device(fleet: Fleet, lambda_context: FakeLambdaContext) -> None:
    # AWS does not say whose fault a ResourceRegistrationFailure is (a missing group is the deployment's)
    fleet.account.iot.inject_faults("RegisterThing", ResourceRegistrationFailureException("group missing"))
    event = fleet.first_connect(fleet.device("innocent-1"))
    with pytest.raises(RedeliverRecord, match=r"PROVISIONING_REFUSED: .*group missing"):
        handler(event, lambda_context)
    assert fleet.status(event["certificateId"]) == "PENDING_ACTIVATION"


def test_broken_stored_template_blames_the_deployment_not_the_device(
    fleet: Fleet, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JITR_TEMPLATE_NAME", "missing-template")
    event = fleet.first_connect(fleet.device("innocent"))
    with pytest.raises(RedeliverRecord, match="RETRY"):
        handler(event, lambda_context)
    assert fleet.status(event["certificateId"]) == "PENDING_ACTIVATION"


def test_malformed_records_fail_alone_while_the_rest_of_the_batch_proceeds(
    fleet: Fleet, lambda_context: FakeLambdaContext
) -> None:
    good = fleet.first_connect(fleet.device("fine"))
    missing = {k: v for k, v in good.items() if k != "caCertificateId"}
    wrong_type = {**good, "timestamp": "yesterday"}
    oversized = {**good, "padding": "x" * 5000}
    response = handler(sqs_event(missing, good, "not json {", wrong_type, oversized), lambda_context)
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    assert failed == {"m-0", "m-2", "m-3", "m-4"}
    assert fleet.status(good["certificateId"]) == "ACTIVE"


def test_handler_over_http_against_the_embedded_endpoint(
    fleet: Fleet, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jitr_tools.embedded import serve

    device = fleet.device("http-1")
    event = fleet.first_connect(device)
    with serve() as endpoint:
        monkeypatch.setenv("JITR_IOT_ENDPOINT_URL", endpoint)
        assert handler(sqs_event(json.dumps(event)), lambda_context) == {"batchItemFailures": []}
    assert fleet.status(event["certificateId"]) == "ACTIVE"
