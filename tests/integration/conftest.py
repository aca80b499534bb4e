"""The handler against the embedded IoT: an account with a registered CA, the stored template and the device policy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from jitr_handlers import registration
from jitr_tools import pki
from tests.integration.support import TEMPLATE_NAME, FakeLambdaContext, Fleet
from tests.support import DEVICE_POLICY, REPO, Account


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


@pytest.fixture
def hostile_fleet(fleet: Fleet) -> Fleet:
    """The fleet whose CA signed the hostile certificates of `tests.unit.test_hostile_certificates`."""
    from tests.hostile import CA

    return Fleet(fleet.account, CA, fleet.account.register_ca(CA))
