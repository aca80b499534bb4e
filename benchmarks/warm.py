"""Warm per-event overhead of the handler with AWS IoT answering instantly (an in-memory botocore stand-in).

What is measured is jitr's own work per event: parsing, the adapter, chain validation, rendering, logging and
metrics. The stand-in returns the responses AWS would, with no network and no moto in the way.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import statistics
import time
from typing import Any

from botocore.exceptions import ClientError

from jitr.certificates import certificate_id
from jitr_tools import pki

EVENTS = 2000
TEMPLATE = (__import__("pathlib").Path(__file__).resolve().parents[1] / "templates" / "jitr-device.json").read_text()


class InstantIoT:
    """Answers the calls the handler makes for a new device, instantly: the certificate, its CA, the template, no
    thing yet (DescribeThing), RegisterThing, and the thing's one certificate afterwards (ListThingPrincipals)."""

    def __init__(self, device: pki.Issued, ca: pki.Issued) -> None:
        self.cert = {
            "certificateId": certificate_id(device.certificate),
            "status": "PENDING_ACTIVATION",
            "certificatePem": device.pem,
            "caCertificateId": certificate_id(ca.certificate),
        }
        self.ca = {"certificateId": self.cert["caCertificateId"], "status": "ACTIVE", "certificatePem": ca.pem}

    def describe_certificate(self, **_: Any) -> dict[str, Any]:
        return {"certificateDescription": self.cert}

    def describe_ca_certificate(self, **_: Any) -> dict[str, Any]:
        return {"certificateDescription": self.ca}

    def describe_provisioning_template(self, **_: Any) -> dict[str, Any]:
        return {"templateBody": TEMPLATE}

    def register_thing(self, **_: Any) -> dict[str, Any]:
        return {"resourceArns": {"thing": "arn:aws:iot:us-east-1:123456789012:thing/sensor-1"}}

    def describe_thing(self, **_: Any) -> dict[str, Any]:
        error = {"Error": {"Code": "ResourceNotFoundException", "Message": "thing sensor-1 does not exist"}}
        raise ClientError(error, "DescribeThing")

    def list_thing_principals(self, **_: Any) -> dict[str, Any]:
        return {"principals": [f"arn:aws:iot:us-east-1:123456789012:cert/{self.cert['certificateId']}"]}


def run(
    settings: Any = None,
    crls: Any = None,
    ca: pki.Issued | None = None,
    checks: Any = None,
    device: pki.Issued | None = None,
) -> dict[str, Any]:
    """The handler's warm per-event cost with `settings` (default: the stack's defaults), `crls` (the issuer CRLs
    this environment holds) and `checks` (its products' enrollment and hook adapters), for a new device of `ca`
    (`device`, or one named sensor-1)."""
    os.environ.update({"POWERTOOLS_TRACE_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"})
    from jitr.iot import IoT
    from jitr.settings import Settings
    from jitr_handlers import registration

    ca = ca or pki.make_ca("bench CA")
    device = device or pki.make_device(ca, "sensor-1")
    fake = InstantIoT(device, ca)
    iot = IoT(fake)
    environment = registration.Registration(
        settings or Settings(template_name="jitr-device"), iot_factory=lambda _: iot
    )
    if crls is not None:
        environment.crls = crls  # the environment's CRLs, already fetched (cached_property set)
    if checks is not None:
        environment.checks = checks  # the environment's enrollment and hook adapters (cached_property set)
    event = {
        "certificateId": fake.cert["certificateId"],
        "caCertificateId": fake.ca["certificateId"],
        "timestamp": 1767225600000,
        "certificateStatus": "PENDING_ACTIVATION",
        "awsAccountId": "123456789012",
        "certificateRegistrationTimestamp": None,
    }
    return measure(environment, event)


def measure(environment: Any, event: dict[str, Any]) -> dict[str, Any]:
    """EVENTS decisions of `event` after 100 for warm-up: p50, p99 and each step's median, in microseconds."""
    from jitr_handlers import registration
    from jitr_handlers.observability import logger, metrics

    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(io.StringIO())  # keep the cost of logging, not the output
    samples: list[float] = []
    steps: dict[str, list[float]] = {}
    with contextlib.redirect_stdout(io.StringIO()):
        for i in range(EVENTS + 100):
            parse_start = time.perf_counter()
            registration.parse_event(event)
            parse_s = time.perf_counter() - parse_start
            start = time.perf_counter()
            decision = environment.handle_one(event)
            elapsed = time.perf_counter() - start
            metrics.clear_metrics()
            if i >= 100:  # warm-up
                samples.append(elapsed)
                steps.setdefault("parse", []).append(parse_s * 1e6)
                for name, ms in decision.steps_ms.items():
                    steps.setdefault(name, []).append(ms * 1000)
    assert decision.outcome == "PROVISIONED", decision
    samples.sort()
    return {
        "events": EVENTS,
        "p50_us": round(statistics.median(samples) * 1e6, 1),
        "p99_us": round(samples[int(len(samples) * 0.99) - 1] * 1e6, 1),
        "steps_us": {name: round(statistics.median(values), 1) for name, values in steps.items()},
    }
