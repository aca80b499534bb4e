"""`jitr serve` runs the handler with the revocation settings the configuration gives the stack: a CA whose CRL is an
`s3://` object (as AWS Private CA publishes it) refuses a device its issuer revoked, and onboards one it did not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from jitr.certificates import certificate_id
from jitr.outcomes import Reason
from jitr.provisioning import Decision
from jitr.revocation import Status
from jitr_config.model import load_config
from jitr_tools import pki
from jitr_tools.endpoint.devices import PahoDevice, write_device
from jitr_tools.endpoint.serve import ServeOptions, Service

REPO = Path(__file__).resolve().parents[2]
BUCKET, KEY = "acme-pki-crls", "crl/issuing.crl"
DECIDED_S = 20.0


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-revocation")


@pytest.fixture(scope="module")
def ca(root: Path) -> pki.Issued:
    issuing, _ = pki.development_ca(root / ".dev-pki")
    return issuing


@pytest.fixture(scope="module")
def revoked(ca: pki.Issued) -> pki.Issued:
    return pki.make_device(ca, "revoked-sensor")


@pytest.fixture(scope="module")
def service(root: Path, ca: pki.Issued, revoked: pki.Issued) -> Iterator[Service]:
    config = load_config(
        {
            "caCertificates": [{"pem": ".dev-pki/issuing-ca.pem", "revocation": {"crl": [f"s3://{BUCKET}/{KEY}"]}}],
            "template": str(REPO / "templates" / "jitr-device.json"),
        },
        root,
    )
    with Service(config, ServeOptions(folder=root / "serve", mqtt_port=0, api_port=0), say=lambda _: None) as running:
        s3 = boto3.client("s3", region_name=running.iot.region)  # the embedded account's S3, as the handler's
        s3.create_bucket(Bucket=BUCKET)
        crl = pki.make_crl(ca, [(revoked.certificate, x509.ReasonFlags.key_compromise)])
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=crl.public_bytes(Encoding.DER))
        yield running


def _status(service: Service, cert_id: str, wanted: str) -> str:
    iot = boto3.client("iot", region_name=service.iot.region)
    deadline = time.monotonic() + DECIDED_S
    while True:
        status = str(iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"])
        if status == wanted or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def _connect(service: Service, root: Path, device: pki.Issued, name: str) -> str:
    files = write_device(device, root / "devices", name)
    return str(PahoDevice(files, name, service.endpoint.port, service.credentials.ca_file, host="localhost").connect())


def test_a_device_its_issuer_revoked_is_refused_with_the_crls_reason(
    service: Service, root: Path, revoked: pki.Issued
) -> None:
    cert_id = certificate_id(revoked.certificate)
    assert _connect(service, root, revoked, "revoked-sensor") == "closed"
    assert _status(service, cert_id, "REVOKED") == "REVOKED"
    decision = decided(service, cert_id)
    assert decision.reason == Reason.REVOKED_BY_ISSUER
    assert "keyCompromise" in decision.message


def test_a_device_its_issuer_did_not_revoke_is_onboarded(service: Service, root: Path, ca: pki.Issued) -> None:
    good = pki.make_device(ca, "good-sensor")
    cert_id = certificate_id(good.certificate)
    assert _connect(service, root, good, "good-sensor") == "closed"  # the first connect waits for the decision
    assert _status(service, cert_id, "ACTIVE") == "ACTIVE"
    assert decided(service, cert_id).revocation[0].status == Status.GOOD


def decided(service: Service, certificate_id: str) -> Decision:
    decision = service.decided(certificate_id)
    assert decision is not None, f"no decision for {certificate_id}"
    return decision
