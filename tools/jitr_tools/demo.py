"""`make demo`: a device's first connect on the embedded AWS IoT, from CA registration to an ACTIVE certificate."""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from . import pki
from .embedded import EmbeddedIoT
from .lambda_context import LambdaContext

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "jitr-device.json"
DEVICE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:ClientId}"}],
}


def _invoke_handler(event: dict[str, Any]) -> dict[str, Any]:
    """The real handler, as Lambda would call it with one raw event; its JSON logs and metrics kept off the screen."""
    os.environ.setdefault("JITR_TEMPLATE_NAME", "jitr-device")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    from jitr_handlers import registration

    registration.logger.registered_handler.setStream(io.StringIO())
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return registration.handler(event, LambdaContext(function_name="jitr-demo"))  # type: ignore[arg-type]


def run_demo() -> int:
    body = TEMPLATE.read_text()
    with mock_aws():
        iot = EmbeddedIoT()
        client = boto3.client("iot", region_name=iot.region)
        ca = pki.make_ca()
        code = client.get_registration_code()["registrationCode"]
        verification = pki.make_verification_certificate(ca, code)
        ca_id = client.register_ca_certificate(
            caCertificate=ca.pem,
            verificationCertificate=verification.pem,
            setAsActive=True,
            allowAutoRegistration=True,
        )["certificateId"]
        print(f"1. registered CA {ca_id[:12]}... (ACTIVE, auto-registration ENABLE, no registrationConfig)")
        client.create_policy(policyName="jitr-device", policyDocument=json.dumps(DEVICE_POLICY))
        events: list[dict[str, Any]] = []
        iot.subscribe("$aws/events/certificates/registered/+", lambda _topic, event: events.append(event))

        device = pki.make_device(ca, "sensor-0001")
        first = iot.connect(device.pem)
        print(f"2. device sensor-0001 connects: {first.outcome} (certificate {first.certificate_id[:12]}...)")
        event = events[-1]
        print(f"3. event on $aws/events/certificates/registered/{ca_id[:12]}...: status {event['certificateStatus']}")

        client.create_provisioning_template(
            templateName="jitr-device",
            templateBody=body,
            provisioningRoleArn=f"arn:aws:iam::{iot.account_id}:role/jitr-provisioning",
            enabled=True,
        )
        decision = _invoke_handler(event)
        print(f"4. handler: {decision['outcome']} as thing {decision['thingName']} (chain, profile, template checked)")
        status = client.describe_certificate(certificateId=first.certificate_id)["certificateDescription"]["status"]
        again = iot.connect(device.pem)
        print(f"5. certificate is {status}; the device reconnects: {again.outcome}")

        weak = pki.make_device(ca, "sensor-0002", key="rsa1024")
        iot.connect(weak.pem)
        refused = _invoke_handler(events[-1])
        print(f"6. a device with a 1024-bit RSA key: {refused['outcome']} {refused['reason']}: {refused['message']}")
        refused_status = client.describe_certificate(certificateId=events[-1]["certificateId"])
        print(f"   its certificate is now {refused_status['certificateDescription']['status']}")
        return 0 if again.outcome == "CONNECTED" else 1
