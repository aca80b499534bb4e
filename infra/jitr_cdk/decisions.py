"""The decision table: one record per certificate id (Powertools' Idempotency utility), so duplicate events cost no
AWS IoT call and an operator can read what was decided for a certificate, when and why."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from jitr_handlers.once import EXPIRY_ATTRIBUTE, KEY_ATTRIBUTE

# What the handler does with its records (Powertools' DynamoDB persistence layer): nothing more.
HANDLER_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")


class DecisionTable(Construct):
    """On demand, encrypted, TTL on the records' expiry (the retention), point-in-time recovery. Its records expire by
    themselves, so it is deleted with the stack."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=KEY_ATTRIBUTE, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=EXPIRY_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )

    def grant_decisions(self, role: iam.IRole) -> None:
        self.table.grant(role, *HANDLER_ACTIONS)
