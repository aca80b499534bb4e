"""The handler's permission to ask a product's decision hook: invoke that one function, never a wildcard."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import assertions
from aws_cdk import aws_iam as iam

from jitr_cdk.hook import grant_hook


def invoke_statements(*functions: str) -> list[dict[str, Any]]:
    """The statements of the handler role's policy after granting it each function, in a stack of no fixed account."""
    stack = cdk.Stack(cdk.App(), "Hooked")
    role = iam.Role(stack, "Handler", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    for function in functions:
        grant_hook(role, function, stack)
    (policy,) = assertions.Template.from_stack(stack).find_resources("AWS::IAM::Policy").values()
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def in_this_stack(resource_name: str) -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":lambda:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                f":function:{resource_name}",
            ],
        ]
    }


def test_a_named_function_is_the_one_in_the_stacks_partition_region_and_account() -> None:
    assert invoke_statements("fleet-hook") == [
        {"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": in_this_stack("fleet-hook")}
    ]


def test_a_qualified_name_grants_that_version_or_alias_only() -> None:
    (statement,) = invoke_statements("fleet-hook:live")

    assert statement["Resource"] == in_this_stack("fleet-hook:live")


def test_an_arn_is_granted_as_written() -> None:
    arn = "arn:aws:lambda:eu-west-1:210987654321:function:fleet-hook"

    assert invoke_statements(arn) == [{"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": arn}]


def test_two_products_hooks_are_each_granted() -> None:
    resources = [statement["Resource"] for statement in invoke_statements("sensor-hook", "meter-hook")]

    assert resources == [in_this_stack("sensor-hook"), in_this_stack("meter-hook")]


@pytest.mark.parametrize(
    "function", ["*", "fleet-*", "arn:aws:lambda:eu-west-1:210987654321:function:*", "arn:aws:lambda:*:*:*", ""]
)
def test_a_wildcard_is_refused(function: str) -> None:
    with pytest.raises(ValueError, match="no wildcards"):
        invoke_statements(function)
