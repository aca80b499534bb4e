"""`jitr pki`: the development CA on disk, and a verification certificate the stack's configuration accepts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from jitr.revocation import Status, check, distribution_point_urls, read_crl
from jitr_config.model import load_config
from jitr_tools import pki
from jitr_tools.cli import main
from jitr_tools.pki import revocations as pki_revocations
from tests.support import REPO

CODE = "0123456789abcdef" * 4


def test_the_development_ca_is_made_once_with_private_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pki", "ca", "--dir", str(tmp_path)]) == 0
    first = (tmp_path / "issuing-ca.pem").read_text()
    assert main(["pki", "ca", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "issuing-ca.pem").read_text() == first
    out = capsys.readouterr().out
    assert "created:" in out
    assert "exists:" in out
    for key in ("issuing-ca.key", "root-ca.key"):
        assert (tmp_path / key).stat().st_mode & 0o077 == 0


def test_a_verification_certificate_made_by_jitr_pki_passes_the_stacks_check(tmp_path: Path) -> None:
    main(["pki", "ca", "--dir", str(tmp_path)])
    out = tmp_path / "verification.pem"
    args = ["pki", "verification", "--ca", str(tmp_path / "issuing-ca.pem"), "--registration-code", CODE]
    assert main([*args, "--ca-key", str(tmp_path / "issuing-ca.key"), "--out", str(out)]) == 0
    config = load_config(
        {
            "caCertificates": [{"pem": str(tmp_path / "issuing-ca.pem"), "verificationCertificate": str(out)}],
            "certificateMode": "DEFAULT",
        },
        REPO,
    )
    assert config.cas[0].verification_pem == out.read_text()


def test_a_wrong_key_or_code_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["pki", "ca", "--dir", str(tmp_path)])
    ca = ["pki", "verification", "--ca", str(tmp_path / "issuing-ca.pem")]
    assert main([*ca, "--ca-key", str(tmp_path / "root-ca.key"), "--registration-code", CODE]) == 2
    assert main([*ca, "--ca-key", str(tmp_path / "issuing-ca.key"), "--registration-code", "XYZ"]) == 2
    err = capsys.readouterr().err
    assert "is not the key of" in err
    assert "64 lower-case hex" in err


# -- the development CA revokes, and publishes its CRL -------------------------------------------------------------


def _device(folder: Path, name: str) -> Path:
    ca, _ = pki.development_ca(folder)
    return pki.write_issued(pki.make_device(ca, name), folder / "devices", name)


def _crl(path: Path) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(path.read_bytes())


def test_jitr_pki_revoke_and_crl_publish_what_the_handler_reads_as_revoked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / ".dev-pki"
    returned, fine = _device(folder, "returned-1"), _device(folder, "fine-1")
    assert main(["pki", "revoke", str(returned), "--reason", "keyCompromise", "--dir", str(folder)]) == 0
    out = tmp_path / "issuing.crl"
    assert main(["pki", "crl", "--dir", str(folder), "--out", str(out), "--next-update-hours", "12"]) == 0
    assert "CRL #1 (new), 1 revoked" in capsys.readouterr().out

    ca, _ = pki.development_ca(folder)
    indexed = read_crl(out.read_bytes(), ca.certificate, str(out))  # signed by the dev CA, as the handler checks it
    assert indexed.number == 1
    assert indexed.next_update is not None
    assert dt.timedelta(hours=11) < indexed.next_update - indexed.this_update <= dt.timedelta(hours=12)
    revoked = check(pki.load_certificates_file(returned)[0], indexed)
    assert (revoked.status, revoked.reason) == (Status.REVOKED, "keyCompromise")
    assert check(pki.load_certificates_file(fine)[0], indexed).status == Status.GOOD


def test_the_crl_number_goes_up_only_when_the_list_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / ".dev-pki"
    first, second = _device(folder, "one"), _device(folder, "two")
    crl_file = folder / pki_revocations.CRL_FILE
    assert main(["pki", "crl", "--dir", str(folder)]) == 0
    assert (
        _crl(crl_file).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number,
        len(_crl(crl_file)),
    ) == (
        1,
        0,
    )
    issued = crl_file.read_bytes()
    assert main(["pki", "crl", "--dir", str(folder)]) == 0
    assert crl_file.read_bytes() == issued, "nothing changed: the same CRL, the same number"
    assert main(["pki", "revoke", str(first), "--dir", str(folder)]) == 0  # reason unspecified
    assert main(["pki", "revoke", str(second), "--reason", "certificateHold", "--dir", str(folder)]) == 0
    assert main(["pki", "crl", "--dir", str(folder)]) == 0
    crl = _crl(crl_file)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    unspecified = crl.get_revoked_certificate_by_serial_number(pki.load_certificates_file(first)[0].serial_number)
    assert unspecified is not None
    assert len(unspecified.extensions) == 0, "unspecified is written with no reason code (RFC 5280 5.3.1)"
    assert main(["pki", "release", str(second), "--dir", str(folder)]) == 0
    assert main(["pki", "crl", "--dir", str(folder)]) == 0
    crl = _crl(crl_file)
    assert (crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number, len(crl)) == (3, 1)
    assert "CRL #3 (new), 1 revoked" in capsys.readouterr().out


def test_a_revocation_is_permanent_and_only_a_hold_is_released(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / ".dev-pki"
    device = str(_device(folder, "held-1"))
    on = ["--dir", str(folder)]
    assert main(["pki", "release", device, *on]) == 2  # not listed
    assert main(["pki", "revoke", device, "--reason", "certificateHold", *on]) == 0
    assert main(["pki", "revoke", device, "--reason", "superseded", *on]) == 0  # a hold may become permanent
    assert main(["pki", "revoke", device, "--reason", "superseded", *on]) == 0  # the same again: no change
    assert main(["pki", "revoke", device, "--reason", "certificateHold", *on]) == 2
    assert main(["pki", "release", device, *on]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(err) == 3
    assert "not on the development CA's list" in err[0]
    assert "already revoked (superseded" in err[1]
    assert "only a certificateHold is released" in err[2]
    (entry,) = pki_revocations.Revocations(folder).listed()
    assert entry.reason == "superseded"


def test_jitr_pki_devices_name_serves_crl_as_their_distribution_point(tmp_path: Path) -> None:
    folder = tmp_path / ".dev-pki"
    assert main(["pki", "devices", "--count", "2", "--dir", str(folder)]) == 0
    assert main(["pki", "devices", "--count", "1", "--dir", str(folder), "--out", str(tmp_path / "other")]) == 0
    assert main(["pki", "devices", "--count", "1", "--dir", str(folder), "--crl-url", "", "--prefix", "x-"]) == 0
    named = pki.load_certificates_file(folder / "devices" / "sensor-00001.pem")[0]
    assert distribution_point_urls(named) == ["http://127.0.0.1:8884/issuing-ca.crl"]
    assert distribution_point_urls(pki.load_certificates_file(folder / "devices" / "x-00001.pem")[0]) == []
