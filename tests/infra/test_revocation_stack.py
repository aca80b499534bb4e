"""The stack with issuer revocation configured: the handler reads exactly the configured S3 objects, the revocation
sync runs on its schedule with only the permissions it needs, alarms and a dashboard row watch it, an environment
over Lambda's limit is refused naming the setting, and a configuration without revocation synthesizes as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jitr.certificates import certificate_id
from jitr.settings import Settings
from jitr_cdk import handler, revocation_sync
from jitr_cdk.construct import SYNC_WILDCARDS
from jitr_config import model as config_model
from jitr_config.model import ConfigError
from jitr_tools import pki
from tests.infra.support import Synthesized, as_list, flat, registration_function, statements_of, synthesize
from tests.support import REPO

IOT = "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:"
PCA_CRL = "s3://acme-pki-crls/crl/5c8f7e0a-1234-4321-abcd-0123456789ab.crl"
ROOT_CRL = "s3://acme-pki-crls/root.crl"
HTTP_CRL = "http://pki.example.com/issuing.crl"


@pytest.fixture(scope="module")
def third_ca(root_ca: pki.Issued) -> pki.Issued:
    return pki.make_ca("test third issuing CA", issuer=root_ca)


def _settings(issuing_ca: pki.Issued, second_ca: pki.Issued, third_ca: pki.Issued, root_ca: pki.Issued) -> Any:
    return {
        "caCertificates": [
            {"pem": issuing_ca.pem, "revocation": {"crl": [PCA_CRL, HTTP_CRL], "onUnknown": "accept"}},
            {"pem": second_ca.pem, "revocation": {"certificateHosts": ["pki.example.com"]}},
            third_ca.pem,  # no revocation: the sync never touches its certificates
        ],
        "alarmEmail": "iot-ops@example.com",
        "revocationSync": {"schedule": "rate(12 hours)", "updateTps": 3},
    }


@pytest.fixture(scope="module")
def revocation_stack(
    tmp_path_factory: pytest.TempPathFactory,
    issuing_ca: pki.Issued,
    second_ca: pki.Issued,
    third_ca: pki.Issued,
    root_ca: pki.Issued,
) -> Synthesized:
    return synthesize(
        _settings(issuing_ca, second_ca, third_ca, root_ca), tmp_path_factory.mktemp("revocation")
    )  # cdk-nag's gate passes, or this raises


@pytest.fixture(scope="module")
def plain_stack(
    tmp_path_factory: pytest.TempPathFactory,
    issuing_ca: pki.Issued,
    second_ca: pki.Issued,
    third_ca: pki.Issued,
    root_ca: pki.Issued,
) -> Synthesized:
    """The same configuration without revocation."""
    settings = _settings(issuing_ca, second_ca, third_ca, root_ca)
    settings["caCertificates"] = [issuing_ca.pem, second_ca.pem, third_ca.pem]
    del settings["revocationSync"]
    return synthesize(settings, tmp_path_factory.mktemp("plain"))


def _id(synthesized: Synthesized, construct: Any) -> str:
    return synthesized.logical_id(construct.node.default_child)


def _granted(synthesized: Synthesized, role: Any) -> dict[str, set[str]]:
    granted: dict[str, set[str]] = {}
    for statement in statements_of(synthesized, _id(synthesized, role)):
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            granted.setdefault(action, set()).update(flat(r) for r in as_list(statement["Resource"]))
    return granted


def _sync_function(synthesized: Synthesized) -> dict[str, Any]:
    sync = synthesized.stack.revocation_sync
    assert sync is not None
    return dict(synthesized.json["Resources"][_id(synthesized, sync.function)]["Properties"])


# -- the handler -------------------------------------------------------------------------------------------------------


def test_the_handler_gets_the_revocation_settings_and_reads_exactly_the_configured_objects(
    revocation_stack: Synthesized, issuing_ca: pki.Issued, second_ca: pki.Issued
) -> None:
    environment = registration_function(revocation_stack)["Properties"]["Environment"]["Variables"]
    settings = Settings.from_environment(
        {k: v for k, v in environment.items() if isinstance(v, str)} | {"JITR_TEMPLATE_NAME": "t"}
    )
    assert set(settings.revocation) == {certificate_id(issuing_ca.certificate), certificate_id(second_ca.certificate)}
    assert settings.revocation == revocation_stack.config.revocation
    assert "JITR_REVOCATION_ALLOW_LOOPBACK" not in environment  # a rehearsal's setting, never the stack's
    granted = _granted(revocation_stack, revocation_stack.stack.handler.role)
    assert granted["s3:GetObject"] == {
        "arn:${AWS::Partition}:s3:::acme-pki-crls/crl/5c8f7e0a-1234-4321-abcd-0123456789ab.crl"
    }
    assert not any(action.startswith("s3:") for action in set(granted) - {"s3:GetObject"})


def test_without_an_s3_source_no_role_may_read_s3(
    jitr_stack: Synthesized, tmp_path: Path, issuing_ca: pki.Issued
) -> None:
    over_http = synthesize(
        {"caCertificates": [{"pem": issuing_ca.pem, "revocation": {"crl": [HTTP_CRL]}}]}, tmp_path / "http"
    )
    for synthesized in (jitr_stack, over_http):
        for resource in synthesized.resources("AWS::IAM::Policy").values():
            assert "s3:" not in json.dumps(resource["Properties"]["PolicyDocument"])


# -- the sync function -------------------------------------------------------------------------------------------------


def test_the_sync_runs_on_its_schedule_with_the_handlers_settings_and_its_pace(revocation_stack: Synthesized) -> None:
    function = _sync_function(revocation_stack)
    assert function["Handler"] == revocation_sync.HANDLER == "jitr_handlers.revocation_sync.handler"
    assert function["Timeout"] == revocation_sync.TIMEOUT_S == 15 * 60
    assert function["Runtime"] == "python3.14"
    assert function["Architectures"] == ["arm64"]
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert "ReservedConcurrentExecutions" not in function
    sync = revocation_stack.stack.revocation_sync
    assert sync is not None
    log_group = revocation_stack.json["Resources"][_id(revocation_stack, sync.log_group)]
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": _id(revocation_stack, sync.log_group)}
    assert log_group["Properties"]["RetentionInDays"] == 30
    variables = function["Environment"]["Variables"]
    handler_variables = registration_function(revocation_stack)["Properties"]["Environment"]["Variables"]
    assert variables == {**handler_variables, "JITR_SYNC_UPDATE_TPS": "3"}
    # the handlers pace UpdateCertificate to the quota less the sync's share: they are told the same share
    assert handler_variables["JITR_SYNC_UPDATE_TPS"] == "3"
    rules = [
        r["Properties"]
        for r in revocation_stack.resources("AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [_id(revocation_stack, sync.function), "Arn"]}
    ]
    assert [rule["ScheduleExpression"] for rule in rules] == ["rate(12 hours)"]
    output = revocation_stack.json["Outputs"]["RevocationSyncFunctionName"]  # to run it on demand
    assert output["Value"] == {"Ref": _id(revocation_stack, sync.function)}


def test_the_sync_may_read_the_configured_cas_revoke_certificates_and_keep_only_its_items(
    revocation_stack: Synthesized, issuing_ca: pki.Issued, second_ca: pki.Issued
) -> None:
    sync = revocation_stack.stack.revocation_sync
    assert sync is not None
    granted = _granted(revocation_stack, sync.role)
    table = "${" + _id(revocation_stack, revocation_stack.stack.decisions.table) + ".Arn}"
    configured = {IOT + f"cacert/{certificate_id(ca.certificate)}" for ca in (issuing_ca, second_ca)}
    assert granted == {
        "iot:DescribeCACertificate": configured,  # not the third CA, which has no revocation
        "iot:UpdateCertificate": {IOT + "cert/*"},
        "dynamodb:GetItem": {table},
        "dynamodb:BatchGetItem": {table},
        "dynamodb:PutItem": {table},
        "dynamodb:UpdateItem": {table},
        "s3:GetObject": {"arn:${AWS::Partition}:s3:::acme-pki-crls/crl/5c8f7e0a-1234-4321-abcd-0123456789ab.crl"},
        "logs:CreateLogStream": {"${" + _id(revocation_stack, sync.log_group) + ".Arn}"},
        "logs:PutLogEvents": {"${" + _id(revocation_stack, sync.log_group) + ".Arn}"},
        "xray:PutTraceSegments": {"*"},
        "xray:PutTelemetryRecords": {"*"},
        # what it revoked, held and released, as decision events on the default bus
        "events:PutEvents": {"arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"},
    }
    (on_table,) = [
        s
        for s in statements_of(revocation_stack, _id(revocation_stack, sync.role))
        if "dynamodb:PutItem" in s["Action"]
    ]
    # the serial index and the sync's own state, never a decision record
    assert on_table["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["jitr-serial#*", "jitr-revocation-sync#*"]}
    }


def test_a_trust_roots_revocation_lets_the_sync_read_every_ca(
    tmp_path: Path, issuing_ca: pki.Issued, second_ca: pki.Issued, root_ca: pki.Issued
) -> None:
    synthesized = synthesize(
        {
            "caCertificates": [issuing_ca.pem, second_ca.pem],
            "trustRoot": {"pem": root_ca.pem, "revocation": {"crl": [ROOT_CRL]}},
        },
        tmp_path,
    )
    sync = synthesized.stack.revocation_sync
    assert sync is not None
    granted = _granted(synthesized, sync.role)
    assert granted["iot:DescribeCACertificate"] == {
        IOT + f"cacert/{ca.certificate_id}" for ca in synthesized.config.cas
    }
    assert granted["s3:GetObject"] == {"arn:${AWS::Partition}:s3:::acme-pki-crls/root.crl"}
    assert set(synthesized.config.revocation) == {certificate_id(root_ca.certificate)}


def test_the_sync_timeout_is_the_shortest_schedule_the_configuration_allows() -> None:
    assert revocation_sync.TIMEOUT_S == config_model.SYNC_TIMEOUT_MINUTES * 60


# -- monitoring --------------------------------------------------------------------------------------------------------


def _alarm(synthesized: Synthesized, name: str) -> dict[str, Any]:
    alarm = synthesized.stack.monitoring.alarms[name]
    return dict(synthesized.json["Resources"][_id(synthesized, alarm)]["Properties"])


def test_alarms_watch_the_sync_its_sources_what_it_revoked_and_unknown_statuses(
    revocation_stack: Synthesized, plain_stack: Synthesized
) -> None:
    added = set(revocation_stack.stack.monitoring.alarms) - set(plain_stack.stack.monitoring.alarms)
    assert added == {
        "RevocationSyncErrors",
        "RevocationSyncFailed",
        "RevocationSourceUnusable",
        "RevokedBySync",
        "RevocationUnknown",
        "RevocationUnknownAccepted",
    }
    topic = {"Ref": _id(revocation_stack, revocation_stack.stack.monitoring.topic)}
    for name in added:
        alarm = _alarm(revocation_stack, name)
        assert alarm["AlarmActions"] == [topic]
        assert alarm["TreatMissingData"] == "notBreaching"
        assert len(alarm["AlarmDescription"]) > 60
    revoked = _alarm(revocation_stack, "RevokedBySync")
    assert (revoked["MetricName"], revoked["Period"], revoked["Threshold"]) == ("CertificatesRevokedBySync", 43_200, 1)
    unknown = _alarm(revocation_stack, "RevocationUnknown")
    assert unknown["MetricName"] == "RETRYByReason"
    assert {"Name": "Reason", "Value": "REVOCATION_UNKNOWN"} in unknown["Dimensions"]
    assert (unknown["Period"], unknown["EvaluationPeriods"], unknown["Threshold"]) == (300, 3, 1)
    accepted = _alarm(revocation_stack, "RevocationUnknownAccepted")
    assert (accepted["MetricName"], accepted["Threshold"]) == ("RevocationUnknownAccepted", 1)
    errors = _alarm(revocation_stack, "RevocationSyncErrors")
    assert errors["MetricName"] == "Errors"
    assert errors["Dimensions"][0]["Value"] == {
        "Ref": _id(revocation_stack, revocation_stack.stack.revocation_sync.function)
    }  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["RevocationSyncFailed", "RevocationSourceUnusable"])
def test_per_ca_alarms_sum_each_configured_ca_over_one_run(revocation_stack: Synthesized, name: str) -> None:
    metrics = _alarm(revocation_stack, name)["Metrics"]
    (expression,) = [m for m in metrics if "Expression" in m]
    stats = [m["MetricStat"] for m in metrics if "MetricStat" in m]
    assert expression["Expression"] == "SUM([ca0, ca1])"
    assert {s["Metric"]["MetricName"] for s in stats} == {name}
    assert {s["Period"] for s in stats} == {43_200}  # the schedule's 12 hours: the alarm holds until a run succeeds
    cas = {d["Value"] for s in stats for d in s["Metric"]["Dimensions"] if d["Name"] == "CA"}
    assert cas == set(revocation_stack.config.revocation)


def test_the_dashboard_has_a_revocation_row(revocation_stack: Synthesized, plain_stack: Synthesized) -> None:
    body = flat(revocation_stack.one("AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
    for needle in (
        "CertificatesRevokedBySync",
        "CertificatesHeldBySync",
        "RevocationsFound",
        "RevocationSourceUnusable",
        "REVOKED_BY_ISSUER",
        "REVOCATION_UNKNOWN",
        "RevocationUnknownAccepted",
    ):
        assert needle in body
    assert "Revocation" not in flat(plain_stack.one("AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])


# -- nothing configured, nothing changes -------------------------------------------------------------------------------


def test_without_revocation_there_is_no_sync_and_no_revocation_alarm(plain_stack: Synthesized) -> None:
    assert plain_stack.stack.revocation_sync is None
    handlers = {f["Properties"]["Handler"] for f in plain_stack.resources("AWS::Lambda::Function").values()}
    assert revocation_sync.HANDLER not in handlers
    assert not [name for name in plain_stack.stack.monitoring.alarms if "Revo" in name]
    assert "JITR_REVOCATION" not in registration_function(plain_stack)["Properties"]["Environment"]["Variables"]
    assert "RevocationSyncFunctionName" not in plain_stack.json["Outputs"]


def test_configuring_revocation_adds_resources_and_replaces_none(
    revocation_stack: Synthesized, plain_stack: Synthesized
) -> None:
    before, after = plain_stack.json["Resources"], revocation_stack.json["Resources"]
    assert set(before) <= set(after)  # every logical id kept: nothing replaced or deleted
    changed = {logical_id for logical_id, resource in before.items() if after[logical_id] != resource}
    handler = revocation_stack.stack.handler
    assert changed == {
        _id(revocation_stack, handler.function),  # JITR_REVOCATION
        _id(revocation_stack, handler.role.node.find_child("DefaultPolicy")),  # s3:GetObject on the CRL
        _id(revocation_stack, revocation_stack.stack.monitoring.dashboard),  # the revocation row
    }
    for logical_id in set(after) - set(before):
        assert after[logical_id].get("DeletionPolicy", "Delete") == "Delete"


# -- Lambda's 4 KB environment -----------------------------------------------------------------------------------------


def _cas_with_revocation(root: pki.Issued, count: int) -> list[dict[str, Any]]:
    return [
        {
            "pem": pki.make_ca(f"test fleet CA {i}", issuer=root).pem,
            "revocation": {"crl": [f"s3://acme-pki-crls/crl/5c8f7e0a-1234-4321-abcd-0123456789{i:02d}.crl"]},
        }
        for i in range(count)
    ]


def test_eleven_cas_fit_and_their_alarms_split_in_tens(tmp_path: Path, root_ca: pki.Issued) -> None:
    synthesized = synthesize({"caCertificates": _cas_with_revocation(root_ca, 11)}, tmp_path)
    alarms = synthesized.stack.monitoring.alarms
    assert {"RevocationSyncFailed", "RevocationSyncFailed2", "RevocationSourceUnusable2"} <= set(alarms)
    first, second = _alarm(synthesized, "RevocationSyncFailed"), _alarm(synthesized, "RevocationSyncFailed2")
    assert len([m for m in first["Metrics"] if "MetricStat" in m]) == 10  # CloudWatch's most per alarm
    assert len([m for m in second["Metrics"] if "MetricStat" in m]) == 1
    environment = registration_function(synthesized)["Properties"]["Environment"]["Variables"]
    size = sum(len(k) + len(v) for k, v in environment.items() if isinstance(v, str))
    assert size <= handler.ENVIRONMENT_LIMIT_BYTES - handler.UNRESOLVED_ROOM_BYTES


def test_an_environment_over_lambdas_limit_is_refused_naming_the_setting(tmp_path: Path, root_ca: pki.Issued) -> None:
    with pytest.raises(
        ConfigError,
        match=r"the registration handler's settings take \d+ bytes of the 4096 Lambda allows .* The largest: the"
        r" revocation objects \(caCertificates\[\]\.revocation, trustRoot\.revocation\): \d+ bytes",
    ):
        synthesize({"caCertificates": _cas_with_revocation(root_ca, 30)}, tmp_path)


def test_synth_reports_an_environment_that_does_not_fit_in_one_line(tmp_path: Path, root_ca: pki.Issued) -> None:
    context = {"jitr": {"caCertificates": _cas_with_revocation(root_ca, 30)}, "aws:cdk:bundling-stacks": []}
    environment = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(REPO / "app.py")], env=environment, capture_output=True, text=True, check=False, cwd=REPO
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("jitr:")]
    assert len(lines) == 1
    assert lines[0].startswith("jitr: configuration error: the registration handler's settings take")
    assert "Traceback" not in result.stderr


def test_the_sync_roles_wildcards_are_acknowledged_each_with_its_reason(revocation_stack: Synthesized) -> None:
    sync = revocation_stack.stack.revocation_sync
    assert sync is not None
    policy = revocation_stack.json["Resources"][_id(revocation_stack, sync.role.node.find_child("DefaultPolicy"))]
    acknowledged = {r["id"]: r["reason"] for r in policy["Metadata"]["cdk_nag"]["rules_to_suppress"]}
    assert acknowledged == {f"AwsSolutions-IAM5[{finding}]": reason for finding, reason in SYNC_WILDCARDS.items()}
