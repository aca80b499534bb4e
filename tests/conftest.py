"""Shared fixtures: a development PKI built with cryptography, and the embedded AWS IoT (moto, completed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from jitr.policy import account_arn, device_policy_document
from jitr_tools import pki
from jitr_tools.embedded import EmbeddedIoT

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
DEVICE_POLICY = json.dumps(
    device_policy_document(account_arn("us-east-1", "123456789012"))
)  # the stack's, for the tests


def data(name: str) -> str:
    return (DATA / name).read_text()


@pytest.fixture(scope="session")
def root_ca() -> pki.Issued:
    return pki.make_ca("test root CA")


@pytest.fixture(scope="session")
def issuing_ca(root_ca: pki.Issued) -> pki.Issued:
    return pki.make_ca("test issuing CA", issuer=root_ca)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


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


@pytest.fixture
def account(aws_env: None) -> Iterator[Account]:
    with mock_aws():
        iot = EmbeddedIoT()
        acct = Account(iot, boto3.client("iot", region_name=iot.region))
        iot.subscribe("$aws/events/certificates/registered/+", lambda _t, event: acct.events.append(event))
        yield acct
