"""The revocation sync (`jitr_handlers.revocation_sync`): a scheduled function that reads each configured CA's CRL
and sets every certificate registered in AWS IoT that it lists to REVOKED (INACTIVE while on hold), finding them
through the serial index the handler keeps in the decision table, at `revocationSync.updateTps` UpdateCertificate
calls per second. Deployed only when a CA has `revocation` configured.

Its metrics (namespace jitr, dimension service, and CA where it says): `RevocationSyncFailed` (CA),
`RevocationSourceUnusable` (CA), `RevocationsFound` (CA), `CertificatesRevokedBySync`, `CertificatesHeldBySync`,
`CertificatesReleasedBySync`; `jitr_cdk.monitoring` alarms on them.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda
from constructs import Construct

from jitr import revocation_index
from jitr_config.model import SYNC_TIMEOUT_MINUTES, JitrConfig, RevocationSync

from .decision_events import publish_statement
from .decisions import DecisionTable
from .enrollment import EnrollmentTable
from .handler import fit_environment, jitr_function, read_crl_objects, role_and_logs
from .stored_template import iot_arn

HANDLER = "jitr_handlers.revocation_sync.handler"
TIMEOUT_S = SYNC_TIMEOUT_MINUTES * 60  # 15 minutes, Lambda's longest: a run paces its revocations; the schedule is
# never shorter, so two runs do not overlap (no reserved concurrency: new accounts cannot grant it)
MEMORY_MB = 1024  # a 100,000-entry CRL is read and indexed in memory; CPU (signature, parsing) scales with memory
# The items of the decision table the sync reads and writes (jitr.revocation_index's prefixes): the serial index
# (issuer + serial -> certificate id, and what the sync did to it) and its own state per CA. Never a decision record.
SERIAL_PREFIX = revocation_index.SERIAL_PREFIX
SYNC_STATE_PREFIX = revocation_index.SYNC_PREFIX
TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")


# What the sync does with enrollments (`Enrollments.look_up`, `provisioned`, `set_quarantined`): nothing more.
SYNC_ENROLLMENT_ACTIONS = ("dynamodb:GetItem", "dynamodb:UpdateItem")


class RevocationSyncFunction(Construct):
    """The sync function, its log group, its least-privilege role and its schedule."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: JitrConfig,
        sync: RevocationSync,
        service: str,
        environment: dict[str, str],
        ca_arns: list[str],
        decisions: DecisionTable,
        code: aws_lambda.Code,
        enrollment: EnrollmentTable | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group, self.role = role_and_logs(
            self,
            retention_days=config.log_retention_days,
            description="jitr revocation sync: read the CAs' CRLs, revoke in AWS IoT the certificates they list.",
        )
        for statement in _statements(ca_arns, decisions.table.table_arn):
            self.role.add_to_policy(statement)
        crl_objects = read_crl_objects(config)
        if crl_objects is not None:
            self.role.add_to_policy(crl_objects)
        if config.event_bus:  # what it revoked, held and released, as decision events
            self.role.add_to_policy(publish_statement(config.event_bus))
        if enrollment is not None:  # a lifted hold leaves a disabled device quarantined: it reads and marks that
            enrollment.table.grant(self.role, *SYNC_ENROLLMENT_ACTIONS)
        variables = {"POWERTOOLS_SERVICE_NAME": service, "POWERTOOLS_LOG_LEVEL": "INFO", **environment}
        fit_environment(variables, "revocation sync")
        self.function = jitr_function(
            self,
            code=code,
            handler=HANDLER,
            description="jitr: revoke in AWS IoT the certificates the CAs' CRLs list",
            memory_mb=MEMORY_MB,
            timeout_s=TIMEOUT_S,
            role=self.role,
            log_group=self.log_group,
            environment=variables,
        )
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="jitr: carry the issuers' revocations into AWS IoT",
            schedule=events.Schedule.expression(sync.schedule),
            targets=[targets.LambdaFunction(self.function, retry_attempts=2)],
        )
        self.period = cdk.Duration.seconds(sync.alarm_period_s)


def _statements(ca_arns: list[str], table_arn: str) -> list[iam.PolicyStatement]:
    return [
        iam.PolicyStatement(sid="ReadTheCas", actions=["iot:DescribeCACertificate"], resources=ca_arns),
        iam.PolicyStatement(
            sid="RevokeListedCertificates",
            actions=["iot:UpdateCertificate"],
            resources=[iot_arn("cert/*")],  # which certificates a CRL lists is only known when it is read
        ),
        iam.PolicyStatement(
            sid="KeepTheSerialIndexAndSyncState",
            actions=list(TABLE_ACTIONS),
            resources=[table_arn],
            # DynamoDB's fine-grained access control on the partition key: never a decision record
            conditions={
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{SERIAL_PREFIX}*", f"{SYNC_STATE_PREFIX}*"]}
            },
        ),
    ]
