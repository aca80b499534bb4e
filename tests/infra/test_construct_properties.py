"""`JustInTimeRegistration.from_properties`: typed properties synthesize the same template as the mapping they mean,
and a configuration synth refuses is refused with synth's message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from jitr.settings import RevocationSource
from jitr_cdk.construct import JustInTimeRegistration
from jitr_config.model import ConfigError
from jitr_config.properties import CaCertificate, JitrProperties, Product, RevocationSync
from jitr_tools import pki
from tests.infra.support import REGISTRATION_CODE
from tests.support import REPO


def _template(outdir: Path, build: Any) -> dict[str, Any]:
    """The template of a team's stack `Devices` to which `build(stack)` adds the construct (bundling skipped)."""
    app = cdk.App(context={"aws:cdk:bundling-stacks": []}, outdir=str(outdir))
    stack = cdk.Stack(app, "Devices")
    build(stack)
    return dict(Template.from_stack(stack).to_json())


def _same_template(tmp_path: Path, properties: JitrProperties, settings: dict[str, Any]) -> None:
    by_properties = _template(
        tmp_path / "properties",
        lambda stack: JustInTimeRegistration.from_properties(stack, "Registration", properties, REPO),
    )
    by_settings = _template(
        tmp_path / "settings",
        lambda stack: JustInTimeRegistration.from_settings(stack, "Registration", settings, REPO),
    )
    assert by_properties == by_settings


def test_properties_written_in_python_synthesize_as_the_mapping_of_the_stack_fixture(
    tmp_path: Path, issuing_ca: pki.Issued, second_ca: pki.Issued, root_ca: pki.Issued
) -> None:
    """The configuration of tests/infra's `jitr_stack`: DEFAULT mode with two CAs, a trust root, profile rules."""
    verifications = [pki.make_verification_certificate(ca, REGISTRATION_CODE).pem for ca in (issuing_ca, second_ca)]
    settings = {
        "caCertificates": [
            {"pem": ca.pem, "verificationCertificate": verification}
            for ca, verification in zip((issuing_ca, second_ca), verifications, strict=True)
        ],
        "certificateMode": "DEFAULT",
        "alarmEmail": "iot-ops@example.com",
        "cnPattern": "^sensor-[0-9]+$",
        "maxValidityDays": 825,
        "trustRoot": root_ca.pem,
        "registerThingTps": 40,
    }
    properties = JitrProperties(
        ca_certificates=[
            CaCertificate(pem=ca.pem, verification_certificate=verification)
            for ca, verification in zip((issuing_ca, second_ca), verifications, strict=True)
        ],
        certificate_mode="DEFAULT",
        alarm_email="iot-ops@example.com",
        cn_pattern="^sensor-[0-9]+$",
        max_validity_days=825,
        trust_root=root_ca.pem,
        register_thing_tps=40,
    )

    assert properties.to_settings() == settings
    _same_template(tmp_path, properties, settings)


def test_products_and_revocation_in_properties_synthesize_as_their_mapping(
    tmp_path: Path, issuing_ca: pki.Issued, second_ca: pki.Issued
) -> None:
    """Products (tests/infra/test_products_stack.py's) and a CA's revocation with its sync."""
    properties = JitrProperties(
        ca_certificates=[
            CaCertificate(
                pem=issuing_ca.pem,
                revocation=RevocationSource(crl=("s3://acme-pki-crls/issuing.crl",), on_unknown="accept"),
            ),
            second_ca.pem,
        ],
        revocation_sync=RevocationSync(schedule="rate(12 hours)", update_tps=3),
        products={
            "default": Product(ca_certificates=[issuing_ca.pem], cn_pattern="^sensor-[0-9]+$"),
            "gateway": Product(ca_certificates=[second_ca.pem], select={"OU": "gateway"}),
            "meter": Product(ca_certificates=[second_ca.pem], select={"OU": "meter"}, rejection_action="INACTIVE"),
        },
    )
    settings = {
        "caCertificates": [
            {"pem": issuing_ca.pem, "revocation": {"crl": ["s3://acme-pki-crls/issuing.crl"], "onUnknown": "accept"}},
            second_ca.pem,
        ],
        "revocationSync": {"schedule": "rate(12 hours)", "updateTps": 3},
        "products": {
            "default": {"caCertificates": [issuing_ca.pem], "cnPattern": "^sensor-[0-9]+$"},
            "gateway": {"caCertificates": [second_ca.pem], "select": {"OU": "gateway"}},
            "meter": {"caCertificates": [second_ca.pem], "select": {"OU": "meter"}, "rejectionAction": "INACTIVE"},
        },
    }

    assert properties.to_settings() == settings
    _same_template(tmp_path, properties, settings)


def test_a_configuration_synth_refuses_is_refused_with_synths_message(tmp_path: Path, issuing_ca: pki.Issued) -> None:
    properties = JitrProperties(ca_certificates=[issuing_ca.pem], register_thing_tps=0)
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "Devices")

    with pytest.raises(ConfigError) as refused:
        JustInTimeRegistration.from_properties(stack, "Registration", properties, REPO)

    assert str(refused.value) == "registerThingTps must be a whole number from 1 to 10000, got 0"
