"""The synthesized template shows every promise of the stack: CA registration without the JITP trap, the stored
template, rule -> queue -> handler with least privilege, alarms and the dashboard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match

from jitr import pacing
from jitr.templates import parse_template, render_template
from jitr_cdk import bundling, handler, monitoring
from jitr_cdk.stack import JitrStack
from jitr_handlers import observability
from jitr_tools import pki
from tests.infra.support import Synthesized, as_list, flat, registration_function, statements_of, synthesize

IOT = "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:"


# -- CA registration ------------------------------------------------------------------------------------------------


def test_validated_mode_registers_each_ca_active_with_auto_registration_and_no_registration_config(
    jitr_stack: Synthesized,
) -> None:
    cas = jitr_stack.resources("AWS::IoT::CACertificate")
    assert len(cas) == 2
    for ca in cas.values():
        properties = ca["Properties"]
        assert properties["Status"] == "ACTIVE"
        assert properties["AutoRegistrationStatus"] == "ENABLE"
        assert properties["CertificateMode"] == "DEFAULT"
        assert "BEGIN CERTIFICATE" in properties["VerificationCertificatePem"]
        assert "RegistrationConfig" not in properties  # the JITP trap: AWS would provision without our checks


def test_jitp_mode_attaches_the_stored_template_to_the_ca(jitp_stack: Synthesized) -> None:
    ca = jitp_stack.one("AWS::IoT::CACertificate")
    template_id = jitp_stack.logical_id(jitp_stack.stack.template.template)
    assert ca["Properties"]["RegistrationConfig"] == {"TemplateName": {"Ref": template_id}}
    assert ca["Properties"]["CertificateMode"] == "SNI_ONLY"
    assert "VerificationCertificatePem" not in ca["Properties"]
    assert template_id in ca["DependsOn"]  # the template exists before AWS can run it for a device


def test_jitp_mode_deploys_no_handler_or_intake(jitp_stack: Synthesized) -> None:
    for resource_type in ("AWS::Lambda::Function", "AWS::SQS::Queue", "AWS::IoT::TopicRule"):
        assert jitp_stack.resources(resource_type) == {}


# -- stored template, provisioning role, device policy ----------------------------------------------------------------


def test_the_stored_template_is_the_repositorys_with_the_device_policy_name_filled_in(jitr_stack: Synthesized) -> None:
    resource = jitr_stack.one("AWS::IoT::ProvisioningTemplate")["Properties"]
    assert resource["TemplateType"] == "FLEET_PROVISIONING"
    assert resource["Enabled"] is False  # only the handler reads it; no device can provision itself with it
    policy_id = jitr_stack.logical_id(jitr_stack.stack.template.device_policy)
    body = flat(resource["TemplateBody"])
    document = json.loads(body.replace("${" + policy_id + "}", "jitr-device-policy-x"))
    assert document["Parameters"]["DevicePolicyName"]["Default"] == "jitr-device-policy-x"
    plan = render_template(
        parse_template(document, for_jitr=True),
        {"AWS::IoT::Certificate::CommonName": "sensor-1", "AWS::IoT::Certificate::Id": "ab" * 32},
    )
    assert plan.policies[0].properties["PolicyName"] == "jitr-device-policy-x"


def test_jitp_templates_are_enabled_and_of_type_jitp(jitp_stack: Synthesized) -> None:
    resource = jitp_stack.one("AWS::IoT::ProvisioningTemplate")["Properties"]
    assert resource["TemplateType"] == "JITP"
    assert resource["Enabled"] is True


def test_the_device_policy_confines_each_device_to_its_own_client_id_and_topics(jitr_stack: Synthesized) -> None:
    document = jitr_stack.one("AWS::IoT::Policy")["Properties"]["PolicyDocument"]
    connect, publish, subscribe = document["Statement"]
    assert connect["Action"] == "iot:Connect"
    assert flat(connect["Resource"]) == IOT + "client/${iot:Connection.Thing.ThingName}"
    assert connect["Condition"] == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
    for statement in (publish, subscribe):
        for resource in statement["Resource"]:
            assert "/${iot:Connection.Thing.ThingName}/" in flat(resource)
    actions = [a for s in document["Statement"] for a in as_list(s["Action"])]
    assert "iot:*" not in actions
    assert all(flat(r) != "*" for s in document["Statement"] for r in as_list(s["Resource"]))


def test_the_provisioning_role_trusts_only_aws_iot_acting_for_this_account(
    jitr_stack: Synthesized, jitp_stack: Synthesized
) -> None:
    for synthesized in (jitr_stack, jitp_stack):
        role = synthesized.resources("AWS::IAM::Role")[
            synthesized.logical_id(_cfn(synthesized.stack.template.provisioning_role))
        ]
        (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "iot.amazonaws.com"}
        assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
        assert flat(trust["Condition"]["ArnLike"]["aws:SourceArn"]) == IOT + "*"


def test_in_jitr_mode_the_provisioning_role_grants_nothing(jitr_stack: Synthesized, jitp_stack: Synthesized) -> None:
    # jitr: the handler calls RegisterThing with its own role; the disabled template's role needs no powers
    role_id = jitr_stack.logical_id(_cfn(jitr_stack.stack.template.provisioning_role))
    assert statements_of(jitr_stack, role_id) == []
    # jitp: AWS IoT applies the template with it
    role_id = jitp_stack.logical_id(_cfn(jitp_stack.stack.template.provisioning_role))
    actions = {a for s in statements_of(jitp_stack, role_id) for a in as_list(s["Action"])}
    assert {"iot:RegisterThing", "iot:CreateThing", "iot:AttachPolicy"} <= actions


# -- intake: rule -> queue -> event source mapping --------------------------------------------------------------------


def test_one_rule_per_ca_on_its_registered_topic_with_the_2016_sql_version(jitr_stack: Synthesized) -> None:
    rules = [r["Properties"] for r in jitr_stack.resources("AWS::IoT::TopicRule").values()]
    expected = {
        f"SELECT * FROM '$aws/events/certificates/registered/{ca.certificate_id}'"  # noqa: S608
        for ca in jitr_stack.config.cas
    }
    assert {r["TopicRulePayload"]["Sql"] for r in rules} == expected
    queue_id = jitr_stack.logical_id(_cfn(jitr_stack.stack.intake.queue))
    role_id = jitr_stack.logical_id(_cfn(jitr_stack.stack.intake.role))
    for rule in rules:
        payload = rule["TopicRulePayload"]
        assert payload["AwsIotSqlVersion"] == "2016-03-23"
        assert payload["Actions"] == [
            {"Sqs": {"QueueUrl": {"Ref": queue_id}, "RoleArn": {"Fn::GetAtt": [role_id, "Arn"]}, "UseBase64": False}}
        ]
        assert "CloudwatchLogs" in payload["ErrorAction"]


def test_the_rule_role_is_trusted_only_by_these_rules_and_may_only_send_to_the_queue(jitr_stack: Synthesized) -> None:
    intake_construct = jitr_stack.stack.intake
    role_id = jitr_stack.logical_id(_cfn(intake_construct.role))
    role = jitr_stack.json["Resources"][role_id]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    names = [r["Properties"]["RuleName"] for r in jitr_stack.resources("AWS::IoT::TopicRule").values()]
    assert sorted(flat(a) for a in trust["Condition"]["ArnLike"]["aws:SourceArn"]) == sorted(
        f"arn:${{AWS::Partition}}:iot:${{AWS::Region}}:${{AWS::AccountId}}:rule/{name}" for name in names
    )
    statements = statements_of(jitr_stack, role_id)
    by_action = {a: s["Resource"] for s in statements for a in as_list(s["Action"])}
    queue_id = jitr_stack.logical_id(_cfn(intake_construct.queue))
    assert by_action["sqs:SendMessage"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert set(by_action) == {"sqs:SendMessage", "logs:CreateLogStream", "logs:PutLogEvents"}


def test_the_queues_are_encrypted_and_redrive_after_a_few_receives(jitr_stack: Synthesized) -> None:
    resources = jitr_stack.json["Resources"]
    queue = resources[jitr_stack.logical_id(_cfn(jitr_stack.stack.intake.queue))]["Properties"]
    dlq_id = jitr_stack.logical_id(_cfn(jitr_stack.stack.intake.dead_letter_queue))
    dlq = resources[dlq_id]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert dlq["SqsManagedSseEnabled"] is True
    assert queue["VisibilityTimeout"] >= 6 * handler.TIMEOUT_S
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}, "maxReceiveCount": 5}
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    jitr_stack.template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )


def test_the_mapping_reports_partial_failures_and_paces_to_the_register_thing_quota(jitr_stack: Synthesized) -> None:
    mapping = jitr_stack.one("AWS::Lambda::EventSourceMapping")["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": pacing.max_concurrency(40)} == {"MaximumConcurrency": 20}
    assert mapping["BatchSize"] == 10


@pytest.mark.parametrize(("tps", "concurrency"), [(1, 2), (10, 5), (40, 20), (100000, 1000)])
def test_max_concurrency_follows_the_quota_within_the_mappings_bounds(tps: int, concurrency: int) -> None:
    assert pacing.max_concurrency(tps) == concurrency


# -- handler ----------------------------------------------------------------------------------------------------------


def test_the_function_runs_the_newest_python_on_arm64_with_tracing_and_its_own_log_group(
    jitr_stack: Synthesized,
) -> None:
    function = registration_function(jitr_stack)["Properties"]
    assert function["Runtime"] == "python3.14"
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == bundling.HANDLER
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["Timeout"] == handler.TIMEOUT_S
    log_group_id = jitr_stack.logical_id(_cfn(jitr_stack.stack.handler.log_group))
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": log_group_id}
    assert jitr_stack.json["Resources"][log_group_id]["Properties"]["RetentionInDays"] == 30
    environment = function["Environment"]["Variables"]
    assert environment["JITR_TEMPLATE_NAME"] == {"Ref": jitr_stack.logical_id(jitr_stack.stack.template.template)}
    assert environment["JITR_REJECTION_ACTION"] == "REVOKED"
    assert environment["JITR_DEVICE_PROFILE"] == "strict"
    assert environment["JITR_CN_PATTERN"] == "^sensor-[0-9]+$"
    assert environment["JITR_MAX_VALIDITY_DAYS"] == "825"
    assert "BEGIN CERTIFICATE" in environment["JITR_TRUST_ROOT_PEM"]
    assert environment["POWERTOOLS_SERVICE_NAME"] == "Jitr"
    # each environment paces RegisterThing to its share of the quota: 40 / 20 = 2 per second
    assert environment["JITR_REGISTER_THING_TPS"] == "40"
    assert environment["JITR_MAX_CONCURRENCY"] == "20"
    assert environment["JITR_EXISTING_THING"] == "refuse"
    assert environment["JITR_CLOCK_SKEW_SECONDS"] == "300"
    assert "JITR_EXTRA_PARAMETERS" not in environment  # none configured


def test_the_function_target_matches_the_runtime_and_architecture() -> None:
    assert handler.RUNTIME.name == f"python{bundling.FUNCTION_TARGET.python_version}"
    assert handler.ARCHITECTURE.name == bundling.FUNCTION_TARGET.architecture


def test_the_handler_role_holds_exactly_what_its_decisions_need(jitr_stack: Synthesized) -> None:
    role_id = jitr_stack.logical_id(_cfn(jitr_stack.stack.handler.role))
    statements = statements_of(jitr_stack, role_id)
    granted: dict[str, set[str]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            granted.setdefault(action, set()).update(flat(r) for r in as_list(statement["Resource"]))
    assert not any(action.endswith("*") for action in granted)
    ca_arns = {IOT + f"cacert/{ca.certificate_id}" for ca in jitr_stack.config.cas}
    template_id = jitr_stack.logical_id(jitr_stack.stack.template.template)
    policy_id = jitr_stack.logical_id(jitr_stack.stack.template.device_policy)
    assert granted["iot:DescribeCACertificate"] == ca_arns
    assert granted["iot:DescribeProvisioningTemplate"] == {"${" + template_id + ".TemplateArn}"}
    assert granted["iot:DescribeCertificate"] == {IOT + "cert/*"}
    assert granted["iot:UpdateCertificate"] == {IOT + "cert/*"}
    assert granted["iot:CreateThing"] == {IOT + "thing/*"}
    # one thing, one owner: who holds the thing, and detaching a certificate that lost it or was replaced
    for action in ("iot:DescribeThing", "iot:ListThingPrincipals", "iot:DetachThingPrincipal"):
        assert granted[action] == {IOT + "thing/*"}
    assert granted["iot:AttachPolicy"] == {IOT + "policy/${" + policy_id + "}", IOT + "cert/*"}
    wildcard = {action for action, resources in granted.items() if "*" in resources}
    # ListPrincipalThings: the things of a certificate whose settlement a redelivery finishes (no resource type)
    assert wildcard == {
        "iot:RegisterThing",
        "iot:ListPrincipalThings",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    assert granted["logs:PutLogEvents"] == {
        "${" + jitr_stack.logical_id(_cfn(jitr_stack.stack.handler.log_group)) + ".Arn}"
    }
    # the stack grants nothing the template does not use: no thing groups, types, billing groups or policy creation
    for absent in (
        "iot:AddThingToThingGroup",
        "iot:DescribeThingType",
        "iot:AddThingToBillingGroup",
        "iot:CreatePolicy",
    ):
        assert absent not in granted


# -- monitoring -------------------------------------------------------------------------------------------------------


def test_alarms_cover_dead_letters_errors_throttling_queue_age_rejections_and_rule_delivery(
    jitr_stack: Synthesized,
) -> None:
    alarms = jitr_stack.resources("AWS::CloudWatch::Alarm")
    # and the sweeper's two (events it had to deliver again, its own failures), and decision events not published
    assert len(alarms) == 9
    topic_id = jitr_stack.logical_id(_cfn(jitr_stack.stack.monitoring.topic))
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
        assert "AlarmDescription" in alarm["Properties"]
    by_id = {jitr_stack.logical_id(_cfn(a)): a for a in jitr_stack.stack.monitoring.alarms.values()}
    dead_letters = alarms[jitr_stack.logical_id(_cfn(jitr_stack.stack.monitoring.alarms["DeadLetters"]))]["Properties"]
    dlq_id = jitr_stack.logical_id(_cfn(jitr_stack.stack.intake.dead_letter_queue))
    assert dead_letters["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}]
    assert dead_letters["Threshold"] == 1
    rejections = alarms[jitr_stack.logical_id(_cfn(jitr_stack.stack.monitoring.alarms["Rejections"]))]["Properties"]
    assert (rejections["Namespace"], rejections["MetricName"]) == (observability.NAMESPACE, "REJECTED")
    swept = alarms[jitr_stack.logical_id(_cfn(jitr_stack.stack.monitoring.alarms["Swept"]))]["Properties"]
    assert (swept["Namespace"], swept["MetricName"], swept["Threshold"]) == (
        observability.NAMESPACE,
        "SweptCertificates",
        1,
    )
    assert len(by_id) == 9


def test_the_sweeper_runs_on_a_schedule_may_only_list_certificates_send_to_the_queue_and_keep_its_cursors(
    jitr_stack: Synthesized,
) -> None:
    sweeper = jitr_stack.stack.sweeper
    function = jitr_stack.json["Resources"][jitr_stack.logical_id(_cfn(sweeper.function))]["Properties"]
    assert function["Handler"] == "jitr_handlers.sweeper.handler"
    assert "ReservedConcurrentExecutions" not in function  # a new account's concurrency limit could not grant it
    assert function["Timeout"] <= 5 * 60  # within the shortest interval: runs never overlap
    variables = function["Environment"]["Variables"]
    assert variables["JITR_SWEEP_CA_IDS"] == ",".join(jitr_stack.stack.cas.certificate_ids)
    assert variables["JITR_SWEEP_MIN_AGE_SECONDS"] == "900"
    assert variables["JITR_SWEEP_MAX_PER_RUN"] == "500"
    (rule,) = jitr_stack.resources("AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == "rate(15 minutes)"
    statements = statements_of(jitr_stack, jitr_stack.logical_id(_cfn(sweeper.role)))
    actions = sorted(a for s in statements for a in as_list(s["Action"]))
    iot = [a for a in actions if a.startswith("iot:")]
    assert iot == ["iot:ListCertificatesByCA"]  # read-only on AWS IoT
    assert {a for a in actions if a.startswith("sqs:")} <= {
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
    }
    # the decision table: read decisions and cursors, write only items under the cursors' own key prefix
    table_id = jitr_stack.logical_id(_cfn(jitr_stack.stack.decisions.table))
    assert variables["JITR_DECISION_TABLE"] == {"Ref": table_id}
    on_table = {
        a: (flat(s["Resource"]), s.get("Condition"))
        for s in statements
        for a in as_list(s["Action"])
        if a.startswith("dynamodb:")
    }
    leading = "ForAllValues:StringLike"
    assert on_table == {
        "dynamodb:GetItem": (
            "${" + table_id + ".Arn}",
            {leading: {"dynamodb:LeadingKeys": ["jitr-decision#*", "jitr-held#*", "jitr-sweep-cursor#*"]}},
        ),
        "dynamodb:PutItem": ("${" + table_id + ".Arn}", {leading: {"dynamodb:LeadingKeys": ["jitr-sweep-cursor#*"]}}),
    }


def test_the_alarm_topic_is_encrypted_and_mails_the_configured_address(jitr_stack: Synthesized) -> None:
    jitr_stack.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "iot-ops@example.com"}
    )
    assert "KmsMasterKeyId" in jitr_stack.one("AWS::SNS::Topic")["Properties"]


def test_no_alarm_topic_without_an_address(development_stack: Synthesized) -> None:
    assert development_stack.resources("AWS::SNS::Topic") == {}


def test_the_dashboard_shows_decisions_rejections_by_reason_latency_and_queue_depth(jitr_stack: Synthesized) -> None:
    body = flat(jitr_stack.one("AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
    for needle in ("PROVISIONED", "REJECTEDByReason", "ProvisioningLatency", "ApproximateNumberOfMessagesVisible"):
        assert needle in body
    assert monitoring.NAMESPACE == observability.NAMESPACE


# -- development CA and the cdk-nag gate ------------------------------------------------------------------------------


def test_the_development_ca_cannot_be_deployed_without_an_explicit_opt_in(
    development_stack: Synthesized, jitr_stack: Synthesized
) -> None:
    parameters = development_stack.json["Parameters"]
    assert parameters["DevelopmentCaOptIn"]["Default"] == "no"
    rule = development_stack.json["Rules"]["DevelopmentCaNeedsOptIn"]["Assertions"][0]
    assert rule["Assert"] == {"Fn::Equals": [{"Ref": "DevelopmentCaOptIn"}, "yes"]}
    assert "DevelopmentCaOptIn" not in jitr_stack.json.get("Parameters", {})
    assert "DevelopmentCaNeedsOptIn" not in jitr_stack.json.get("Rules", {})


def test_every_acknowledged_nag_finding_carries_a_reason(jitr_stack: Synthesized, jitp_stack: Synthesized) -> None:
    for synthesized in (jitr_stack, jitp_stack):
        acknowledged = [
            rule
            for resource in synthesized.json["Resources"].values()
            for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
        ]
        assert acknowledged, "the roles' wildcards are acknowledged"
        for rule in acknowledged:
            assert rule["id"].startswith("AwsSolutions-IAM5[")
            assert len(rule["reason"]) > 40


def test_the_nag_gate_fails_the_synth_on_an_unacknowledged_finding(
    tmp_path: Path, issuing_ca: pki.Issued, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = JitrStack.__init__

    def with_a_wildcard(self: JitrStack, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.handler.role.add_to_policy(iam.PolicyStatement(actions=["s3:*"], resources=["*"]))

    monkeypatch.setattr(JitrStack, "__init__", with_a_wildcard)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        synthesize({"caCertificates": [issuing_ca.pem]}, tmp_path)
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-IAM5" in report
    assert "s3:*" in report


def _cfn(construct: object) -> cdk.CfnElement:
    """The CloudFormation resource behind an L2 construct."""
    return construct.node.default_child  # type: ignore[attr-defined,no-any-return]


def test_the_decision_table_is_on_demand_encrypted_expiring_and_only_the_handler_writes_decisions(
    jitr_stack: Synthesized,
) -> None:
    table = jitr_stack.one("AWS::DynamoDB::Table")["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    table_id = jitr_stack.logical_id(_cfn(jitr_stack.stack.decisions.table))
    role_id = jitr_stack.logical_id(_cfn(jitr_stack.stack.handler.role))
    granted: dict[str, set[str]] = {}
    for statement in statements_of(jitr_stack, role_id):
        for action in as_list(statement["Action"]):
            if action.startswith("dynamodb:"):
                granted.setdefault(action, set()).update(flat(r) for r in as_list(statement["Resource"]))
    assert set(granted) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    assert all(resources == {"${" + table_id + ".Arn}"} for resources in granted.values())
    environment = registration_function(jitr_stack)["Properties"]["Environment"]["Variables"]
    assert environment["JITR_DECISION_TABLE"] == {"Ref": table_id}
    assert environment["JITR_DECISION_RETENTION_DAYS"] == "30"
