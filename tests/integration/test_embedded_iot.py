"""The embedded AWS IoT: what moto lacks or gets wrong, and a device's first connect."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from jitr.certificates import certificate_id
from jitr_tools import pki
from jitr_tools.embedded import Connect, EmbeddedIoT, serve
from jitr_tools.embedded.errors import ServiceUnavailableException, ThrottlingException
from tests.support import DEVICE_POLICY, Account, data


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


# -- RegisterThing ---


def test_seed_register_thing_example_runs_end_to_end(account: Account, issuing_ca: pki.Issued) -> None:
    # Given the account state the example assumes: a registered certificate, its policy and thing type
    account.register_ca(issuing_ca)
    device = pki.make_device(issuing_ca, "trial-1")
    assert account.iot.connect(device.pem).outcome == Connect.REGISTERED
    cert_id = certificate_id(device.certificate)
    account.client.create_policy(policyName="MyIotPolicy", policyDocument=DEVICE_POLICY)
    account.client.create_thing_type(thingTypeName="VirtualThings")
    seed = json.loads(data("register-thing-seed.json"))

    # When
    response = account.client.register_thing(
        templateBody=seed["templateBody"], parameters={**seed["parameters"], "AWS::IoT::Certificate::Id": cert_id}
    )

    # Then: thing, policy and certificate exist and are attached, the certificate ACTIVE
    assert response["resourceArns"] == {
        "thing": "arn:aws:iot:us-east-1:123456789012:thing/Register-thing-trial-1",
        "certificate": f"arn:aws:iot:us-east-1:123456789012:cert/{cert_id}",
    }
    assert response["certificatePem"] == device.pem
    thing = account.client.describe_thing(thingName="Register-thing-trial-1")
    assert thing["thingTypeName"] == "VirtualThings"
    cert_arn = response["resourceArns"]["certificate"]
    assert account.client.list_thing_principals(thingName="Register-thing-trial-1")["principals"] == [cert_arn]
    assert [p["policyName"] for p in account.client.list_attached_policies(target=cert_arn)["policies"]] == [
        "MyIotPolicy"
    ]
    assert account.client.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"] == "ACTIVE"
    assert account.iot.connect(device.pem).outcome == Connect.CONNECTED


@pytest.fixture
def pending(account: Account, issuing_ca: pki.Issued) -> str:
    account.register_ca(issuing_ca)
    device = pki.make_device(issuing_ca, "dev-1")
    account.iot.connect(device.pem)
    account.client.create_policy(policyName="jitr-device", policyDocument=DEVICE_POLICY)
    return certificate_id(device.certificate)


def test_project_template_provisions_and_is_idempotent(account: Account, pending: str) -> None:
    body = data("../../templates/jitr-device.json")
    params = {"AWS::IoT::Certificate::CommonName": "dev-1", "AWS::IoT::Certificate::Id": pending}
    first = account.client.register_thing(templateBody=body, parameters=params)
    second = account.client.register_thing(templateBody=body, parameters=params)
    assert first["resourceArns"] == second["resourceArns"]
    assert len(account.client.list_things()["things"]) == 1
    assert account.client.describe_thing(thingName="dev-1")["attributes"] == {"provisionedBy": "jitr"}


def test_document_policy_is_named_after_its_hash(account: Account, pending: str) -> None:
    body = data("intrinsics.json")
    account.client.create_thing_group(thingGroupName="lab-devices")
    account.client.register_thing(
        templateBody=body, parameters={"SerialNumber": "7", "Model": "X1_pro", "CertificateId": pending}
    )
    names = [p["policyName"] for p in account.client.list_policies()["policies"]]
    assert any(len(n) == 64 for n in names)
    groups = account.client.list_thing_groups_for_thing(thingName="X1_pro-7")["thingGroups"]
    assert [g["groupName"] for g in groups] == ["lab-devices"]


def test_missing_prerequisites_fail_without_changing_anything(account: Account, pending: str) -> None:
    with pytest.raises(ClientError) as caught:
        account.client.register_thing(
            templateBody=data("intrinsics.json"),
            parameters={"SerialNumber": "7", "Model": "X1", "CertificateId": pending},
        )
    assert error_code(caught) == "ResourceRegistrationFailureException"
    assert "lab-devices" in str(caught.value)
    assert account.client.list_things()["things"] == []
    assert (
        account.client.describe_certificate(certificateId=pending)["certificateDescription"]["status"]
        == "PENDING_ACTIVATION"
    )


def test_status_do_nothing_leaves_the_certificate_pending(account: Account, pending: str) -> None:
    account.client.create_thing_group(thingGroupName="onboarded")
    account.client.register_thing(
        templateBody=data("jitr-device.json"),
        parameters={
            "AWS::IoT::Certificate::CommonName": "dev-1",
            "AWS::IoT::Certificate::SerialNumber": "1",
            "AWS::IoT::Certificate::Id": pending,
        },
    )
    assert (
        account.client.describe_certificate(certificateId=pending)["certificateDescription"]["status"]
        == "PENDING_ACTIVATION"
    )


def test_override_fail_refuses_a_changed_thing_and_merge_merges(account: Account, pending: str) -> None:
    account.client.create_thing(thingName="dev-1", attributePayload={"attributes": {"old": "1"}})
    base = json.loads(data("../../templates/jitr-device.json"))
    params = {"AWS::IoT::Certificate::CommonName": "dev-1", "AWS::IoT::Certificate::Id": pending}
    account.client.register_thing(templateBody=json.dumps(base), parameters=params)
    assert account.client.describe_thing(thingName="dev-1")["attributes"] == {"old": "1", "provisionedBy": "jitr"}
    base["Resources"]["thing"]["OverrideSettings"] = {"AttributePayload": "FAIL"}
    base["Resources"]["thing"]["Properties"]["AttributePayload"] = {"provisionedBy": "other"}
    with pytest.raises(ClientError) as caught:
        account.client.register_thing(templateBody=json.dumps(base), parameters=params)
    assert error_code(caught) == "ResourceRegistrationFailureException"


def test_invalid_template_is_an_invalid_request(account: Account) -> None:
    with pytest.raises(ClientError) as caught:
        account.client.register_thing(templateBody='{"Resources": {"t": {"Type": "AWS::IoT::Nope"}}}', parameters={})
    assert error_code(caught) == "InvalidRequestException"
    assert "UNKNOWN_RESOURCE_TYPE" in str(caught.value)


def test_revoked_certificate_is_never_provisioned(account: Account, pending: str) -> None:
    account.client.update_certificate(certificateId=pending, newStatus="REVOKED")
    with pytest.raises(ClientError) as caught:
        account.client.register_thing(
            templateBody=data("../../templates/jitr-device.json"),
            parameters={"AWS::IoT::Certificate::CommonName": "dev-1", "AWS::IoT::Certificate::Id": pending},
        )
    assert error_code(caught) == "ResourceRegistrationFailureException"


def test_quota_and_injected_faults_raise_aws_errors(account: Account) -> None:
    account.iot.set_quota("RegisterThing", per_second=0.001, burst=1)
    account.iot.inject_faults("RegisterThing", ThrottlingException("injected"))
    client = boto3.client("iot", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}))
    with pytest.raises(ClientError) as caught:
        client.register_thing(templateBody="{}", parameters={})
    assert error_code(caught) == "ThrottlingException"
    assert "injected" in str(caught.value)
    with pytest.raises(ClientError) as caught:  # the burst of one token, then the quota
        client.register_thing(templateBody="{}", parameters={})
    assert error_code(caught) == "InvalidRequestException"
    with pytest.raises(ClientError) as caught:
        client.register_thing(templateBody="{}", parameters={})
    assert error_code(caught) == "ThrottlingException"
    assert account.iot.state.calls["RegisterThing"] == 3
    assert account.iot.state.throttled["RegisterThing"] == 1


# -- certificates, CAs and things --------------------------------------------------------------------------------


def test_ca_registration_rules(account: Account, root_ca: pki.Issued) -> None:
    code = account.client.get_registration_code()["registrationCode"]
    assert code == account.client.get_registration_code()["registrationCode"]
    assert re.fullmatch(r"[0-9a-f]{64}", code)

    with pytest.raises(ClientError) as caught:  # DEFAULT mode without a verification certificate
        account.client.register_ca_certificate(caCertificate=root_ca.pem, setAsActive=True)
    assert error_code(caught) == "InvalidRequestException"
    other = pki.make_ca("someone else")
    with pytest.raises(ClientError) as caught:  # verification certificate signed by another key
        account.client.register_ca_certificate(
            caCertificate=root_ca.pem, verificationCertificate=pki.make_verification_certificate(other, code).pem
        )
    assert error_code(caught) == "CertificateValidationException"

    ca_id = account.register_ca(root_ca)
    with pytest.raises(ClientError) as caught:
        account.register_ca(root_ca)
    assert error_code(caught) == "ResourceAlreadyExistsException"
    description = account.client.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]
    assert description["certificateArn"].endswith(f":cacert/{ca_id}")
    assert description["autoRegistrationStatus"] == "ENABLE"
    assert description["certificateMode"] == "DEFAULT"
    assert description["validity"]["notAfter"] == root_ca.certificate.not_valid_after_utc
    assert ca_id == certificate_id(root_ca.certificate)


def test_sni_only_ca_needs_no_verification_certificate(account: Account, root_ca: pki.Issued) -> None:
    ca_id = account.client.register_ca_certificate(
        caCertificate=root_ca.pem, setAsActive=True, allowAutoRegistration=True, certificateMode="SNI_ONLY"
    )["certificateId"]
    assert (
        account.client.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]["certificateMode"]
        == "SNI_ONLY"
    )


def test_certificate_transitions(account: Account, pending: str) -> None:
    description = account.client.describe_certificate(certificateId=pending)["certificateDescription"]
    assert description["caCertificateId"]
    for status in ("PENDING_ACTIVATION", "PENDING_TRANSFER"):
        with pytest.raises(ClientError) as caught:
            account.client.update_certificate(certificateId=pending, newStatus=status)
        assert error_code(caught) == "InvalidRequestException"
    account.client.update_certificate(certificateId=pending, newStatus="REVOKED")
    with pytest.raises(ClientError) as caught:
        account.client.update_certificate(certificateId=pending, newStatus="ACTIVE")
    assert error_code(caught) == "CertificateStateException"


def _list_all(account: Account, ca_id: str, **options: Any) -> list[str]:
    ids: list[str] = []
    marker: dict[str, str] = {}
    while True:
        page = account.client.list_certificates_by_ca(caCertificateId=ca_id, **options, **marker)
        ids += [c["certificateId"] for c in page["certificates"]]
        if "nextMarker" not in page:
            return ids
        marker = {"marker": page["nextMarker"]}


def test_certificates_by_ca_come_in_pages_by_creation_date(account: Account, issuing_ca: pki.Issued) -> None:
    # Given a CA's fleet of 12 certificates created a minute apart, loaded in no particular order
    ca_id = account.register_ca(issuing_ca)
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    created = [start + datetime.timedelta(minutes=m) for m in (5, 0, 11, 3, 8, 1, 10, 2, 7, 4, 9, 6)]
    fleet = [(pki.make_device(issuing_ca, f"fleet-{i}").pem, "ACTIVE", at) for i, at in enumerate(created)]
    ids = account.iot.load_certificates(ca_id, fleet)
    oldest_first = [i for _, i in sorted(zip(created, ids, strict=True))]
    # Then ListCertificatesByCA pages them newest first unless asked otherwise, 25 to a page by default
    assert _list_all(account, ca_id, pageSize=5) == oldest_first[::-1]
    assert _list_all(account, ca_id, pageSize=5, ascendingOrder=True) == oldest_first
    assert len(account.client.list_certificates_by_ca(caCertificateId=ca_id)["certificates"]) == 12
    # and a marker keeps its place while newer certificates arrive
    first = account.client.list_certificates_by_ca(caCertificateId=ca_id, pageSize=5)
    account.iot.connect(pki.make_device(issuing_ca, "newcomer").pem)
    rest = account.client.list_certificates_by_ca(caCertificateId=ca_id, pageSize=5, marker=first["nextMarker"])
    assert [c["certificateId"] for c in rest["certificates"]] == oldest_first[::-1][5:10]
    assert rest["certificates"][0]["status"] == "ACTIVE"
    for bad in ({"pageSize": 251}, {"marker": "bm90IGEgbWFya2Vy"}):
        with pytest.raises(ClientError) as exc:
            account.client.list_certificates_by_ca(caCertificateId=ca_id, **bad)
        assert error_code(exc) == "InvalidRequestException"


def test_create_thing_is_idempotent_but_refuses_another_configuration(account: Account) -> None:
    first = account.client.create_thing(thingName="t", attributePayload={"attributes": {"a": "1"}})
    again = account.client.create_thing(thingName="t", attributePayload={"attributes": {"a": "1"}})
    assert first["thingArn"] == again["thingArn"]
    with pytest.raises(ClientError) as caught:
        account.client.create_thing(thingName="t", attributePayload={"attributes": {"a": "2"}})
    assert error_code(caught) == "ResourceAlreadyExistsException"


def test_provisioning_templates_crud(account: Account) -> None:
    body = data("../../templates/jitr-device.json")
    role = "arn:aws:iam::123456789012:role/provisioning"
    created = account.client.create_provisioning_template(
        templateName="jitr-device", templateBody=body, provisioningRoleArn=role, enabled=True, type="JITP"
    )
    assert created["templateArn"].endswith(":provisioningtemplate/jitr-device")
    described = account.client.describe_provisioning_template(templateName="jitr-device")
    assert (described["templateBody"], described["type"], described["enabled"]) == (body, "JITP", True)
    account.client.update_provisioning_template(templateName="jitr-device", enabled=False)
    assert account.client.list_provisioning_templates()["templates"][0]["enabled"] is False
    with pytest.raises(ClientError) as caught:
        account.client.create_provisioning_template(templateName="bad", templateBody="{}", provisioningRoleArn=role)
    assert error_code(caught) == "InvalidRequestException"
    account.client.delete_provisioning_template(templateName="jitr-device")
    with pytest.raises(ClientError) as caught:
        account.client.describe_provisioning_template(templateName="jitr-device")
    assert error_code(caught) == "ResourceNotFoundException"


# -- a device's first connect -------------------------------------------------------------------------------------


def test_first_connect_registers_pending_and_publishes_on_every_connect(
    account: Account, issuing_ca: pki.Issued
) -> None:
    ca_id = account.register_ca(issuing_ca)
    device = pki.make_device(issuing_ca, "dev-9")
    results = [account.iot.connect(device.pem) for _ in range(3)]
    assert [r.outcome for r in results] == [Connect.REGISTERED, Connect.PENDING, Connect.PENDING]
    assert len(account.events) == 3
    event = account.events[0]
    assert set(event) == {
        "certificateId",
        "caCertificateId",
        "timestamp",
        "certificateStatus",
        "awsAccountId",
        "certificateRegistrationTimestamp",
    }
    assert (event["certificateId"], event["caCertificateId"]) == (certificate_id(device.certificate), ca_id)
    assert account.events[1]["certificateRegistrationTimestamp"] is None


def test_over_the_auto_registration_rate_a_connect_registers_nothing_and_a_later_one_does(
    account: Account, issuing_ca: pki.Issued
) -> None:
    account.register_ca(issuing_ca)
    applied = account.iot.apply_aws_quotas(0.2)  # 15 auto-registrations per second x 0.2: 3 per second, burst 3
    assert applied["AutoRegistration"] == pytest.approx(3.0)
    assert applied["Connect"] == pytest.approx(100.0)
    devices = [pki.make_device(issuing_ca, f"burst-{i}") for i in range(5)]
    outcomes = [account.iot.connect(d.pem).outcome for d in devices]
    assert outcomes == [Connect.REGISTERED] * 3 + [Connect.THROTTLED] * 2
    assert len(account.events) == 3  # the throttled ones are not registered and publish nothing
    assert account.iot.state.device_throttled["AutoRegistration"] == 2
    unregistered = certificate_id(devices[4].certificate)
    with pytest.raises(account.client.exceptions.ResourceNotFoundException):
        account.client.describe_certificate(certificateId=unregistered)
    time.sleep(0.4)  # a token back
    assert account.iot.connect(devices[4].pem).outcome == Connect.REGISTERED
    assert account.iot.connect(devices[0].pem).outcome == Connect.PENDING  # a reconnect registers nothing new


def test_ca_is_found_by_signature_not_by_name(account: Account, issuing_ca: pki.Issued) -> None:
    account.register_ca(issuing_ca)
    impostor_key = pki.new_key()
    forged = pki.make_device(issuing_ca, "forged", signer=impostor_key)
    result = account.iot.connect(forged.pem)
    assert result.outcome == Connect.CLOSED
    assert account.events == []


def test_root_ca_matches_through_the_presented_intermediate(
    account: Account, root_ca: pki.Issued, issuing_ca: pki.Issued
) -> None:
    ca_id = account.register_ca(root_ca)
    device = pki.make_device(issuing_ca, "dev-chain")
    assert account.iot.connect(device.pem).outcome == Connect.CLOSED  # without the intermediate
    assert account.iot.connect(device.pem, issuing_ca.pem).outcome == Connect.REGISTERED
    assert account.events[-1]["caCertificateId"] == ca_id


def test_ca_without_auto_registration_refuses(account: Account, issuing_ca: pki.Issued) -> None:
    account.register_ca(issuing_ca, auto=False)
    assert account.iot.connect(pki.make_device(issuing_ca, "d").pem).outcome == Connect.CLOSED


def test_jitp_ca_provisions_without_asking(account: Account, issuing_ca: pki.Issued) -> None:
    account.client.create_policy(policyName="jitr-device", policyDocument=DEVICE_POLICY)
    account.register_ca(
        issuing_ca,
        registrationConfig={
            "templateBody": data("../../templates/jitr-device.json"),
            "roleArn": "arn:aws:iam::123456789012:role/r",
        },
    )
    device = pki.make_device(issuing_ca, "jitp-1")
    assert account.iot.connect(device.pem).outcome == Connect.REGISTERED
    assert account.iot.connect(device.pem).outcome == Connect.CONNECTED


# -- over HTTP, from another process -----------------------------------------------------------------------------


def test_endpoint_serves_boto3_in_a_subprocess(aws_env: None, issuing_ca: pki.Issued) -> None:
    iot = EmbeddedIoT(account_id="123456789012", region="eu-west-1")
    with serve() as endpoint:
        client = boto3.client("iot", region_name="eu-west-1", endpoint_url=endpoint)
        code = client.get_registration_code()["registrationCode"]
        client.register_ca_certificate(
            caCertificate=issuing_ca.pem,
            setAsActive=True,
            allowAutoRegistration=True,
            verificationCertificate=pki.make_verification_certificate(issuing_ca, code).pem,
        )
        device = pki.make_device(issuing_ca, "remote-1")
        assert iot.connect(device.pem).outcome == Connect.REGISTERED
        script = textwrap.dedent(f"""
            import boto3, sys
            c = boto3.client("iot", region_name="eu-west-1", endpoint_url={endpoint!r})
            print(c.describe_certificate(certificateId=sys.argv[1])["certificateDescription"]["status"])
        """)
        out = subprocess.run(
            [sys.executable, "-c", script, certificate_id(device.certificate)],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ.copy(),
            timeout=60,
        )
        assert out.stdout.strip() == "PENDING_ACTIVATION"


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        ("DescribeCertificate", lambda c: c.describe_certificate(certificateId="a" * 64)),
        ("DescribeCACertificate", lambda c: c.describe_ca_certificate(certificateId="a" * 64)),
        ("DescribeProvisioningTemplate", lambda c: c.describe_provisioning_template(templateName="t")),
        ("UpdateCertificate", lambda c: c.update_certificate(certificateId="a" * 64, newStatus="REVOKED")),
        ("ListThingPrincipals", lambda c: c.list_thing_principals(thingName="t")),
        ("DescribeThing", lambda c: c.describe_thing(thingName="t")),
        ("DetachThingPrincipal", lambda c: c.detach_thing_principal(thingName="t", principal="arn")),
    ],
)
def test_every_operation_takes_quotas_and_injected_faults(account: Account, operation: str, call: Any) -> None:
    client = boto3.client("iot", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}))
    account.iot.inject_faults(operation, ServiceUnavailableException("injected"))
    with pytest.raises(ClientError) as caught:
        call(client)
    assert error_code(caught) == "ServiceUnavailableException"
    account.iot.set_quota(operation, per_second=0.001, burst=1)
    with pytest.raises(ClientError) as caught:  # the burst's one token: the operation itself answers
        call(client)
    assert error_code(caught) != "ThrottlingException"
    with pytest.raises(ClientError) as caught:
        call(client)
    assert error_code(caught) == "ThrottlingException"
    assert (account.iot.state.calls[operation], account.iot.state.throttled[operation]) == (3, 1)
