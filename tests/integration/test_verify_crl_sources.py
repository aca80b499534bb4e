"""`jitr verify --crl-url URL` and `--crl-from-certificate`: the issuer's CRL fetched as the handler fetches a
configured source (here served on 127.0.0.1), and the SSRF rules kept: a certificate's own distribution point only on
a host `--allow-host` allows, loopback only with `--allow-loopback`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jitr_tools import pki
from jitr_tools.cli import main
from jitr_tools.pki.crl_server import CrlServer, Served

CRL_PATH = "/crl/issuing.crl"


@pytest.fixture
def crl_server() -> Iterator[CrlServer]:
    with CrlServer() as server:
        yield server


@pytest.fixture
def ca() -> pki.Issued:
    return pki.make_ca("maker issuing CA")


def _der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def _verify(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ca: pki.Issued, device: pki.Issued, *extra: str
) -> tuple[int, dict[str, Any]]:
    (tmp_path / "ca.pem").write_text(ca.pem)
    (tmp_path / "device.pem").write_text(device.pem)
    code = main(["verify", "--cert", str(tmp_path / "device.pem"), "--ca", str(tmp_path / "ca.pem"), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_the_configured_source_is_fetched_and_answers(
    tmp_path: Path, ca: pki.Issued, crl_server: CrlServer, capsys: pytest.CaptureFixture[str]
) -> None:
    device = pki.make_device(ca, "cloned-1")
    url = crl_server.publish(CRL_PATH, _der(pki.make_crl(ca, [(device.certificate, x509.ReasonFlags.key_compromise)])))
    code, report = _verify(capsys, tmp_path, ca, device, "--crl-url", url, "--allow-loopback")
    assert code == 1
    assert (report["verdict"], report["reason"]) == ("REJECTED", "REVOKED_BY_ISSUER")
    assert [(a["status"], a["source"], a["reason"]) for a in report["revocation"]] == [
        ("REVOKED", url, "keyCompromise")
    ]
    assert crl_server.hits == {CRL_PATH: 1}


def test_loopback_is_refused_unless_allowed(
    tmp_path: Path, ca: pki.Issued, crl_server: CrlServer, capsys: pytest.CaptureFixture[str]
) -> None:
    device = pki.make_device(ca, "good-1")
    url = crl_server.publish(CRL_PATH, _der(pki.make_crl(ca)))
    code, report = _verify(capsys, tmp_path, ca, device, "--crl-url", url)
    assert (code, report["verdict"], report["reason"]) == (1, "RETRY", "REVOCATION_UNKNOWN")
    assert "loopback" in report["message"]
    assert crl_server.hits == {}  # refused before connecting
    code, report = _verify(capsys, tmp_path, ca, device, "--crl-url", url, "--allow-loopback")
    assert code == 0
    assert report["revocation"][0]["status"] == "GOOD"


def test_the_certificates_own_distribution_point_on_an_allowed_host(
    tmp_path: Path, ca: pki.Issued, crl_server: CrlServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a device naming its CA's CRL, on hold there
    device = pki.make_device(ca, "held-1", crl_urls=[crl_server.url(CRL_PATH)])
    crl_server.publish(CRL_PATH, _der(pki.make_crl(ca, [(device.certificate, x509.ReasonFlags.certificate_hold)])))
    # When asked with its host allowed
    extra = ["--crl-from-certificate", "--allow-host", "127.0.0.1", "--allow-loopback"]
    code, report = _verify(capsys, tmp_path, ca, device, *extra)
    # Then it is held, as the handler would hold it
    assert (code, report["verdict"], report["reason"]) == (1, "HELD", "CERTIFICATE_ON_HOLD")
    assert report["revocation"][0]["source"] == crl_server.url(CRL_PATH)


@pytest.mark.parametrize(
    ("served", "cause"),
    [(Served(404), "HTTP 404"), (Served(302, headers={"Location": "http://169.254.169.254/"}), "redirects")],
)
def test_a_source_that_gives_no_crl_is_retry(
    tmp_path: Path,
    ca: pki.Issued,
    crl_server: CrlServer,
    capsys: pytest.CaptureFixture[str],
    served: Served,
    cause: str,
) -> None:
    crl_server.paths[CRL_PATH] = served
    device = pki.make_device(ca, "unknown-1")
    code, report = _verify(capsys, tmp_path, ca, device, "--crl-url", crl_server.url(CRL_PATH), "--allow-loopback")
    assert (code, report["verdict"], report["reason"]) == (1, "RETRY", "REVOCATION_UNKNOWN")
    assert cause in report["message"]
