"""What the integration tests share: the handler's fleet on the embedded IoT and SQS events."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from jitr_tools import pki
from jitr_tools.embedded import Connect
from jitr_tools.rehearsing.lambda_context import LambdaContext
from tests.support import Account

TEMPLATE_NAME = "jitr-device"
FakeLambdaContext = LambdaContext  # the product's own stand-in, shared with `jitr demo` and `jitr simulate`


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


def store_template(fleet: Fleet, monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], name: str) -> None:
    """Store `document` as the template the handler reads."""
    fleet.account.client.create_provisioning_template(
        templateName=name,
        templateBody=json.dumps(document),
        provisioningRoleArn="arn:aws:iam::123456789012:role/jitr-provisioning",
    )
    monkeypatch.setenv("JITR_TEMPLATE_NAME", name)


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
