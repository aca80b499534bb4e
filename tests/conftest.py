"""Shared fixtures: a development PKI built with cryptography, and the embedded AWS IoT (moto, completed)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest
from hypothesis import HealthCheck, settings

from jitr_tools import embedded, pki
from jitr_tools.embedded import EmbeddedIoT
from tests.support import Account

# `make test` (and CI) draws the same examples on every run, so its result depends on the code alone and a failure is
# reproducible; generation is allowed to be slow on a slow machine. `HYPOTHESIS_PROFILE=explore` draws new examples
# on each run, to look for inputs the fixed ones miss.
settings.register_profile(
    "repeatable", derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("explore", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


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


@pytest.fixture
def account(aws_env: None) -> Iterator[Account]:
    with embedded.mock():
        iot = EmbeddedIoT()
        acct = Account(iot, boto3.client("iot", region_name=iot.region))
        iot.subscribe("$aws/events/certificates/registered/+", lambda _t, event: acct.events.append(event))
        yield acct
