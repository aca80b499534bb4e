"""The stack's configuration is checked at synth: every mistake is refused with a message that says what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.config import ConfigError, load_config, raw_settings
from jitr_tools import pki
from tests.conftest import REPO

CODE = "a" * 64


@pytest.fixture
def ca_file(tmp_path: Path, issuing_ca: pki.Issued) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text(issuing_ca.pem)
    return path


def configure(settings: dict[str, object], **kwargs: object) -> object:
    return load_config({"template": str(REPO / "templates/jitr-device.json"), **settings}, REPO, **kwargs)


def test_a_configured_ca_is_read_with_its_aws_certificate_id(ca_file: Path, issuing_ca: pki.Issued) -> None:
    from jitr.certificates import certificate_id

    config = configure({"caCertificates": [str(ca_file)]})
    assert [ca.certificate_id for ca in config.cas] == [certificate_id(issuing_ca.certificate)]
    assert config.provisioning_mode == "jitr"
    assert config.certificate_mode == "SNI_ONLY"
    assert not config.development_ca


def test_inline_pem_is_accepted_and_only_the_first_certificate_of_a_bundle_is_registered(
    issuing_ca: pki.Issued,
) -> None:
    config = configure({"caCertificates": [issuing_ca.pem + issuing_ca.chain_pem]})
    assert config.cas[0].pem == issuing_ca.pem


def test_default_mode_without_a_verification_certificate_says_how_to_make_one(ca_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"jitr pki verification .*get-registration-code"):
        configure({"caCertificates": [str(ca_file)], "certificateMode": "DEFAULT"})


def test_default_mode_with_a_good_verification_certificate(tmp_path: Path, issuing_ca: pki.Issued) -> None:
    verification = pki.make_verification_certificate(issuing_ca, CODE)
    config = configure(
        {
            "caCertificates": [{"pem": issuing_ca.pem, "verificationCertificate": verification.pem}],
            "certificateMode": "DEFAULT",
        }
    )
    assert config.cas[0].verification_pem == verification.pem


def test_a_verification_certificate_signed_by_another_key_is_refused(
    issuing_ca: pki.Issued, root_ca: pki.Issued
) -> None:
    forged = pki.make_device(issuing_ca, CODE, signer=root_ca.key, key_usage=False)
    with pytest.raises(ConfigError, match="not signed by this CA"):
        configure(
            {
                "caCertificates": [{"pem": issuing_ca.pem, "verificationCertificate": forged.pem}],
                "certificateMode": "DEFAULT",
            }
        )


def test_a_verification_certificate_without_the_registration_code_is_refused(issuing_ca: pki.Issued) -> None:
    wrong = pki.make_verification_certificate(issuing_ca, "not-a-code")
    with pytest.raises(ConfigError, match="registration code"):
        configure(
            {
                "caCertificates": [{"pem": issuing_ca.pem, "verificationCertificate": wrong.pem}],
                "certificateMode": "DEFAULT",
            }
        )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"provisioningMode": "jitrr"}, "provisioningMode must be one of jitr, jitp"),
        ({"certificateMode": "sni"}, "certificateMode must be one of DEFAULT, SNI_ONLY"),
        ({"rejectionAction": "DELETE"}, "rejectionAction must be one of"),
        ({"deviceProfile": "lenient"}, "deviceProfile must be one of"),
        ({"registerThingTps": 0}, "registerThingTps must be a whole number"),
        ({"maxReceiveCount": "5"}, "maxReceiveCount must be a whole number"),
        ({"alarmEmail": "ops"}, "not an e-mail address"),
        ({"cnPattern": "(unclosed"}, "cnPattern is not a regular expression"),
        ({"templateName": "has space"}, "templateName"),
        ({"caCertifcates": []}, "unknown setting"),
        ({"template": "templates/missing.json"}, "does not exist"),
    ],
)
def test_bad_settings_are_named(ca_file: Path, settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({"caCertificates": [str(ca_file)], **settings}, REPO)


def test_a_device_certificate_is_not_a_ca(issuing_ca: pki.Issued) -> None:
    device = pki.make_device(issuing_ca, "sensor-1")
    with pytest.raises(ConfigError, match="is not a CA certificate"):
        configure({"caCertificates": [device.pem]})


def test_a_broken_pem_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a readable PEM"):
        configure({"caCertificates": ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]})


def test_the_same_ca_twice_is_refused(ca_file: Path) -> None:
    with pytest.raises(ConfigError, match="twice"):
        configure({"caCertificates": [str(ca_file), str(ca_file)]})


def test_a_broken_template_fails_with_the_engines_messages(tmp_path: Path, ca_file: Path) -> None:
    template = json.loads((REPO / "templates/jitr-device.json").read_text())
    template["Resources"]["thing"]["Properties"]["ThingName"] = {"Fn::If": ["x", "a", "b"]}
    template["Resources"]["certificate"]["Properties"]["Status"] = "INACTIVE"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(template))
    with pytest.raises(ConfigError) as raised:
        load_config({"caCertificates": [str(ca_file)], "template": str(path)}, REPO)
    text = str(raised.value)
    assert "Resources.thing.Properties.ThingName" in text
    assert "Fn::If" in text


def test_jitp_mode_needs_defaults_for_parameters_aws_does_not_fill(tmp_path: Path, ca_file: Path) -> None:
    template = json.loads((REPO / "templates/jitr-device.json").read_text())
    del template["Parameters"]["ProvisionedBy"]["Default"]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(template))
    with pytest.raises(ConfigError, match="ProvisionedBy need a Default"):
        load_config({"caCertificates": [str(ca_file)], "template": str(path), "provisioningMode": "jitp"}, REPO)


def test_without_a_ca_the_development_ca_is_made_once_and_flagged(tmp_path: Path) -> None:
    first = configure({"developmentPki": str(tmp_path / "pki")})
    second = configure({"developmentPki": str(tmp_path / "pki")})
    assert first.development_ca
    assert first.cas == second.cas
    assert "generated now" in first.notes[0]
    assert "generated earlier" in second.notes[0]
    assert oct((tmp_path / "pki" / "issuing-ca.key").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ConfigError, match="caCertificates is empty"):
        configure({}, development_ca=None)


def test_a_config_file_named_in_context_overrides_cdk_json(tmp_path: Path) -> None:
    (tmp_path / "prod.json").write_text(json.dumps({"rejectionAction": "INACTIVE"}))
    settings = raw_settings(
        {"jitr": {"rejectionAction": "REVOKED", "registerThingTps": 20}, "jitr:configFile": "prod.json"}, tmp_path
    )
    assert settings == {"rejectionAction": "INACTIVE", "registerThingTps": 20}
    with pytest.raises(ConfigError, match="does not exist"):
        raw_settings({"jitr:configFile": "missing.json"}, tmp_path)
