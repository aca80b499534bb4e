"""The enrollment table's construct: keys as the adapter uses them, on demand, encrypted, point-in-time recovery,
and a grant of exactly the three item actions the handler needs, on that table only; cdk-nag finds nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from jitr.enrollment import PARTITION_KEY, SORT_KEY
from jitr_cdk.enrollment import EnrollmentTable


def _synthesized(outdir: Path) -> tuple[Template, cdk.Stack, EnrollmentTable, iam.Role]:
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "EnrollmentTest")
    enrollment = EnrollmentTable(stack, "Enrollment")
    role = iam.Role(stack, "HandlerRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    enrollment.grant_enrollments(role)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    app.synth()  # raises when cdk-nag reports a finding
    return Template.from_stack(stack), stack, enrollment, role


def test_the_table_and_its_grant(tmp_path: Path) -> None:
    template, stack, enrollment, _ = _synthesized(tmp_path)
    template.resource_count_is("AWS::DynamoDB::Table", 1)
    template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": "Delete",
            "Properties": {
                "KeySchema": [
                    {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
                    {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
                ],
                "BillingMode": "PAY_PER_REQUEST",
                "SSESpecification": {"SSEEnabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            },
        },
    )
    table_id = stack.get_logical_id(enrollment.table.node.default_child)  # type: ignore[arg-type]
    policies: dict[str, Any] = template.find_resources("AWS::IAM::Policy")
    [statement] = [s for policy in policies.values() for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    assert sorted(statement["Action"]) == ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == [{"Fn::GetAtt": [table_id, "Arn"]}]  # this table only, no index
    template.has_resource_properties("AWS::IAM::Policy", {"Roles": [{"Ref": Match.any_value()}]})
