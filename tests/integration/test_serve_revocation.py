"""`jitr serve` and the issuer's word, with a real MQTT client (paho): the development CA's CRL is served on 127.0.0.1
from `.dev-pki/` as `jitr pki revoke` leaves it. A device revoked before its first connect is refused REVOKED_BY_ISSUER;
one revoked after it was provisioned is REVOKED by the next sync and its next connect closed; a CRL jitr cannot use
(the server down, stale, signed by another key, truncated, enormous) leaves the device pending and revokes nothing,
and the handler's decision says why."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jitr.certificates import certificate_id
from jitr.provisioning import Decision
from jitr.revocation import distribution_point_urls
from jitr.settings import DEFAULT_CRL_MAX_BYTES
from jitr_config.model import load_config
from jitr_tools import pki
from jitr_tools.cli import main
from jitr_tools.endpoint.devices import Files, PahoDevice, write_device
from jitr_tools.endpoint.serve import ServeOptions, Service
from jitr_tools.pki import revocations as pki_revocations
from jitr_tools.pki.crl_server import CrlServer, Served

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = str(REPO / "templates" / "jitr-device.json")
DECIDED_S = 20.0


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-revocation")


@pytest.fixture(scope="module")
def ca(root: Path) -> pki.Issued:
    issuing, _ = pki.development_ca(root / ".dev-pki")
    return issuing


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return []


@pytest.fixture(scope="module")
def service(root: Path, ca: pki.Issued, lines: list[str]) -> Iterator[Service]:
    config = load_config({"caCertificates": [".dev-pki/issuing-ca.pem"], "template": TEMPLATE}, root)
    options = ServeOptions(
        folder=root / "serve", mqtt_port=0, api_port=0, dev_pki=root / ".dev-pki", crl_port=0, sync_seconds=1.0
    )
    with Service(config, options, say=lines.append) as running:
        yield running


def status(service: Service, cert_id: str) -> str | None:
    certificate = service.iot.backend.certificates.get(cert_id)
    return str(certificate.status) if certificate else None


def wait_status(service: Service, cert_id: str, wanted: str) -> str | None:
    deadline = time.monotonic() + DECIDED_S
    while time.monotonic() < deadline and status(service, cert_id) != wanted:
        time.sleep(0.05)
    return status(service, cert_id)


def said(lines: list[str], *parts: str) -> list[str]:
    """The service's lines holding every one of `parts`, waiting for one to appear."""
    deadline = time.monotonic() + DECIDED_S
    while time.monotonic() < deadline:
        found = [line for line in list(lines) if all(part in line for part in parts)]
        if found:
            return found
        time.sleep(0.05)
    return []


def device(service: Service, ca: pki.Issued, root: Path, name: str) -> tuple[PahoDevice, pki.Issued, Path]:
    """A device certificate naming serve's CRL as its distribution point, and a paho client with it."""
    issued = pki.make_device(ca, name, crl_urls=[service.crl_url])
    files = write_device(issued, root / "devices", name)
    return PahoDevice(files, name, service.endpoint.port, service.credentials.ca_file), issued, files.certificate


def onboarded(service: Service, ca: pki.Issued, root: Path, name: str) -> tuple[PahoDevice, pki.Issued, Path]:
    client, issued, path = device(service, ca, root, name)
    assert client.connect() == "closed"
    assert wait_status(service, certificate_id(issued.certificate), "ACTIVE") == "ACTIVE"
    return client, issued, path


def revoke(root: Path, path: Path, reason: str) -> None:
    assert main(["pki", "revoke", str(path), "--reason", reason, "--dir", str(root / ".dev-pki")]) == 0


def test_a_device_revoked_before_its_first_connect_is_refused_revoked_by_issuer_and_stays_refused(
    service: Service, lines: list[str], ca: pki.Issued, root: Path
) -> None:
    client, issued, path = device(service, ca, root, "returned-00001")
    assert distribution_point_urls(issued.certificate) == [service.crl_url]
    cert_id = certificate_id(issued.certificate)
    revoke(root, path, "keyCompromise")  # with serve running: its next CRL lists it

    assert client.connect() == "closed"
    assert wait_status(service, cert_id, "REVOKED") == "REVOKED"
    assert decided(service, cert_id).reason == "REVOKED_BY_ISSUER"
    assert said(lines, cert_id[:12], "REJECTED REVOKED_BY_ISSUER", "reason keyCompromise", service.crl_url)
    assert client.connect() == "closed"
    assert status(service, cert_id) == "REVOKED"


def test_a_device_revoked_after_it_was_provisioned_is_revoked_by_the_next_sync_and_its_next_connect_closed(
    service: Service, lines: list[str], ca: pki.Issued, root: Path
) -> None:
    client, issued, path = onboarded(service, ca, root, "scrapped-00001")
    cert_id = certificate_id(issued.certificate)
    assert client.connect() == "CONNACK 0"
    try:
        client.subscribe("things/scrapped-00001/commands")
        revoke(root, path, "cessationOfOperation")
        # the periodic sync (every second here, on a schedule in the stack) revokes it in AWS IoT
        assert wait_status(service, cert_id, "REVOKED") == "REVOKED"
        assert client.wait_closed(), "a connected device whose certificate is revoked is disconnected"
    finally:
        client.stop()
    assert said(lines, f"SYNC certificate {cert_id[:12]}: REVOKED by the revocation sync")
    assert client.connect() == "closed"
    things = service.iot.backend.things.values()
    assert any(t.thing_name == "scrapped-00001" for t in things), "the thing is left for a replacement certificate"


def test_a_hold_makes_a_provisioned_device_inactive_and_its_release_lets_it_connect_again(
    service: Service, ca: pki.Issued, root: Path
) -> None:
    client, issued, path = onboarded(service, ca, root, "investigated-00001")
    cert_id = certificate_id(issued.certificate)
    revoke(root, path, "certificateHold")
    assert wait_status(service, cert_id, "INACTIVE") == "INACTIVE"
    assert client.connect() == "closed"
    assert main(["pki", "release", str(path), "--dir", str(root / ".dev-pki")]) == 0
    assert wait_status(service, cert_id, "ACTIVE") == "ACTIVE"
    assert client.connect() == "CONNACK 0"
    client.stop()


# -- a CRL jitr cannot use: never the device's fault --------------------------------------------------------------


def der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def _stale(ca: pki.Issued, listed: x509.Certificate) -> Served:
    long_ago = pki.now() - dt.timedelta(days=3)
    crl = pki.make_crl(ca, [(listed, None)], this_update=long_ago, next_update=long_ago + dt.timedelta(days=1))
    return Served(body=der(crl))


def _another_key(ca: pki.Issued, listed: x509.Certificate) -> Served:
    return Served(body=der(pki.make_crl(ca, [(listed, None)], signer=pki.new_key())))


def _truncated(ca: pki.Issued, listed: x509.Certificate) -> Served:
    whole = der(pki.make_crl(ca, [(listed, None)]))
    return Served(body=whole[: len(whole) // 2])


def _enormous(ca: pki.Issued, listed: x509.Certificate) -> Served:
    return Served(body=b"\x30" * (DEFAULT_CRL_MAX_BYTES + 1))


UNUSABLE = {
    "stale": (_stale, "stale"),
    "signed by another key": (_another_key, "signature is not the issuer's"),
    "truncated": (_truncated, "cannot be decoded"),
    "enormous": (_enormous, "byte cap"),
}


def assert_nothing_revoked_and_pending(
    service: Service, lines: list[str], ca: pki.Issued, root: Path, listed: pki.Issued, name: str, why: str
) -> None:
    """The sync revokes nothing, saying why; a new device stays pending, the handler's decision saying why."""
    (report,) = service.sync_once().cas
    assert report.revoked == []
    assert why in (report.error or ""), report.error
    assert status(service, certificate_id(listed.certificate)) == "ACTIVE"
    client, issued, _ = device(service, ca, root, name)
    cert_id = certificate_id(issued.certificate)
    assert client.connect() == "closed"
    assert said(lines, cert_id[:12], "RETRY REVOCATION_UNKNOWN", why)
    assert status(service, cert_id) == "PENDING_ACTIVATION"
    assert client.connect() == "closed"  # still pending: its event again, decided again
    assert len(said(lines, cert_id[:12], "RETRY REVOCATION_UNKNOWN")) >= 1
    assert status(service, cert_id) == "PENDING_ACTIVATION"


@pytest.mark.parametrize("case", sorted(UNUSABLE))
def test_a_crl_jitr_cannot_use_leaves_the_device_pending_and_revokes_nothing(
    service: Service, lines: list[str], ca: pki.Issued, root: Path, case: str
) -> None:
    make, why = UNUSABLE[case]
    slug = re.sub(r"\W+", "-", case)
    _, listed, _ = onboarded(service, ca, root, f"listed-{slug}")
    server = service.crl_server
    assert server is not None
    live = server.paths[pki_revocations.CRL_PATH]
    server.paths[pki_revocations.CRL_PATH] = make(ca, listed.certificate)  # listing the provisioned device
    try:
        assert_nothing_revoked_and_pending(service, lines, ca, root, listed, f"pending-{slug}", why)
    finally:
        server.paths[pki_revocations.CRL_PATH] = live


def test_the_crl_server_down_leaves_the_device_pending_and_revokes_nothing(
    service: Service, lines: list[str], ca: pki.Issued, root: Path
) -> None:
    _, listed, path = onboarded(service, ca, root, "listed-down")
    server = service.crl_server
    assert server is not None
    server.stop()
    revoke(root, path, "keyCompromise")  # the CA revokes it while its CRL cannot be fetched
    try:
        assert_nothing_revoked_and_pending(service, lines, ca, root, listed, "pending-down", "did not answer")
    finally:
        again = CrlServer(server.port)  # up again where the handler and the devices look for it
        again.paths = server.paths
        service.crl_server = again
        service._exit.callback(again.stop)
    # back up: the next sync revokes what the CA revoked meanwhile
    assert wait_status(service, certificate_id(listed.certificate), "REVOKED") == "REVOKED"
    assert said(lines, "the CRL is usable again")


# -- the command ------------------------------------------------------------------------------------------------------


def test_jitr_serve_publishes_the_development_crl_and_refuses_a_device_jitr_pki_revoked(tmp_path: Path) -> None:
    jitr = str(Path(sys.executable).with_name("jitr"))
    subprocess.run([jitr, "pki", "devices", "--count", "1"], cwd=tmp_path, check=True, capture_output=True)
    devices = tmp_path / ".dev-pki" / "devices"
    assert distribution_point_urls(x509.load_pem_x509_certificate((devices / "sensor-00001.pem").read_bytes())) == [
        pki_revocations.crl_url()
    ], "jitr pki devices points at serve's default CRL port"
    revoked = subprocess.run(
        [jitr, "pki", "revoke", str(devices / "sensor-00001.pem"), "--reason", "keyCompromise"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert revoked.returncode == 0, revoked.stderr
    process = subprocess.Popen(
        [jitr, "serve", "--port", "0", "--api-port", "0", "--crl-port", "0", "--state", "state"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        for line in process.stdout:
            output.append(line)
            if line.startswith("Ctrl-C stops it"):
                break
        banner = "".join(output)
        assert re.search(r"development CA's CRL\s+http://127\.0\.0\.1:\d+/issuing-ca\.crl", banner), banner
        port = int(re.findall(r"localhost:(\d+)", banner)[0])
        files = Files(devices / "sensor-00001.pem", devices / "sensor-00001.key")
        client = PahoDevice(files, "sensor-00001", port, tmp_path / "state" / "server-ca.pem")
        assert client.connect() == "closed"
        for line in process.stdout:
            output.append(line)
            if line.startswith("HANDLER"):
                break
        assert "REJECTED REVOKED_BY_ISSUER" in output[-1], "".join(output)
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(output) + rest
    assert "Traceback" not in "".join(output) + rest


def decided(service: Service, certificate_id: str) -> Decision:
    decision = service.decided(certificate_id)
    assert decision is not None, f"no decision for {certificate_id}"
    return decision
