"""The enrollment table: the devices each product requires enrolled (imported from manufacturing manifests), their
status, the certificates held until they are enrolled and the certificate provisioned for each (for quarantine)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from jitr.enrollment import PARTITION_KEY, SORT_KEY

# What the handler does with enrollments (`Enrollments.look_up`, `wait`, `provisioned`): nothing more. The operator
# commands (import, list, disable, enable) run with the operator's own credentials.
HANDLER_ACTIONS = ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:PutItem")


class EnrollmentTable(Construct):
    """On demand, encrypted, point-in-time recovery; partition key the product, sort key `<by>#<value>` (a product's
    enrollments are one Query). Deleted with the stack, as the decision table is: the manifests are the source."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=SORT_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )

    def grant_enrollments(self, role: iam.IGrantable) -> None:
        """What the registration handler needs: read an identity's enrollment, remember a held certificate on it,
        record the certificate provisioned for it."""
        self.table.grant(role, *HANDLER_ACTIONS)
