"""Revocation settings in the stack's configuration: each CA's `revocation` object and `revocationSync`, checked at
synth with a sentence naming the setting, and carried into the handler's settings under the CA's certificate id."""

from __future__ import annotations

from typing import Any

import pytest

from jitr.certificates import certificate_id
from jitr.settings import RevocationSource, Settings
from jitr_config.model import ConfigError, JitrConfig, load_config
from jitr_tools import pki
from tests.support import REPO

CRL = "https://crl.example.com/issuing.crl"
PCA_CRL = "s3://pki-crls/crl/5c8f7e0a-1234-4321-abcd-0123456789ab.crl"


def configure(settings: dict[str, Any]) -> JitrConfig:
    return load_config(
        {"template": str(REPO / "templates/jitr-device.json"), **settings}, REPO, development_ca=pki.development_ca_pem
    )


def with_revocation(ca: pki.Issued, revocation: Any, **settings: Any) -> JitrConfig:
    return configure({"caCertificates": [{"pem": ca.pem, "revocation": revocation}], **settings})


def test_a_cas_revocation_reaches_the_handler_under_its_certificate_id(
    issuing_ca: pki.Issued, root_ca: pki.Issued
) -> None:
    config = configure(
        {
            "caCertificates": [
                {"pem": issuing_ca.pem, "revocation": {"crl": [PCA_CRL, CRL], "onUnknown": "accept"}},
            ],
            "trustRoot": {"pem": root_ca.pem, "revocation": {"crl": ["http://crl.example.com/root.crl"]}},
        }
    )
    issuing_id, root_id = certificate_id(issuing_ca.certificate), certificate_id(root_ca.certificate)
    settings = config.handler_settings("template", "table")
    assert settings.revocation == {
        issuing_id: RevocationSource(crl=(PCA_CRL, CRL), on_unknown="accept"),
        root_id: RevocationSource(crl=("http://crl.example.com/root.crl",)),
    }
    assert config.trust_root_pem == root_ca.pem
    # the variable the stack writes reads back into the same settings
    assert Settings.from_environment(settings.to_environment()).revocation == settings.revocation
    assert config.revocation_s3_objects == (("pki-crls", "crl/5c8f7e0a-1234-4321-abcd-0123456789ab.crl"),)
    assert config.revocation_sync is not None
    assert (config.revocation_sync.schedule, config.revocation_sync.update_tps) == ("rate(1 day)", 2.0)


def test_without_revocation_nothing_changes(issuing_ca: pki.Issued, root_ca: pki.Issued) -> None:
    config = configure({"caCertificates": [issuing_ca.pem], "trustRoot": root_ca.pem})
    assert config.revocation == {}
    assert config.revocation_sync is None
    assert "JITR_REVOCATION" not in config.handler_settings("template", "table").to_environment()


def test_a_revocation_sync_setting_without_revocation_is_a_note(issuing_ca: pki.Issued) -> None:
    config = configure({"caCertificates": [issuing_ca.pem], "revocationSync": {"schedule": "rate(6 hours)"}})
    assert any("revocationSync has no effect" in note for note in config.notes)


@pytest.mark.parametrize(
    ("revocation", "message"),
    [
        ("https://crl.example.com/x.crl", r"caCertificates\[0\]\.revocation must be an object with any of crl, "),
        ({"crls": [CRL]}, r"caCertificates\[0\]\.revocation has unknown key\(s\) crls; known: crl, certificateHosts"),
        ({}, r"caCertificates\[0\]\.revocation names no source: give crl .* or certificateHosts"),
        ({"crl": CRL}, r"caCertificates\[0\]\.revocation\.crl: Input should be a valid array"),
        ({"crl": [CRL], "graceSeconds": -1}, r"revocation\.graceSeconds: Input should be greater than or equal to 0"),
        ({"crl": [CRL], "graceSeconds": "60"}, r"revocation\.graceSeconds: Input should be a valid integer"),
        ({"crl": [CRL], "cacheSeconds": 8 * 86_400}, r"revocation\.cacheSeconds: Input should be less than or equal"),
        ({"crl": [CRL], "maxBytes": 1023}, r"revocation\.maxBytes: Input should be greater than or equal to 1024"),
        ({"crl": [CRL], "timeoutSeconds": 0}, r"revocation\.timeoutSeconds: Input should be greater than 0"),
        ({"crl": [CRL], "timeoutSeconds": 31}, r"revocation\.timeoutSeconds: Input should be less than or equal to 30"),
        ({"crl": [CRL], "timeoutSeconds": True}, r"revocation\.timeoutSeconds: Input should be a valid number"),
        ({"crl": [CRL], "onUnknown": "provision"}, r"revocation\.onUnknown: Input should be 'retry' or 'accept'"),
        ({"crl": [CRL, 7]}, r"revocation\.crl\[1\]: Input should be a valid string"),
    ],
)
def test_a_bad_revocation_object_is_named(issuing_ca: pki.Issued, revocation: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        with_revocation(issuing_ca, revocation)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://crl.example.com/x.crl", "only http://, https:// and s3://bucket/key URLs are read"),
        ("file:///etc/passwd", "only http://, https:// and s3://bucket/key URLs are read"),
        ("crl.example.com/x.crl", "only http://, https:// and s3://bucket/key URLs are read"),
        ("https://user:secret@crl.example.com/x.crl", "a URL with a user name or password is refused"),
        ("https://crl.example.com:99999/x.crl", "not a URL"),
        ("http://127.0.0.1/x.crl", "its host is a loopback address"),
        ("http://[::1]/x.crl", "its host is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "its host is the instance metadata service"),
        ("http://[fd00:ec2::254]/", "the instance metadata service"),
        ("http://[::ffff:169.254.169.254]/", "the instance metadata service"),
        ("http://169.254.170.2/v2/credentials", "its host is a link-local address"),
        ("http://[fe80::1]/x.crl", "its host is a link-local address"),
        ("http://224.0.0.1/x.crl", "a multicast address"),
        ("http://0.0.0.0/x.crl", "unspecified address"),
        ("http://100.64.0.1/x.crl", "a shared"),
        ("http://localhost/x.crl", "its host is this machine"),
        ("http://crl.localhost/x.crl", "its host is this machine"),
        ("http://2130706433/x.crl", "not a plain host name"),
        ("http://crl.example.com./x.crl", "not a plain host name"),
        ("http://crl_example.com/x.crl", "not a plain host name"),
        ("https:///x.crl", "its host is empty"),
        ("s3://pki-crls", "an S3 source is s3://bucket/key"),
        ("s3:///crl/x.crl", "an S3 source is s3://bucket/key"),
        ("s3://pki-crls/", "an S3 source is s3://bucket/key"),
        ("s3://Pki_Crls/x.crl", "an S3 source is s3://bucket/key"),
        ("s3://pki-crls:443/x.crl", "an S3 source is s3://bucket/key"),
        ("s3://pki-crls/x.crl?versionId=1", "an S3 source is s3://bucket/key"),
        ("s3://me@pki-crls/x.crl", "a URL with a user name or password is refused"),
        ("s3://pki-crls/crl/*", "holds \\*, \\? or \\$, which IAM would read as a wildcard"),
        ("s3://pki-crls/${aws:username}.crl", "holds \\*, \\? or \\$"),
    ],
)
def test_a_crl_source_the_handler_would_refuse_is_refused_at_synth(
    issuing_ca: pki.Issued, url: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=r"caCertificates\[0\]\.revocation\.crl\[1\] '.*': .*" + message):
        with_revocation(issuing_ca, {"crl": [CRL, url]})


@pytest.mark.parametrize(
    "url",
    [
        "http://crl.example.com/x.crl",
        "https://crl.example.com:8443/path/x.crl?partition=1",
        "http://10.0.0.12/x.crl",  # a configured CRL server in the VPC may be private
        "http://[2001:db8::1]/x.crl",
        "s3://pki-crls/crl/x.crl",
        "s3://pki.crls.example/a/b/c.crl",
    ],
)
def test_crl_sources_a_real_pki_uses_are_accepted(issuing_ca: pki.Issued, url: str) -> None:
    assert with_revocation(issuing_ca, {"crl": [url]}).revocation


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("https://crl.example.com", "is not a plain host name"),
        ("crl.example.com:80", "is not a plain host name"),
        ("crl.example.com/x", "is not a plain host name"),
        ("", "is empty"),
        ("localhost", "is this machine"),
        ("169.254.169.254", "is the instance metadata service"),
        ("127.0.0.1", "is a loopback address"),
        ("10.0.0.12", "is a private address"),  # a certificate may not lead the function into the VPC
    ],
)
def test_certificate_hosts_are_plain_public_host_names(issuing_ca: pki.Issued, host: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"caCertificates\[0\]\.revocation\.certificateHosts\[0\] '.*' " + message):
        with_revocation(issuing_ca, {"certificateHosts": [host]})
    assert with_revocation(issuing_ca, {"certificateHosts": ["crl.example.com", "CRL2.example.com"]}).revocation


def test_the_trust_roots_revocation_is_checked_and_named(issuing_ca: pki.Issued, root_ca: pki.Issued) -> None:
    with pytest.raises(ConfigError, match=r"trustRoot\.revocation\.crl\[0\] 'http://localhost/root.crl': "):
        configure(
            {
                "caCertificates": [issuing_ca.pem],
                "trustRoot": {"pem": root_ca.pem, "revocation": {"crl": ["http://localhost/root.crl"]}},
            }
        )
    with pytest.raises(ConfigError, match="trustRoot must be PEM text, a PEM file path, or an object with 'pem'"):
        configure({"caCertificates": [issuing_ca.pem], "trustRoot": {"revocation": {"crl": [CRL]}}})


def test_revocation_in_jitp_mode_is_refused(issuing_ca: pki.Issued) -> None:
    with pytest.raises(ConfigError, match="revocation needs provisioningMode jitr"):
        with_revocation(issuing_ca, {"crl": [CRL]}, provisioningMode="jitp")


@pytest.mark.parametrize(
    ("sync", "message"),
    [
        ([], "revocationSync must be an object with any of schedule, updateTps"),
        ({"every": "day"}, r"revocationSync has unknown key\(s\) every"),
        ({"schedule": "daily"}, "revocationSync.schedule must be an EventBridge schedule expression"),
        ({"schedule": "rate(1 days)"}, r"EventBridge writes rate\(1 day\), rate\(2 days\)"),
        ({"schedule": "rate(2 hour)"}, r"EventBridge writes rate\(1 hour\), rate\(2 hours\)"),
        ({"schedule": "rate(14 minutes)"}, "shorter than the sync's longest run"),
        ({"schedule": "cron(*/5 * * * ? *)"}, "a cron runs at most hourly"),
        ({"updateTps": 0}, "revocationSync.updateTps must be a number above 0 and at most 10"),
        ({"updateTps": 10.5}, "revocationSync.updateTps must be a number above 0 and at most 10"),
        ({"updateTps": "2"}, "revocationSync.updateTps must be a number"),
        ({"updateTps": True}, "revocationSync.updateTps must be a number"),
    ],
)
def test_bad_revocation_sync_settings_are_named(issuing_ca: pki.Issued, sync: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        with_revocation(issuing_ca, {"crl": [CRL]}, revocationSync=sync)


@pytest.mark.parametrize(
    ("schedule", "period_s", "alarm_period_s"),
    [
        ("rate(15 minutes)", 900, 900),
        ("rate(1 hour)", 3600, 3600),
        ("rate(12 hours)", 43_200, 43_200),
        ("rate(1 day)", 86_400, 86_400),
        ("rate(7 days)", 7 * 86_400, 86_400),  # CloudWatch looks at most a day back
        ("cron(0 3 * * ? *)", 86_400, 86_400),
    ],
)
def test_the_sync_schedule_sets_the_window_its_alarms_look_at(
    issuing_ca: pki.Issued, schedule: str, period_s: int, alarm_period_s: int
) -> None:
    sync = with_revocation(issuing_ca, {"crl": [CRL]}, revocationSync={"schedule": schedule}).revocation_sync
    assert sync is not None
    assert (sync.schedule, sync.period_s, sync.alarm_period_s) == (schedule, period_s, alarm_period_s)


def test_the_update_rate_is_bounded_by_the_quota_the_stack_assumes(issuing_ca: pki.Issued) -> None:
    config = with_revocation(issuing_ca, {"crl": [CRL]}, registerThingTps=40, revocationSync={"updateTps": 25})
    assert config.revocation_sync is not None
    assert config.revocation_sync.update_tps == 25
    assert any("over half the UpdateCertificate quota (40/s)" in note for note in config.notes)
    with pytest.raises(ConfigError, match="at most 1, the UpdateCertificate quota the stack assumes for"):
        with_revocation(issuing_ca, {"crl": [CRL]}, registerThingTps=1)  # the default 2 is over it
