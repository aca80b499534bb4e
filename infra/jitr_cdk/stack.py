"""This repository's stack: the `JustInTimeRegistration` construct, with cdk-nag's AwsSolutions checks turned on.

The construct's id is "Default", which CDK leaves out of logical ids, `Names.unique_id` and `node.addr`: the stack's
resources keep the ids (and the topic rules the names) they had when the stack built them itself, so a stack deployed
before the construct existed updates in place.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from jitr_config.model import JitrConfig

from .ca_registration import CaRegistration
from .construct import JustInTimeRegistration
from .decisions import DecisionTable
from .enrollment import EnrollmentTable
from .handler import RegistrationHandler
from .intake import Intake
from .monitoring import Monitoring
from .revocation_sync import RevocationSyncFunction
from .stored_template import StoredTemplate
from .sweeper import Sweeper

# CDK's id for a construct that adds no component to its children's logical ids (constructs' `Default`)
TRANSPARENT_ID = "Default"


class JitrStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: JitrConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description="jitr: just-in-time registration for AWS IoT", **kwargs)
        self.registration = JustInTimeRegistration(self, TRANSPARENT_ID, config=config)

    # The construct's parts, as the stack exposed them before the construct existed.
    @property
    def config(self) -> JitrConfig:
        return self.registration.config

    @property
    def templates(self) -> dict[str, StoredTemplate]:
        return self.registration.templates

    @property
    def template(self) -> StoredTemplate:
        return self.registration.template

    @property
    def cas(self) -> CaRegistration:
        return self.registration.cas

    @property
    def decisions(self) -> DecisionTable:
        return self.registration.decisions

    @property
    def enrollment(self) -> EnrollmentTable | None:
        return self.registration.enrollment

    @property
    def handler(self) -> RegistrationHandler:
        return self.registration.handler

    @property
    def intake(self) -> Intake:
        return self.registration.intake

    @property
    def sweeper(self) -> Sweeper:
        return self.registration.sweeper

    @property
    def revocation_sync(self) -> RevocationSyncFunction | None:
        return self.registration.revocation_sync

    @property
    def monitoring(self) -> Monitoring:
        return self.registration.monitoring


def build(app: cdk.App, config: JitrConfig, stack_name: str = "Jitr") -> JitrStack:
    """The stack in `app`, with cdk-nag's AwsSolutions pack gating synthesis (any unacknowledged finding fails it)."""
    stack = JitrStack(app, stack_name, config=config)
    cdk.Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True)
    )
    return stack
