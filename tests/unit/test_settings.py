"""One source for every setting: what the stack writes into the function's environment, the handler reads back."""

from __future__ import annotations

import pytest

from jitr.enrollment import EnrollmentSettings
from jitr.hook import HookSettings
from jitr.products import Product
from jitr.settings import RevocationSource, Settings, SettingsError


def test_every_setting_round_trips_through_the_environment() -> None:
    settings = Settings(
        template_name="jitr-device",
        rejection_action="INACTIVE",
        device_profile="aws-openssl",
        cn_pattern=r"sensor-\d+",
        max_validity_days=397,
        trust_root_pem="-----BEGIN CERTIFICATE-----\n...",
        extra_parameters={"Site": "plant-7"},
        certificate_extensions={"Batch": "1.3.6.1.4.1.55555.1"},
        existing_thing="replace",
        clock_skew_seconds=60,
        template_cache_seconds=12.5,
        ca_cache_seconds=30,
        decision_table="jitr-decisions",
        decision_retention_days=7,
        max_attempts=3,
        endpoint_url="http://127.0.0.1:5000",
        register_thing_tps=40,
        iot_quotas={"DescribeCertificate": 20},
        max_concurrency=20,
        revocation={
            "ab" * 32: RevocationSource(
                crl=("s3://pki-bucket/crl/ca.crl", "http://crl.example/ca.crl"),
                certificate_hosts=("crl.example",),
                grace_seconds=60,
                on_unknown="accept",
            )
        },
        revocation_allow_loopback=True,
        sync_update_tps=3,
        event_bus="arn:aws:events:us-east-1:123456789012:event-bus/fleet",
        products=(
            Product(name="sensor", cas=("cd" * 32,), template="jitr-sensor", cn_pattern=r"sensor-\d+"),
            Product(
                name="gateway",
                cas=("cd" * 32, "ef" * 32),
                select={"OU": "gateway|edge"},
                template="jitr-gateway",
                rejection_action="INACTIVE",
                device_profile="aws-openssl",
                max_validity_days=825,
                extra_parameters={"Site": "plant-7"},
                certificate_extensions={"Batch": "1.3.6.1.4.1.55555.1"},
                existing_thing="replace",
                enrollment=EnrollmentSettings(by="serialNumber"),
                hook=HookSettings(function="fleet-allow-list", timeout_seconds=2, parameters=("Site",)),
            ),
        ),
        enrollment_table="jitr-enrollment",
    )
    environment = settings.to_environment()
    assert set(environment) == {field.alias for field in Settings.model_fields.values()}  # every one travels
    assert all(name.startswith("JITR_") for name in environment)
    assert Settings.from_environment(environment) == settings
    assert settings.register_rate_per_s == 2.0
    assert settings.profile.cn_pattern == r"sensor-\d+"


def test_defaults_are_the_models_and_unset_values_stay_unset() -> None:
    environment = Settings(template_name="t").to_environment()
    assert environment["JITR_REJECTION_ACTION"] == "REVOKED"
    assert environment["JITR_CLOCK_SKEW_SECONDS"] == "300"
    assert "JITR_TRUST_ROOT_PEM" not in environment
    assert Settings.from_environment(environment) == Settings(template_name="t")


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({}, "JITR_TEMPLATE_NAME"),
        ({"JITR_TEMPLATE_NAME": "t", "JITR_REJECTION_ACTION": "DELETE"}, "JITR_REJECTION_ACTION"),
        ({"JITR_TEMPLATE_NAME": "t", "JITR_EXTRA_PARAMETERS": "[1]"}, "JITR_EXTRA_PARAMETERS"),
        ({"JITR_TEMPLATE_NAME": "t", "JITR_EXTRA_PARAMETERS": "{"}, "JITR_EXTRA_PARAMETERS"),
        ({"JITR_TEMPLATE_NAME": "t", "JITR_CN_PATTERN": "["}, "JITR_CN_PATTERN"),
        ({"JITR_TEMPLATE_NAME": "t", "JITR_CLOCK_SKEW_SECONDS": "-1"}, "JITR_CLOCK_SKEW_SECONDS"),
        ({"JITR_TEMPLATE_NAME": "t", "JITR_REVOCATION": "{"}, "JITR_REVOCATION"),
        ({"JITR_TEMPLATE_NAME": "t", "JITR_REVOCATION": '{"ca": {"onUnknown": "revoke"}}'}, "JITR_REVOCATION"),
        ({"JITR_TEMPLATE_NAME": "t", "JITR_REVOCATION": '{"ca": {"crls": []}}'}, "JITR_REVOCATION"),
    ],
)
def test_a_wrong_setting_is_named(environment: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_environment(environment)


def test_the_revocation_sync_takes_its_share_of_update_certificate_and_the_handlers_the_rest() -> None:
    plain = Settings(template_name="t", register_thing_tps=10, max_concurrency=4)
    synced = Settings(
        template_name="t",
        register_thing_tps=10,
        max_concurrency=4,
        revocation={"ab" * 32: RevocationSource(crl=("s3://b/k",))},
        sync_update_tps=2,
    )
    assert plain.rates_per_s["UpdateCertificate"] == 10 / 4
    assert synced.rates_per_s["UpdateCertificate"] == (10 - 2) / 4
    assert synced.rates_per_s["DescribeCertificate"] == plain.rates_per_s["DescribeCertificate"]


def test_a_cas_revocation_settings_travel_without_their_defaults() -> None:
    settings = Settings(template_name="t", revocation={"ab" * 32: RevocationSource(crl=("s3://b/k",))})
    assert settings.to_environment()["JITR_REVOCATION"] == '{"' + "ab" * 32 + '":{"crl":["s3://b/k"]}}'
    assert Settings.from_environment(settings.to_environment()) == settings


@pytest.mark.parametrize("responder_url", ["ftp://ocsp.test/", "ldap://ocsp.test/", "file:///etc/passwd", "ocsp.test"])
def test_only_http_and_https_responders_are_configurable(responder_url: str) -> None:
    environment = {"JITR_TEMPLATE_NAME": "t", "JITR_REVOCATION": f'{{"ca": {{"ocsp": ["{responder_url}"]}}}}'}
    with pytest.raises(SettingsError, match="JITR_REVOCATION") as refused:
        Settings.from_environment(environment)
    assert "is not an http:// or https:// OCSP responder URL" in str(refused.value)


def test_the_ocsp_settings_travel_in_camel_case() -> None:
    source = RevocationSource.model_validate(
        {"ocsp": ["https://ocsp.maker.example/"], "ocspFromCertificate": True, "ocspMaxAgeSeconds": 600}
    )
    assert (source.ocsp, source.ocsp_from_certificate, source.ocsp_max_age_seconds) == (
        ("https://ocsp.maker.example/",),
        True,
        600,
    )
    settings = Settings(template_name="t", revocation={"ca": source})
    assert Settings.from_environment(settings.to_environment()) == settings
    assert '"ocspFromCertificate":true' in settings.to_environment()["JITR_REVOCATION"]


def test_without_revocation_no_revocation_setting_travels() -> None:
    environment = Settings(template_name="t").to_environment()
    assert not {name for name in environment if "REVOCATION" in name or "SYNC" in name}
