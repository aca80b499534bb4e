"""The sweeper (`jitr_handlers.sweeper`): a scheduled function that puts a registration event on the intake queue for
every certificate of the configured CAs still PENDING_ACTIVATION after `sweepMinAgeMinutes` and not decided, at most
`sweepMaxPerRun` per run, every `sweepIntervalMinutes`, going on each run from where the last stopped (its cursors are
items of the decision table); its `SweptCertificates` metric has an alarm."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from jitr_config.model import JitrConfig
from jitr_handlers.observability import NAMESPACE
from jitr_handlers.once import HELD_PREFIX, KEY_PREFIX
from jitr_handlers.sweeper import CURSOR_PREFIX

from .decisions import DecisionTable
from .handler import jitr_function, role_and_logs

HANDLER = "jitr_handlers.sweeper.handler"
LIST_TPS = 2  # ListCertificatesByCA pages per second: a fifth of AWS's default quota of 10
TIMEOUT_S = 300  # at most the shortest interval (5 min), so two sweeps never overlap; no reserved concurrency,
# which new accounts (a concurrency limit of 10, all of it unreserved by rule) could not grant


class Sweeper(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: JitrConfig,
        service: str,
        ca_certificate_ids: list[str],
        queue: sqs.Queue,
        decisions: DecisionTable,
        code: aws_lambda.Code,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group, self.role = role_and_logs(
            self,
            retention_days=config.log_retention_days,
            description="jitr sweeper: list the CAs' pending certificates, put their events on the intake queue.",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ListTheCasCertificates",
                actions=["iot:ListCertificatesByCA"],
                # jitr assumes, as for AWS IoT's other List actions, that it takes no resource-level permission
                resources=["*"],
            )
        )
        queue.grant_send_messages(self.role)
        for statement in _decision_table_statements(decisions.table.table_arn):
            self.role.add_to_policy(statement)
        self.function = jitr_function(
            self,
            code=code,
            handler=HANDLER,
            description="jitr: re-deliver registration events for certificates left pending (an event was lost)",
            memory_mb=256,
            timeout_s=TIMEOUT_S,
            role=self.role,
            log_group=self.log_group,
            environment={
                "POWERTOOLS_SERVICE_NAME": service,
                "POWERTOOLS_LOG_LEVEL": "INFO",
                "JITR_SWEEP_CA_IDS": ",".join(ca_certificate_ids),
                "JITR_INTAKE_QUEUE_URL": queue.queue_url,
                "JITR_DECISION_TABLE": decisions.table.table_name,
                "JITR_SWEEP_MIN_AGE_SECONDS": str(config.sweep_min_age_minutes * 60),
                "JITR_SWEEP_MAX_PER_RUN": str(config.sweep_max_per_run),
                "JITR_SWEEP_LIST_TPS": str(LIST_TPS),
            },
        )
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="jitr: sweep certificates left pending",
            schedule=events.Schedule.rate(cdk.Duration.minutes(config.sweep_interval_minutes)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=2)],
        )
        self.metric = cw.Metric(
            namespace=NAMESPACE,
            metric_name="SweptCertificates",
            dimensions_map={"service": service},
            statistic="Sum",
            period=cdk.Duration.minutes(config.sweep_interval_minutes),
        )


def _decision_table_statements(table_arn: str) -> list[iam.PolicyStatement]:
    """Read the decision records and the cursors; write the cursors only (DynamoDB's fine-grained access control on
    the partition key: a decision record can be read, never written)."""
    return [
        iam.PolicyStatement(
            sid="ReadDecisionsAndCursors",
            actions=["dynamodb:GetItem"],
            resources=[table_arn],
            conditions={
                "ForAllValues:StringLike": {
                    "dynamodb:LeadingKeys": [f"{KEY_PREFIX}#*", f"{HELD_PREFIX}#*", f"{CURSOR_PREFIX}#*"]
                }
            },
        ),
        iam.PolicyStatement(
            sid="KeepTheCursors",
            actions=["dynamodb:PutItem"],
            resources=[table_arn],
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{CURSOR_PREFIX}#*"]}},
        ),
    ]
