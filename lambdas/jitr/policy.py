"""The device policy every provisioned device gets: one document, for the stack, the rehearsal and the tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

THING = "${iot:Connection.Thing.ThingName}"


def device_policy_document(arn: Callable[[str], str]) -> dict[str, Any]:
    """A device may connect only as the thing its certificate is attached to (client id = thing name), and use only
    topics under its own name and its own shadow. Policy variables keep this one policy per fleet, not per device.
    `arn(resource)` makes an AWS IoT ARN in the account and region (the stack passes CloudFormation's)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": arn(f"client/{THING}"),
                "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:Receive"],
                "Resource": [arn(f"topic/things/{THING}/*"), arn(f"topic/$aws/things/{THING}/shadow/*")],
            },
            {
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": [arn(f"topicfilter/things/{THING}/*"), arn(f"topicfilter/$aws/things/{THING}/shadow/*")],
            },
        ],
    }


def account_arn(region: str, account_id: str) -> Callable[[str], str]:
    """`arn(resource)` for an account and region given as text (the embedded IoT's)."""
    return lambda resource: f"arn:aws:iot:{region}:{account_id}:{resource}"
