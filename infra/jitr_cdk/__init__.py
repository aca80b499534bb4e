"""jitr for a CDK app: the `JustInTimeRegistration` construct (one construct per concern inside), its typed
`JitrProperties`, and `JitrStack`, the construct plus cdk-nag as this repository deploys it."""

from jitr_config.properties import JitrProperties

from .construct import JustInTimeRegistration
from .stack import JitrStack

__all__ = ["JitrProperties", "JitrStack", "JustInTimeRegistration"]
