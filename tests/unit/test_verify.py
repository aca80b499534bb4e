"""`verify_device_certificate` and `jitr verify`: every reason, with PKI built in fixtures."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from jitr.certificates import CertificateRejected, DeviceProfile, Undecided, verify_device_certificate
from jitr_tools import pki
from jitr_tools.cli import main


def reason(device: pki.Issued, ca: pki.Issued, **kwargs: object) -> str:
    with pytest.raises(CertificateRejected) as caught:
        verify_device_certificate(device.pem, ca.pem, **kwargs)  # type: ignore[arg-type]
    assert caught.value.message
    return caught.value.reason


def test_good_cn_only_device_is_accepted(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "sensor-1")
    verified = verify_device_certificate(device.pem.encode(), issuing_ca.pem.encode())
    assert [c.subject for c in verified.chain] == [device.certificate.subject, issuing_ca.certificate.subject]


def test_rsa_and_p384_and_client_auth_eku_are_accepted(issuing_ca: pki.Issued) -> None:
    for options in ({"key": "rsa2048"}, {"key": "ec384"}, {"eku": pki.CLIENT_AUTH}, {"san": ["sensor.example.com"]}):
        verify_device_certificate(pki.make_device(issuing_ca, "d", **options).pem, issuing_ca.pem)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"signer": "other"}, "UNTRUSTED_CHAIN"),
        ({"key": "rsa1024"}, "WEAK_KEY"),
        ({"key": "ec192"}, "WEAK_KEY"),
        ({"eku": pki.SERVER_AUTH_ONLY}, "NOT_CLIENT_AUTH"),
        ({"days": 30, "not_before": pki.now() - dt.timedelta(days=60)}, "EXPIRED"),
        ({"not_before": pki.now() + dt.timedelta(days=1)}, "NOT_YET_VALID"),
    ],
)
def test_refusals(issuing_ca: pki.Issued, options: dict[str, object], expected: str) -> None:
    if options.get("signer") == "other":
        options = {"signer": pki.new_key()}
    assert reason(pki.make_device(issuing_ca, "d", **options), issuing_ca) == expected  # type: ignore[arg-type]


def test_sha1_and_version1_are_refused_by_default(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "d")
    assert reason(pki.resign(device, issuing_ca.key, hash_name="sha1"), issuing_ca) == "WEAK_SIGNATURE"
    assert reason(pki.resign(device, issuing_ca.key, version1=True), issuing_ca) == "LEGACY_V1_CERTIFICATE"


def undecided(device: pki.Issued, ca: pki.Issued, **kwargs: object) -> str:
    with pytest.raises(Undecided) as caught:
        verify_device_certificate(device.pem, ca.pem, **kwargs)  # type: ignore[arg-type]
    assert caught.value.message
    return caught.value.reason


def test_aws_openssl_profile_accepts_what_the_aws_tutorial_makes() -> None:
    ca = pki.make_ca("tutorial CA", key_usage=False, key="rsa2048")
    device = pki.resign(pki.make_device(ca, "d", key="rsa2048"), ca.key, version1=True)
    # strict: a CA needs keyUsage; that is the CA's fault, never the device's
    assert undecided(pki.make_device(ca, "v3"), ca) == "CA_UNUSABLE"
    assert verify_device_certificate(device.pem, ca.pem, profile="aws-openssl").profile == "aws-openssl"
    forged = pki.resign(pki.make_device(ca, "d"), pki.new_key("rsa2048"), version1=True)
    assert reason(forged, ca, profile="aws-openssl") == "UNTRUSTED_CHAIN"


def test_intermediates_and_a_configured_root(root_ca: pki.Issued, issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "d")
    assert len(verify_device_certificate(device.pem, root_ca.pem, [issuing_ca.pem]).chain) == 3
    assert len(verify_device_certificate(device.pem, issuing_ca.pem, root_pem=root_ca.pem).chain) == 3
    assert reason(device, root_ca) == "UNTRUSTED_CHAIN"  # intermediate missing
    stranger = pki.make_ca("stranger")
    assert undecided(device, issuing_ca, root_pem=stranger.pem) == "CA_UNUSABLE"  # the root did not issue the CA


def test_profile_options(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "camera-1", days=800)
    assert reason(device, issuing_ca, profile=DeviceProfile(cn_pattern=r"sensor-\d+")) == "CN_MISMATCH"
    assert reason(device, issuing_ca, profile=DeviceProfile(max_validity_days=397)) == "VALIDITY_TOO_LONG"


def test_verifies_at_a_given_time(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "d", days=10)
    later = pki.now() + dt.timedelta(days=30)
    assert reason(device, issuing_ca, at=later) == "EXPIRED"
    with pytest.raises(ValueError, match="aware"):
        verify_device_certificate(device.pem, issuing_ca.pem, at=dt.datetime(2026, 1, 1))


def test_broken_pem_is_malformed(issuing_ca: pki.Issued) -> None:
    with pytest.raises(CertificateRejected) as caught:
        verify_device_certificate(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", issuing_ca.pem)
    assert caught.value.reason == "MALFORMED_CERTIFICATE"


def test_jitr_verify_explains_a_refusal_in_one_line(
    tmp_path: Path, issuing_ca: pki.Issued, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ca.pem").write_text(issuing_ca.pem)
    (tmp_path / "weak.pem").write_text(pki.make_device(issuing_ca, "d", key="rsa1024").pem)
    (tmp_path / "good.pem").write_text(pki.make_device(issuing_ca, "d").pem)
    base = ["verify", "--ca", str(tmp_path / "ca.pem"), "--cert"]
    assert main([*base, str(tmp_path / "weak.pem")]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["REJECTED WEAK_KEY: RSA key of 1024 bits; at least 2048 bits are required"]
    assert main([*base, str(tmp_path / "good.pem"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accepted"] is True
    assert main([*base, str(tmp_path / "good.pem"), "--at", "2028-01-01T00:00:00", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["reason"] == "EXPIRED"
    assert main([*base, str(tmp_path / "good.pem"), "--at", "2099-01-01T00:00:00"]) == 1  # the CA has expired
    assert capsys.readouterr().out.startswith("RETRY CA_UNUSABLE: the registered CA CN=test issuing CA")


def test_jitr_verify_takes_the_development_pkis_chain_files_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the development PKI's files: a device's .pem is the device, its CA and the root; issuing-ca.pem is the
    # CA and the root
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for folder in (ours, theirs):
        assert main(["pki", "devices", "--count", "1", "--dir", str(folder)]) == 0
    capsys.readouterr()
    device, ca = ours / "devices" / "sensor-00001.pem", ours / f"{pki.ISSUING_STEM}.pem"
    assert [len(pki.load_certificates_file(path)) for path in (device, ca)] == [3, 2]

    # When they are verified as written, Then the first of each file is the device and the registered CA
    assert main(["verify", "--cert", str(device), "--ca", str(ca), "--json"]) == 0
    chain = json.loads(capsys.readouterr().out)["chain"]
    assert chain == ["CN=sensor-00001", "CN=jitr development issuing CA,O=jitr dev"]

    # and the chain a device's file carries is no trust of its own: another PKI's device, with its own CA and root
    # in its file, does not chain to the registered CA
    stranger = theirs / "devices" / "sensor-00001.pem"
    assert main(["verify", "--cert", str(stranger), "--ca", str(ca)]) == 1
    assert capsys.readouterr().out.startswith("REJECTED UNTRUSTED_CHAIN: ")

    # and a CA file's chain names a root above the registered CA only when --root says so
    root = ours / f"{pki.ROOT_STEM}.pem"
    assert main(["verify", "--cert", str(device), "--ca", str(ca), "--root", str(root), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["chain"]) == 3
