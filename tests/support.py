"""What every test tier shares: the repository's paths and data, the device policy, and an embedded account."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jitr.policy import account_arn, device_policy_document
from jitr_tools import pki
from jitr_tools.embedded import EmbeddedIoT

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
# the device policy the stack deploys, in the embedded account
DEVICE_POLICY = json.dumps(device_policy_document(account_arn("us-east-1", "123456789012")))


def data(name: str) -> str:
    return (DATA / name).read_text()


@dataclass
class Account:
    """The embedded IoT of one test, its boto3 client and the registration events it published."""

    iot: EmbeddedIoT
    client: Any
    events: list[dict[str, Any]] = field(default_factory=list)

    def register_ca(self, ca: pki.Issued, *, auto: bool = True, **extra: Any) -> str:
        code = self.client.get_registration_code()["registrationCode"]
        verification = pki.make_verification_certificate(ca, code)
        return str(
            self.client.register_ca_certificate(
                caCertificate=ca.pem,
                verificationCertificate=verification.pem,
                setAsActive=True,
                allowAutoRegistration=auto,
                **extra,
            )["certificateId"]
        )
