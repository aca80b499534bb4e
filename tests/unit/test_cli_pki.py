"""`jitr pki`: the development CA on disk, and a verification certificate the stack's configuration accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import load_config
from jitr_tools.cli import main
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
