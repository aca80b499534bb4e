"""Registration events from AWS IoT to the handler: one topic rule per CA -> an encrypted queue -> the function.

The queue absorbs a fleet powering up at once; the event source mapping's maximum concurrency paces RegisterThing to
the account's quota instead of retrying blindly; failed records return to the queue and, after a few receives, wait in
the dead-letter queue. Rule delivery failures (errorAction) go to their own log group.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from jitr.pacing import max_concurrency
from jitr_config.model import JitrConfig

from .handler import BATCH_SIZE, retention
from .stored_template import iot_principal

SQL_VERSION = "2016-03-23"  # CloudFormation's default is the old 2015-10-08 dialect: always set it
REGISTERED_TOPIC = "$aws/events/certificates/registered/{}"
BATCH_WINDOW_S = 1  # gather a burst into full batches, at most one second late
VISIBILITY_FACTOR = 6  # AWS's advice: queue visibility >= 6 x function timeout
DLQ_RETENTION_DAYS = 14  # the longest SQS allows: time to fix the cause and redrive


def rule_sql(ca_certificate_id: str) -> str:
    return f"SELECT * FROM '{REGISTERED_TOPIC.format(ca_certificate_id)}'"  # noqa: S608 (IoT SQL; the id is hex)


class Intake(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: JitrConfig,
        ca_certificate_ids: list[str],
        function: aws_lambda.IFunction,
        function_timeout: cdk.Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(DLQ_RETENTION_DAYS),
        )
        self.queue = sqs.Queue(
            self,
            "Events",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=cdk.Duration.seconds(function_timeout.to_seconds() * VISIBILITY_FACTOR),
            retention_period=cdk.Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=config.max_receive_count
            ),
        )
        self.rule_errors = logs.LogGroup(
            self, "RuleErrors", removal_policy=cdk.RemovalPolicy.DESTROY, retention=retention(config.log_retention_days)
        )

        # Rule names are fixed by the construct path (unique per stack) so the role can trust exactly these rules
        # without a dependency cycle between the role and the rules.
        self.rule_names = [
            f"{cdk.Names.unique_id(self)}Registered{index}"[-128:] for index, _ in enumerate(ca_certificate_ids)
        ]
        stack = cdk.Stack.of(self)
        rule_arns = [stack.format_arn(service="iot", resource="rule", resource_name=name) for name in self.rule_names]
        self.role = iam.Role(
            self,
            "RuleRole",
            assumed_by=iot_principal(rule_arns),
            description="Lets jitr's topic rules deliver registration events to the intake queue.",
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.queue.queue_arn]))
        self.rule_errors.grant_write(self.role)

        self.rules: list[iot.CfnTopicRule] = []
        for index, (ca_id, name) in enumerate(zip(ca_certificate_ids, self.rule_names, strict=True)):
            self.rules.append(
                iot.CfnTopicRule(
                    self,
                    f"Registered{index}",
                    rule_name=name,
                    topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
                        sql=rule_sql(ca_id),
                        aws_iot_sql_version=SQL_VERSION,
                        description=f"jitr: certificates registered under CA {ca_id[:12]}... to the intake queue",
                        rule_disabled=False,
                        actions=[
                            iot.CfnTopicRule.ActionProperty(
                                sqs=iot.CfnTopicRule.SqsActionProperty(
                                    queue_url=self.queue.queue_url, role_arn=self.role.role_arn, use_base64=False
                                )
                            )
                        ],
                        error_action=iot.CfnTopicRule.ActionProperty(
                            cloudwatch_logs=iot.CfnTopicRule.CloudwatchLogsActionProperty(
                                log_group_name=self.rule_errors.log_group_name, role_arn=self.role.role_arn
                            )
                        ),
                    ),
                )
            )

        self.max_concurrency = max_concurrency(config.register_thing_tps)
        self.event_source = sources.SqsEventSource(
            self.queue,
            batch_size=BATCH_SIZE,
            max_batching_window=cdk.Duration.seconds(BATCH_WINDOW_S),
            report_batch_item_failures=True,
            max_concurrency=self.max_concurrency,
        )
        function.add_event_source(self.event_source)
