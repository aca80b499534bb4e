"""Decision events (`jitr.events`): the permission to publish them, on exactly the configured bus. The handler and
the revocation sync publish; `jitr_cdk.monitoring` alarms on `DecisionEventsFailed`. The bus is the account's (the
default bus, or one the configuration names): the stack never creates or deletes it, and adds no rule to it."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam


def bus_arn(bus: str) -> str:
    """The ARN of `bus` (a name, in this stack's account and region, or already an ARN)."""
    if bus.startswith("arn:"):
        return bus
    return f"arn:{cdk.Aws.PARTITION}:events:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:event-bus/{bus}"


def publish_statement(bus: str) -> iam.PolicyStatement:
    return iam.PolicyStatement(sid="PublishDecisionEvents", actions=["events:PutEvents"], resources=[bus_arn(bus)])
