"""`jitr verify --crl FILE`: is this certificate revoked? Asked offline of the issuer's CRL, decided as the handler
decides it (revoked: REJECTED REVOKED_BY_ISSUER; on hold: HELD CERTIFICATE_ON_HOLD; no usable answer: RETRY
REVOCATION_UNKNOWN), exit 0 only when accepted."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from jitr_tools import pki
from jitr_tools.cli import main

T0 = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.UTC)  # the CRLs' thisUpdate; their nextUpdate is a day later
NEXT = T0 + dt.timedelta(days=1)
DURING = (T0 + dt.timedelta(hours=1)).isoformat()


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.make_ca("maker issuing CA", days=20 * 365)


@pytest.fixture(scope="module")
def device(ca: pki.Issued) -> pki.Issued:
    return pki.make_device(ca, "sensor-0042", not_before=T0 - dt.timedelta(days=30), days=3650)


def _write(path: Path, crl: x509.CertificateRevocationList, encoding: str = "DER") -> str:
    path.write_bytes(crl.public_bytes(getattr(serialization.Encoding, encoding)))
    return str(path)


def _verify(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, ca: pki.Issued, device: pki.Issued, *extra: str
) -> tuple[int, dict[str, Any]]:
    (tmp_path / "ca.pem").write_text(ca.pem)
    (tmp_path / "device.pem").write_text(device.pem)
    argv = ["verify", "--cert", str(tmp_path / "device.pem"), "--ca", str(tmp_path / "ca.pem"), "--json", *extra]
    code = main(argv)
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("encoding", ["DER", "PEM"])
def test_a_certificate_the_issuer_revoked_is_rejected_with_the_reason_and_date(
    tmp_path: Path, ca: pki.Issued, device: pki.Issued, capsys: pytest.CaptureFixture[str], encoding: str
) -> None:
    # Given the issuer's CRL listing the device for a key compromise
    crl = pki.make_crl(ca, [(device.certificate, x509.ReasonFlags.key_compromise)], this_update=T0)
    path = _write(tmp_path / f"issuing.{encoding.lower()}", crl, encoding)
    # When a device team asks offline
    code, report = _verify(capsys, tmp_path, ca, device, "--crl", path, "--at", DURING)
    # Then: refused as the handler refuses it, with where, why and when
    assert code == 1
    assert (report["verdict"], report["reason"]) == ("REJECTED", "REVOKED_BY_ISSUER")
    (answer,) = report["revocation"]
    assert answer == {
        "of": "the certificate",
        "status": "REVOKED",
        "source": path,
        "detail": "revoked by the issuer on 2030-06-01 12:00:00Z, reason keyCompromise",
        "reason": "keyCompromise",
        "revokedAt": "2030-06-01T12:00:00+00:00",
    }
    assert "keyCompromise" in report["message"]
    assert path in report["message"]


def test_the_text_form_says_the_verdict_then_each_source(
    tmp_path: Path, ca: pki.Issued, device: pki.Issued, capsys: pytest.CaptureFixture[str]
) -> None:
    crl = pki.make_crl(ca, [(device.certificate, x509.ReasonFlags.certificate_hold)], this_update=T0)
    path = _write(tmp_path / "issuing.crl", crl)
    (tmp_path / "ca.pem").write_text(ca.pem)
    (tmp_path / "device.pem").write_text(device.pem)
    argv = ["verify", "--cert", str(tmp_path / "device.pem"), "--ca", str(tmp_path / "ca.pem"), "--crl", path]
    assert main([*argv, "--at", DURING]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "HELD CERTIFICATE_ON_HOLD: the certificate: on hold (certificateHold) since 2030-06-01 12:00:00Z"
        f" (from {path})",
        f"  revocation of the certificate: ON_HOLD from {path}: on hold (certificateHold) since 2030-06-01 12:00:00Z",
    ]


def test_a_certificate_the_crl_does_not_list_is_accepted_and_says_so(
    tmp_path: Path, ca: pki.Issued, device: pki.Issued, capsys: pytest.CaptureFixture[str]
) -> None:
    other = pki.make_device(ca, "sensor-0043")
    path = _write(tmp_path / "issuing.crl", pki.make_crl(ca, [(other.certificate, None)], this_update=T0))
    code, report = _verify(capsys, tmp_path, ca, device, "--crl", path, "--at", DURING)
    assert code == 0
    assert report["accepted"] is True
    assert [(a["of"], a["status"], a["source"]) for a in report["revocation"]] == [("the certificate", "GOOD", path)]
    # and without a CRL, verify says nothing of revocation (as before)
    code, report = _verify(capsys, tmp_path, ca, device, "--at", DURING)
    assert code == 0
    assert "revocation" not in report


@pytest.mark.parametrize(
    ("problem", "cause"),
    [
        ("forged", "signature is not the issuer's"),
        ("another CA's", "it is issued by 'CN=another CA"),
        ("a delta CRL", "delta CRL"),
    ],
)
def test_a_crl_that_cannot_answer_is_retry_never_the_devices_fault(
    tmp_path: Path, ca: pki.Issued, device: pki.Issued, capsys: pytest.CaptureFixture[str], problem: str, cause: str
) -> None:
    crls = {
        "forged": lambda: pki.make_crl(ca, this_update=T0, signer=pki.new_key()),
        "another CA's": lambda: pki.make_crl(pki.make_ca("another CA"), this_update=T0),
        "a delta CRL": lambda: pki.make_crl(ca, this_update=T0, extensions=[(x509.DeltaCRLIndicator(1), True)]),
    }
    path = _write(tmp_path / "issuing.crl", crls[problem]())
    code, report = _verify(capsys, tmp_path, ca, device, "--crl", path, "--at", DURING)
    assert code == 1
    assert (report["verdict"], report["reason"]) == ("RETRY", "REVOCATION_UNKNOWN")
    assert report["revocation"][0]["status"] == "UNKNOWN"
    assert cause in report["message"]


GRACE = 3600


@pytest.mark.parametrize(
    ("after_next_update", "grace", "verdict"),
    [
        (dt.timedelta(seconds=GRACE - 1), None, None),  # within the default grace (3600 s): current
        (dt.timedelta(seconds=GRACE + 1), None, "RETRY"),  # one second past it: stale
        (dt.timedelta(seconds=GRACE + 1), str(GRACE + 2), None),  # a longer --crl-grace takes it as current
        (dt.timedelta(seconds=1), "0", "RETRY"),  # no grace: stale a second after nextUpdate
        (dt.timedelta(seconds=0), "0", None),  # at nextUpdate itself: current
    ],
)
def test_a_stale_crl_is_retry_and_crl_grace_moves_the_edge(
    tmp_path: Path,
    ca: pki.Issued,
    device: pki.Issued,
    capsys: pytest.CaptureFixture[str],
    after_next_update: dt.timedelta,
    grace: str | None,
    verdict: str | None,
) -> None:
    path = _write(tmp_path / "issuing.crl", pki.make_crl(ca, this_update=T0, next_update=NEXT))
    at = (NEXT + after_next_update).isoformat()
    code, report = _verify(
        capsys, tmp_path, ca, device, "--crl", path, "--at", at, *(["--crl-grace", grace] * bool(grace))
    )
    assert report.get("verdict") == verdict
    assert code == (1 if verdict else 0)
    if verdict:
        assert report["reason"] == "REVOCATION_UNKNOWN"
        assert "stale" in report["message"]


def test_a_crl_from_the_future_is_retry(
    tmp_path: Path, ca: pki.Issued, device: pki.Issued, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "issuing.crl", pki.make_crl(ca, this_update=T0))
    code, report = _verify(
        capsys, tmp_path, ca, device, "--crl", path, "--at", (T0 - dt.timedelta(hours=1)).isoformat()
    )
    assert (code, report["reason"]) == (1, "REVOCATION_UNKNOWN")
    assert "in the future" in report["message"]


def test_each_crl_answers_for_what_its_issuer_issued_on_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a device under an intermediate, the intermediate's CRL (nothing revoked) and the root's, which revoked
    # the intermediate
    root = pki.make_ca("maker root", days=20 * 365)
    intermediate = pki.make_ca("maker issuing CA", issuer=root, days=15 * 365)
    device = pki.make_device(intermediate, "sensor-7", not_before=T0 - dt.timedelta(days=1), days=3650)
    issuing = _write(tmp_path / "issuing.crl", pki.make_crl(intermediate, this_update=T0))
    revoked = [(intermediate.certificate, x509.ReasonFlags.ca_compromise)]
    root_crl = _write(tmp_path / "root.crl", pki.make_crl(root, revoked, this_update=T0))
    (tmp_path / "intermediate.pem").write_text(intermediate.pem)
    # When both are given (the root as --ca, the intermediate on the path)
    extra = ["--intermediate", str(tmp_path / "intermediate.pem"), "--at", DURING]
    code, report = _verify(capsys, tmp_path, root, device, "--crl", issuing, "--crl", root_crl, *extra)
    # Then the device is good by its CA's CRL, and refused because the root revoked its CA
    assert code == 1
    assert [(a["of"], a["status"]) for a in report["revocation"]] == [
        ("the certificate", "GOOD"),
        ("its CA", "REVOKED"),
    ]
    assert (report["verdict"], report["reason"]) == ("REJECTED", "REVOKED_BY_ISSUER")
    assert report["message"].startswith("its CA: revoked by the issuer on 2030-06-01 12:00:00Z, reason cACompromise")
