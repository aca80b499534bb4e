"""`jitr explain`: the decision jitr would make now, with no effect on AWS, beside the one it recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jitr.certificates import certificate_id
from jitr_handlers.registration import handler
from jitr_tools import pki
from jitr_tools.cli import main
from jitr_tools.pki.crl_server import CrlServer
from jitr_tools.rehearsing.rehearsal import create_decision_table
from tests.integration.support import TEMPLATE_NAME, FakeLambdaContext, Fleet


@pytest.fixture
def table(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> str:
    name = create_decision_table(boto3.client("dynamodb", region_name="us-east-1"))
    monkeypatch.setenv("JITR_DECISION_TABLE", name)
    return name


def _explain(capsys: pytest.CaptureFixture[str], certificate: str, *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["explain", certificate, "--template-name", TEMPLATE_NAME, "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def _state(fleet: Fleet) -> tuple[Any, ...]:
    client = fleet.account.client
    certificates = sorted((c["certificateId"], c["status"]) for c in client.list_certificates()["certificates"])
    return certificates, client.list_things()["things"], dict(fleet.account.iot.state.calls)


def test_a_pending_good_device_would_be_provisioned_and_nothing_changes(
    fleet: Fleet, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    device = fleet.device("sensor-42")
    fleet.first_connect(device)
    cert = certificate_id(device.certificate)
    certificates, things, _ = _state(fleet)

    code, report = _explain(capsys, cert, "--decision-table", table)

    assert code == 0
    assert report["status"] == "PENDING_ACTIVATION"
    assert report["now"]["outcome"] == "PROVISIONED"
    assert report["now"]["thingName"] == "sensor-42"
    assert any(effect.startswith("RegisterThing") for effect in report["now"]["would"])
    assert report["recorded"] is None  # never decided
    after_certificates, after_things, calls = _state(fleet)
    assert (after_certificates, after_things) == (certificates, things)  # no effect on AWS
    assert "RegisterThing" not in calls
    assert "UpdateCertificate" not in calls


def test_a_defective_device_would_be_revoked_and_says_why_without_being_revoked(
    fleet: Fleet, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    device = fleet.device("weak-1", key="rsa1024")
    fleet.first_connect(device)
    cert = certificate_id(device.certificate)
    code, report = _explain(capsys, cert, "--decision-table", table)
    assert code == 0
    assert (report["now"]["outcome"], report["now"]["reason"]) == ("REJECTED", "WEAK_KEY")
    assert report["now"]["would"] == [f"UpdateCertificate {cert} to REVOKED"]
    assert fleet.status(cert) == "PENDING_ACTIVATION"


def test_the_recorded_decision_is_shown_beside_the_one_jitr_would_make_now(
    fleet: Fleet, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    device = fleet.device("sensor-7")
    assert handler(fleet.first_connect(device), FakeLambdaContext())["outcome"] == "PROVISIONED"
    cert = certificate_id(device.certificate)
    capsys.readouterr()  # the handler's own log lines
    code, report = _explain(capsys, cert, "--decision-table", table)
    assert code == 0
    assert report["recorded"]["outcome"] == "PROVISIONED"
    assert report["recorded"]["thingName"] == "sensor-7"
    assert "decidedAt" in report["recorded"]
    assert report["now"]["outcome"] == "ALREADY_ACTIVE"
    # and the text form puts them side by side, one line each
    assert main(["explain", cert, "--template-name", TEMPLATE_NAME, "--decision-table", table]) == 0
    out = capsys.readouterr().out
    assert "now          ALREADY_ACTIVE" in out
    assert "recorded     PROVISIONED" in out


def test_an_unknown_certificate_is_one_line(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "ab" * 32, "--template-name", TEMPLATE_NAME]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jitr: AWS IoT:")
    assert len(err.splitlines()) == 1


def test_a_malformed_certificate_id_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "not-an-id"]) == 2
    assert "64 hexadecimal digits" in capsys.readouterr().err


def test_with_function_it_decides_with_the_deployed_functions_settings(
    fleet: Fleet, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import io
    import zipfile

    from jitr.settings import Settings

    # Given the deployed function, whose settings say a CN must look like "sensor-<digits>"
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="jitr-handler", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    settings = Settings(template_name=TEMPLATE_NAME, cn_pattern="^sensor-[0-9]+$", decision_table=table)
    boto3.client("lambda", region_name="us-east-1").create_function(
        FunctionName="jitr-registration",
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": settings.to_environment()},
    )
    device = fleet.device("gateway-1")
    fleet.first_connect(device)
    # When explained with the function's settings, the CN pattern applies (the default settings have none)
    _code, report = _explain(capsys, certificate_id(device.certificate), "--function", "jitr-registration")
    assert (report["now"]["outcome"], report["now"]["reason"]) == ("REJECTED", "CN_MISMATCH")
    assert report["decisionTable"] == table


# -- revocation: the issuer's word, and what the revocation sync did about it


@pytest.fixture
def crl_server() -> Iterator[CrlServer]:
    with CrlServer() as server:
        yield server


def _revocation_env(ca_id: str, url: str) -> list[str]:
    """The CA's CRL source as the stack configures it (loopback allowed: the test's CRL server is on 127.0.0.1)."""
    return [
        "--env",
        f"JITR_REVOCATION={json.dumps({ca_id: {'crl': [url]}})}",
        "--env",
        "JITR_REVOCATION_ALLOW_LOOPBACK=1",
    ]


def _publish(server: CrlServer, fleet: Fleet, entries: list[tuple[x509.Certificate, x509.ReasonFlags]]) -> str:
    return server.publish("/crl/issuing.crl", pki.make_crl(fleet.ca, entries).public_bytes(serialization.Encoding.DER))


def test_a_pending_device_the_issuer_revoked_shows_the_status_source_reason_and_date(
    fleet: Fleet, table: str, crl_server: CrlServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a pending device its maker revoked (a cloned key)
    device = fleet.device("cloned-1")
    url = _publish(crl_server, fleet, [(device.certificate, x509.ReasonFlags.key_compromise)])
    fleet.first_connect(device)
    cert = certificate_id(device.certificate)
    # When explained
    code, report = _explain(capsys, cert, "--decision-table", table, *_revocation_env(fleet.ca_id, url))
    # Then the decision refuses it, and says where the word came from, why and when; nothing is revoked
    assert code == 0
    assert (report["now"]["outcome"], report["now"]["reason"]) == ("REJECTED", "REVOKED_BY_ISSUER")
    (answer,) = report["revocation"]
    assert (answer["status"], answer["source"], answer["reason"]) == ("REVOKED", url, "keyCompromise")
    assert answer["revokedAt"]
    assert report["serialNumber"] == f"{device.certificate.serial_number:x}"
    assert report["revocationIndex"]["item"] is None  # pending: never indexed
    assert fleet.status(cert) == "PENDING_ACTIVATION"
    # and the text form gives it a line of its own, beside the index's
    assert (
        main(
            [
                "explain",
                cert,
                "--template-name",
                TEMPLATE_NAME,
                "--decision-table",
                table,
                *_revocation_env(fleet.ca_id, url),
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert f"revocation   REVOKED from {url}: {answer['detail']}" in lines
    assert "reason keyCompromise" in answer["detail"]
    assert any(line.startswith("synced       not in the revocation index") and "backfill" in line for line in lines)


@pytest.mark.parametrize(
    ("reason", "synced_status", "status_now", "skipped"),
    [
        (x509.ReasonFlags.key_compromise, "REVOKED", "REVOKED", "CERTIFICATE_REVOKED"),
        (x509.ReasonFlags.certificate_hold, "INACTIVE", "ON_HOLD", "CERTIFICATE_INACTIVE"),
    ],
)
def test_a_device_the_revocation_sync_acted_on_shows_who_did_it_when_and_why(
    fleet: Fleet,
    table: str,
    crl_server: CrlServer,
    capsys: pytest.CaptureFixture[str],
    reason: x509.ReasonFlags,
    synced_status: str,
    status_now: str,
    skipped: str,
) -> None:
    # Given a provisioned device its maker later revoked (or held), and the revocation sync's work: the certificate's
    # status set, and its revocation-index item saying when, why and from which CRL
    device = fleet.device("sold-for-scrap-1")
    assert handler(fleet.first_connect(device), FakeLambdaContext())["outcome"] == "PROVISIONED"
    capsys.readouterr()
    cert = certificate_id(device.certificate)
    url = _publish(crl_server, fleet, [(device.certificate, reason)])
    fleet.account.client.update_certificate(certificateId=cert, newStatus=synced_status)
    serial = f"{device.certificate.serial_number:x}"
    revoked_at = "" if synced_status == "INACTIVE" else "2026-05-01T09:30:00+00:00"
    boto3.client("dynamodb", region_name="us-east-1").put_item(
        TableName=table,
        Item={
            "id": {"S": f"jitr-serial#{fleet.ca_id}#{serial}"},
            "certificateId": {"S": cert},
            "decidedAt": {"S": "2026-04-01T08:00:00+00:00"},
            "notAfter": {"S": device.certificate.not_valid_after_utc.isoformat()},
            "expiration": {"N": str(int(device.certificate.not_valid_after_utc.timestamp()) + 86_400)},
            "syncedStatus": {"S": synced_status},
            "syncedAt": {"S": "2026-05-02T03:00:00+00:00"},
            "syncedReason": {"S": reason.value},
            "syncedSource": {"S": url},
            "syncedRevokedAt": {"S": revoked_at},
        },
    )
    # When explained
    argv = [
        "explain",
        cert,
        "--template-name",
        TEMPLATE_NAME,
        "--decision-table",
        table,
        *_revocation_env(fleet.ca_id, url),
    ]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # Then: nothing to decide now (the status says why), the issuer's word asked now, and the sync's record
    assert (report["now"]["outcome"], report["now"]["reason"]) == ("SKIPPED", skipped)
    assert [(a["status"], a["source"]) for a in report["revocation"]] == [(status_now, url)]
    assert report["revocationIndex"]["id"] == f"jitr-serial#{fleet.ca_id}#{serial}"
    assert report["revocationIndex"]["item"]["syncedStatus"] == synced_status
    assert main(argv) == 0
    (synced,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("synced")]
    expected = (
        f"synced       set {synced_status} by the revocation sync at 2026-05-02T03:00:00+00:00: reason {reason.value}"
    )
    assert synced == expected + (f", revoked by the issuer at {revoked_at}" if revoked_at else "") + f", CRL {url}"


def test_an_active_device_of_a_ca_with_revocation_is_asked_now_and_one_without_says_so(
    fleet: Fleet, table: str, crl_server: CrlServer, capsys: pytest.CaptureFixture[str]
) -> None:
    device = fleet.device("sensor-9")
    assert handler(fleet.first_connect(device), FakeLambdaContext())["outcome"] == "PROVISIONED"
    capsys.readouterr()
    cert = certificate_id(device.certificate)
    base = ["explain", cert, "--template-name", TEMPLATE_NAME, "--decision-table", table]
    # the CA has no CRL source: said in one line, no index line
    assert main(base) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"revocation   not checked: CA {fleet.ca_id} has no CRL source (JITR_REVOCATION)" in lines
    assert not any(line.startswith("synced") for line in lines)
    # the CA has one that does not list it: GOOD, asked now (an ACTIVE certificate's decision asks nothing)
    url = _publish(crl_server, fleet, [])
    assert main([*base, *_revocation_env(fleet.ca_id, url)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"revocation   GOOD from {url}: not listed in the CRL of") for line in lines)
    assert crl_server.hits == {"/crl/issuing.crl": 1}
