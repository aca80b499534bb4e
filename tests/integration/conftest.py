"""The handler against the embedded IoT: an account with a registered CA, the stored template and the device policy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from jitr_handlers import registration
from jitr_tools import pki
from jitr_tools.embedded import Connect
from jitr_tools.lambda_context import LambdaContext
from tests.conftest import DEVICE_POLICY, REPO, Account

TEMPLATE_NAME = "jitr-device"


FakeLambdaContext = LambdaContext  # the product's own stand-in, shared with `jitr demo` and `jitr simulate`


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture(autouse=True)
def handler_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("JITR_TEMPLATE_NAME", TEMPLATE_NAME)
    monkeypatch.setenv("JITR_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "jitr")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    registration.use(None)  # built from this test's environment on first use
    yield
    registration.use(None)
    registration.metrics.clear_metrics()
    AmazonCloudWatchEMFProvider().clear_metrics()


@dataclass
class Fleet:
    account: Account
    ca: pki.Issued
    ca_id: str

    def device(self, name: str = "sensor-1", **options: Any) -> pki.Issued:
        return pki.make_device(self.ca, name, **options)

    def first_connect(self, device: pki.Issued) -> dict[str, Any]:
        before = len(self.account.events)
        if self.account.iot.connect(device.pem).outcome == Connect.CLOSED:
            # AWS's TLS handshake would refuse it too; the handler must refuse it on its own as well
            self.account.iot.register_pending(device.pem, self.ca_id)
        assert len(self.account.events) == before + 1
        return self.account.events[-1]

    def status(self, certificate_id: str) -> str:
        return str(
            self.account.client.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"]
        )


@pytest.fixture
def fleet(account: Account, issuing_ca: pki.Issued) -> Fleet:
    ca_id = account.register_ca(issuing_ca)
    account.client.create_policy(policyName="jitr-device", policyDocument=DEVICE_POLICY)
    account.client.create_provisioning_template(
        templateName=TEMPLATE_NAME,
        templateBody=(REPO / "templates" / "jitr-device.json").read_text(),
        provisioningRoleArn="arn:aws:iam::123456789012:role/jitr-provisioning",
        enabled=True,
    )
    return Fleet(account, issuing_ca, ca_id)


def sqs_event(*bodies: str | dict[str, Any]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m-{i}",
                "receiptHandle": f"r-{i}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jitr-intake",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


@pytest.fixture
def hostile_fleet(fleet: Fleet) -> Fleet:
    """The fleet whose CA signed the hostile certificates of `tests.unit.test_hostile_certificates`."""
    from tests.unit.test_hostile_certificates import CA

    return Fleet(fleet.account, CA, fleet.account.register_ca(CA))
