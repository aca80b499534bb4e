"""AWS's default quotas for every operation the flow calls, enforced by the embedded IoT from one table; RegisterThing's
own calls count against theirs; and the CA record read once per environment within its time-to-live."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from jitr.iot import IoT
from jitr_tools.embedded.quotas import AWS_DEFAULT_TPS, DEVICE_DEFAULT_TPS
from tests.integration.support import Fleet
from tests.support import REPO


def test_the_table_applies_to_every_operation_scaled_by_one_factor(fleet: Fleet) -> None:
    applied = fleet.account.iot.apply_aws_quotas(factor=5)
    state = fleet.account.iot.state
    assert applied == {name: tps * 5 for name, tps in {**AWS_DEFAULT_TPS, **DEVICE_DEFAULT_TPS}.items()}
    assert {op: bucket.rate for op, bucket in state.quotas.items()} == {op: applied[op] for op in AWS_DEFAULT_TPS}
    assert {name: bucket.rate for name, bucket in state.device_quotas.items()} == {
        "Connect": 2500,
        "AutoRegistration": 75,
    }
    for operation in ("RegisterThing", "DescribeCertificate", "DescribeCACertificate", "UpdateCertificate"):
        assert AWS_DEFAULT_TPS[operation] == 10  # AWS's documented defaults


def test_registerthings_own_calls_count_against_their_quotas(fleet: Fleet) -> None:
    # Given CreateThing's quota spent, RegisterThing for a new thing is throttled before it changes anything
    iot = fleet.account.iot
    iot.set_quota("CreateThing", per_second=0.001, burst=0)
    event = fleet.first_connect(fleet.device("inner-1"))
    client = boto3.client("iot", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}))
    parameters = {"AWS::IoT::Certificate::CommonName": "inner-1", "AWS::IoT::Certificate::Id": event["certificateId"]}
    with pytest.raises(ClientError) as caught:
        client.register_thing(templateBody=(REPO / "templates" / "jitr-device.json").read_text(), parameters=parameters)
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert client.list_things()["things"] == []
    assert fleet.status(event["certificateId"]) == "PENDING_ACTIVATION"
    assert (iot.state.calls["CreateThing"], iot.state.throttled["CreateThing"]) == (1, 1)
    # and with room for them, each inner call is counted under its own operation
    iot.set_quota("CreateThing", per_second=15)
    client.register_thing(templateBody=(REPO / "templates" / "jitr-device.json").read_text(), parameters=parameters)
    calls = iot.state.calls
    assert (calls["CreateThing"], calls["AttachPolicy"], calls["AttachThingPrincipal"], calls["UpdateCertificate"]) == (
        2,
        1,
        1,
        1,
    )


def test_the_ca_record_is_read_once_per_environment_within_its_ttl(fleet: Fleet) -> None:
    now = [0.0]
    iot = IoT(boto3.client("iot", region_name="us-east-1"), clock=lambda: now[0], ca_ttl_s=60)
    calls = fleet.account.iot.state.calls
    for _ in range(3):
        assert iot.describe_ca_certificate(fleet.ca_id).status == "ACTIVE"
    assert calls["DescribeCACertificate"] == 1
    fleet.account.client.update_ca_certificate(certificateId=fleet.ca_id, newStatus="INACTIVE")
    now[0] = 59.0
    assert iot.describe_ca_certificate(fleet.ca_id).status == "ACTIVE"  # within the TTL: the cached record
    now[0] = 60.0
    assert iot.describe_ca_certificate(fleet.ca_id).status == "INACTIVE"  # a deactivated CA counts within the TTL
    assert calls["DescribeCACertificate"] == 2


def test_each_environment_takes_its_share_of_every_quota() -> None:
    from jitr.settings import Settings

    settings = Settings(template_name="t", register_thing_tps=20, max_concurrency=10, iot_quotas={"DescribeThing": 50})
    rates = settings.rates_per_s
    assert rates["RegisterThing"] == rates["DescribeCertificate"] == rates["ListThingPrincipals"] == 2.0  # 10 x 2 / 10
    assert rates["UpdateCertificate"] == 2.0
    assert rates["DescribeThing"] == 5.0  # a configured quota wins over the scaled default
    assert Settings(template_name="t").rates_per_s == {}  # no quota given: unpaced


@pytest.mark.slow
def test_a_fleet_at_awss_quotas_for_every_operation_is_never_throttled_by_jitrs_own_traffic() -> None:
    from jitr_tools.rehearsing.simulate import Options, simulate

    # Given AWS's default quota of every operation enforced (scaled x2), and the handler pacing to its share of each.
    # (Paced for RegisterThing alone, this fleet's refusals, whose RegisterThing slot is given back, drove
    # DescribeCertificate and UpdateCertificate past their quotas: 28 and 4 throttles.)
    options = Options(devices=200, invalid_fraction=0.3, quota=20, seed=12, aws_quotas=True)
    result = simulate(options)
    # Then every device is accounted for and no AWS IoT operation was throttled
    assert result.lost == 0
    assert result.unexpected == []
    assert sum(result.throttles_by_operation.values()) == 0
    assert result.calls_by_operation["RegisterThing"] == result.provisioned
    assert result.calls_by_operation["UpdateCertificate"] == result.rejected  # jitr's own: the rejections
    assert result.inner_calls_by_operation["UpdateCertificate"] == result.provisioned  # RegisterThing's
