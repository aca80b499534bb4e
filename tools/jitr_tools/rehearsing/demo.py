"""`make demo`: a device's first connect on the embedded AWS IoT, from CA registration to an ACTIVE certificate."""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

import boto3

from jitr_tools import embedded, pki
from jitr_tools.embedded import EmbeddedIoT
from jitr_tools.rehearsing.rehearsal import create_decision_table, handler_environment, prepare_account


def run_demo() -> int:
    with embedded.mock(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        iot = EmbeddedIoT()
        client = boto3.client("iot", region_name=iot.region)
        ca = pki.make_ca()
        ca_id = prepare_account(client, ca, iot.account_id)
        print(f"1. registered CA {ca_id[:12]}... (ACTIVE, auto-registration ENABLE, no registrationConfig)")
        events: list[dict[str, Any]] = []
        iot.subscribe("$aws/events/certificates/registered/+", lambda _topic, event: events.append(event))

        table = create_decision_table(boto3.client("dynamodb", region_name=iot.region))
        with handler_environment(
            iot.region, io.StringIO(), function_name="jitr-demo", decision_table=table
        ) as new_environment:
            invoke = new_environment()

            def decide(event: dict[str, Any]) -> dict[str, Any]:
                with contextlib.redirect_stdout(io.StringIO()):  # the handler's EMF metric lines, as in Lambda
                    return dict(invoke(event))

            device = pki.make_device(ca, "sensor-0001")
            first = iot.connect(device.pem)
            print(f"2. device sensor-0001 connects: {first.outcome} (certificate {first.certificate_id[:12]}...)")
            event = events[-1]
            print(
                f"3. event on $aws/events/certificates/registered/{ca_id[:12]}...: status {event['certificateStatus']}"
            )
            decision = decide(event)
            print(
                f"4. handler: {decision['outcome']} as thing {decision['thingName']} (chain, profile, template checked)"
            )
            status = client.describe_certificate(certificateId=first.certificate_id)["certificateDescription"]["status"]
            again = iot.connect(device.pem)
            print(f"5. certificate is {status}; the device reconnects: {again.outcome}")

            weak = pki.make_device(ca, "sensor-0002", key="rsa1024")
            iot.connect(weak.pem)
            refused = decide(events[-1])
            print(
                f"6. a device with a 1024-bit RSA key: {refused['outcome']} {refused['reason']}: {refused['message']}"
            )
            refused_status = client.describe_certificate(certificateId=events[-1]["certificateId"])
            print(f"   its certificate is now {refused_status['certificateDescription']['status']}")
        return 0 if again.outcome == "CONNECTED" else 1
