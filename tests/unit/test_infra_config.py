"""The stack's configuration is checked at synth: every mistake is refused with a message that says what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jitr_config.model import ConfigError, load_config, raw_settings
from jitr_tools import pki
from tests.support import REPO

CODE = "a" * 64


@pytest.fixture
def ca_file(tmp_path: Path, issuing_ca: pki.Issued) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text(issuing_ca.pem)
    return path


def configure(settings: dict[str, object], **kwargs: object) -> object:
    kwargs.setdefault("development_ca", pki.development_ca_pem)  # as app.py passes it
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
        ({"devicePolicyParameter": []}, "devicePolicyParameter must be the name of a template parameter"),
        ({"caCertifcates": []}, "unknown setting"),
        ({"template": "templates/missing.json"}, "does not exist"),
        ({"decisionEvents": True}, "decisionEvents must be an object"),
        ({"decisionEvents": {"topic": "x"}}, "decisionEvents must be an object"),
        ({"decisionEvents": {"enabled": "yes"}}, "decisionEvents.enabled must be true or false"),
        ({"decisionEvents": {"bus": "my bus"}}, "decisionEvents.bus must be an event bus name"),
        ({"decisionEvents": {"bus": "aws.partner/x"}}, "not a partner bus"),
        ({"decisionEvents": {"bus": "arn:aws:sns:us-east-1:123456789012:topic"}}, "decisionEvents.bus"),
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


# -- synth refuses what it can see (the deployment's mistakes would leave every device pending) ----------------------


def _template_file(tmp_path: Path, thing: dict[str, object], parameters: dict[str, object] | None = None) -> str:
    document = json.loads((REPO / "templates/jitr-device.json").read_text())
    document["Parameters"].update(parameters or {})
    document["Resources"]["thing"]["Properties"].update(thing)
    path = tmp_path / "template.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_a_ca_the_default_profile_can_never_accept_is_refused_and_aws_openssl_named(tmp_path: Path) -> None:
    tutorial_ca = pki.make_ca("made with AWS's openssl commands", key_usage=False)
    with pytest.raises(ConfigError, match=r"caCertificates\[0\]: deviceProfile 'strict' can never accept.*aws-openssl"):
        configure({"caCertificates": [tutorial_ca.pem]})
    assert configure({"caCertificates": [tutorial_ca.pem], "deviceProfile": "aws-openssl"}).device_profile == (
        "aws-openssl"
    )


def test_a_trust_root_that_did_not_issue_every_ca_is_refused(root_ca: pki.Issued, issuing_ca: pki.Issued) -> None:
    stranger = pki.make_ca("a root that issued nothing here")
    with pytest.raises(
        ConfigError, match=r"caCertificates\[1\]: deviceProfile 'strict' with trustRoot .*did not issue"
    ):
        configure({"caCertificates": [issuing_ca.pem, stranger.pem + ""], "trustRoot": root_ca.pem})
    assert configure({"caCertificates": [issuing_ca.pem], "trustRoot": root_ca.pem}).trust_root_pem == root_ca.pem


def test_a_parameter_nobody_supplies_is_refused_naming_extra_parameters(tmp_path: Path, ca_file: Path) -> None:
    template = _template_file(tmp_path, {"AttributePayload": {"site": {"Ref": "Site"}}}, {"Site": {"Type": "String"}})
    with pytest.raises(ConfigError, match=r"Site have no Default.*extraParameters"):
        configure({"caCertificates": [str(ca_file)], "template": template})
    config = configure({"caCertificates": [str(ca_file)], "template": template, "extraParameters": {"Site": "p-7"}})
    assert config.extra_parameters == {"Site": "p-7"}


def test_an_extra_parameter_value_that_cannot_render_is_refused(tmp_path: Path, ca_file: Path) -> None:
    template = _template_file(
        tmp_path,
        {"ThingName": {"Fn::Join": ["", [{"Ref": "Prefix"}, {"Ref": "AWS::IoT::Certificate::CommonName"}]]}},
        {"Prefix": {"Type": "String"}},
    )
    settings = {"caCertificates": [str(ca_file)], "template": template}
    with pytest.raises(ConfigError, match=r"does not render with the deployment's parameters"):
        configure({**settings, "extraParameters": {"Prefix": "plant 7/"}})
    configure({**settings, "extraParameters": {"Prefix": "plant7-"}})


@pytest.mark.parametrize(
    ("thing", "kind"),
    [
        ({"ThingGroups": ["fleet-eu"]}, "thingGroups"),
        ({"ThingTypeName": "sensor"}, "thingTypes"),
        ({"BillingGroup": "eu-billing"}, "billingGroups"),
    ],
)
def test_a_resource_the_stack_neither_creates_nor_lists_is_refused(
    tmp_path: Path, ca_file: Path, thing: dict[str, object], kind: str
) -> None:
    settings = {"caCertificates": [str(ca_file)], "template": _template_file(tmp_path, thing)}
    with pytest.raises(ConfigError, match=rf"create it, then list it in existingResources\.{kind}"):
        configure(settings)
    (name,) = [v[0] if isinstance(v, list) else v for v in thing.values()]
    assert configure({**settings, "existingResources": {kind: [name]}}).existing_resources == {kind: (name,)}


def test_a_named_policy_must_be_listed_too(tmp_path: Path, ca_file: Path) -> None:
    document = json.loads((REPO / "templates/jitr-device.json").read_text())
    document["Resources"]["policy"]["Properties"] = {"PolicyName": "fleet-policy"}
    path = tmp_path / "named-policy.json"
    path.write_text(json.dumps(document))
    settings = {"caCertificates": [str(ca_file)], "template": str(path)}
    with pytest.raises(ConfigError, match=r"policy 'fleet-policy'.*existingResources\.policies"):
        configure(settings)
    configure({**settings, "existingResources": {"policies": ["fleet-policy"]}})


def test_a_name_computed_from_the_certificate_is_a_note_not_an_error(tmp_path: Path, ca_file: Path) -> None:
    template = _template_file(
        tmp_path,
        {"ThingGroups": [{"Ref": "AWS::IoT::Certificate::OrganizationalUnit"}]},
        {"AWS::IoT::Certificate::OrganizationalUnit": {"Type": "String"}},
    )
    config = configure({"caCertificates": [str(ca_file)], "template": template})
    assert any("computed from the device certificate" in note for note in config.notes)  # type: ignore[attr-defined]


def test_a_template_leaking_a_certificate_field_into_a_policy_fails_the_synth(tmp_path: Path, ca_file: Path) -> None:
    document = json.loads((REPO / "templates/jitr-device.json").read_text())
    document["Resources"]["policy"]["Properties"] = {
        "PolicyDocument": {
            "Fn::Sub": '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect",'
            '"Resource":"client/${AWS::IoT::Certificate::CommonName}"}]}'
        }
    }
    path = tmp_path / "leaky.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match=r"JITR_CERTIFICATE_FIELD_IN_POLICY"):
        configure({"caCertificates": [str(ca_file)], "template": str(path)})


def test_ownership_and_clock_skew_settings(ca_file: Path) -> None:
    config = configure({"caCertificates": [str(ca_file)], "existingThing": "replace", "clockSkewSeconds": 60})
    assert (config.existing_thing, config.clock_skew_seconds) == ("replace", 60)  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="existingThing must be one of refuse, replace"):
        configure({"caCertificates": [str(ca_file)], "existingThing": "steal"})
    with pytest.raises(ConfigError, match="clockSkewSeconds must be a whole number from 0 to 3600"):
        configure({"caCertificates": [str(ca_file)], "clockSkewSeconds": 3601})
