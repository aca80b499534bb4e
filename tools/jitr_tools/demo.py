"""`make demo`: a device's first connect on the embedded AWS IoT, from CA registration to an ACTIVE certificate."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
from moto import mock_aws

from jitr.certificates import certificate_parameters
from jitr.templates import render_template

from . import pki
from .embedded import EmbeddedIoT

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "jitr-device.json"
DEVICE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:ClientId}"}],
}


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
        events: list[dict[str, object]] = []
        iot.subscribe("$aws/events/certificates/registered/+", lambda _topic, event: events.append(event))

        device = pki.make_device(ca, "sensor-0001")
        first = iot.connect(device.pem)
        print(f"2. device sensor-0001 connects: {first.outcome} (certificate {first.certificate_id[:12]}...)")
        event = events[-1]
        print(f"3. event on $aws/events/certificates/registered/{ca_id[:12]}...: status {event['certificateStatus']}")

        plan = render_template(body, certificate_parameters(device.certificate))
        thing = plan.thing
        print(
            f"4. template {TEMPLATE.name} renders: thing {thing.properties['ThingName'] if thing else '-'}, "
            f"{len(plan.policies)} policy, certificate Status {plan.certificate.properties['Status']}"
        )  # type: ignore[union-attr]
        arns = client.register_thing(templateBody=body, parameters=plan.parameters)["resourceArns"]
        print(f"5. RegisterThing: {', '.join(sorted(arns))} provisioned")
        status = client.describe_certificate(certificateId=first.certificate_id)["certificateDescription"]["status"]
        again = iot.connect(device.pem)
        print(f"6. certificate is {status}; the device reconnects: {again.outcome}")
        return 0 if again.outcome == "CONNECTED" else 1
