"""A product's decision hook (`jitr.hook`): the handler's permission to invoke exactly that function. The function is
the fleet's own: the stack never creates it, and a function in another account also needs its own resource policy
to allow the handler's role."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from jitr.hook import FUNCTION


def function_arn(function: str, scope: Construct) -> str:
    """The ARN of `function` (a name, optionally :version or :alias, in `scope`'s stack's partition, region and
    account; or already an ARN). Raises ValueError for anything else, a wildcard among them."""
    if not FUNCTION.fullmatch(function):
        raise ValueError(f"hook function {function!r} is not a Lambda function name or ARN (no wildcards)")
    if function.startswith("arn:"):
        return function
    return cdk.Stack.of(scope).format_arn(
        service="lambda", resource="function", resource_name=function, arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
    )


def grant_hook(function_role: iam.IGrantable, function: str, scope: Construct) -> iam.PolicyStatement:
    """Let `function_role` invoke the hook `function` and nothing else; returns the statement it was given."""
    statement = iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[function_arn(function, scope)])
    function_role.grant_principal.add_to_principal_policy(statement)
    return statement
