"""The registration handler: the function, its log group, its settings and its least-privilege role."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda
from aws_cdk import aws_logs as logs
from constructs import Construct

from jitr_config.model import ConfigError, JitrConfig

from .bundling import HANDLER
from .decision_events import publish_statement
from .decisions import DecisionTable
from .enrollment import EnrollmentTable
from .hook import grant_hook
from .stored_template import StoredTemplate, iot_arn

# The newest Python runtime Lambda offers. The code needs 3.11+; the tests run on this machine's 3.11 (no 3.14 here).
RUNTIME = aws_lambda.Runtime.PYTHON_3_14
ARCHITECTURE = aws_lambda.Architecture.ARM_64  # Graviton: cheaper per GB-second; every dependency ships aarch64 wheels
MEMORY_MB = 512  # CPU scales with memory; chain validation is CPU-bound, and 512 MB keeps a cold start short
TIMEOUT_S = 30  # a paced batch of 10 takes about 5 s (jitr.pacing); the rest is room for botocore's retries
BATCH_SIZE = 10  # records per invocation (the intake's event source mapping)
# with decision hooks, each record of a batch may wait for its product's hook: the timeout grows by that much
ENVIRONMENT_LIMIT_BYTES = 4096  # Lambda's limit on all environment variables together
UNRESOLVED_ROOM_BYTES = 200  # kept for the names CloudFormation gives at deploy (template, decision table)
# a name CloudFormation gives at deploy inside a longer value (each product's template name in JITR_PRODUCTS): room
# for the longest such name (a provisioning template's is at most 36 characters)
TOKEN = re.compile(r"\$\{Token\[[^\]]+\]\}")
TOKEN_ROOM_BYTES = 40
# the settings behind the variables that grow with the configuration, named when an environment does not fit
GROWING_VARIABLES = {
    "JITR_PRODUCTS": "the products (each one's CAs, selector, template and rules)",
    "JITR_REVOCATION": "the revocation objects (caCertificates[].revocation, trustRoot.revocation)",
    "JITR_TRUST_ROOT_PEM": "trustRoot",
    "JITR_EXTRA_PARAMETERS": "extraParameters",
    "JITR_CN_PATTERN": "cnPattern",
}


class RegistrationHandler(Construct):
    """The function that decides each registration, with only the permissions its decisions need."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: JitrConfig,
        templates: Sequence[StoredTemplate],
        ca_arns: list[str],
        decisions: DecisionTable,
        code: aws_lambda.Code,
        enrollment: EnrollmentTable | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.service = cdk.Stack.of(self).stack_name
        self.log_group, self.role = role_and_logs(
            self,
            retention_days=config.log_retention_days,
            description="jitr registration handler: read certificates and the template, provision, reject.",
        )
        statements = _distinct([statement for template in templates for statement in template.statements])
        for statement in _iot_statements([t.template_arn for t in templates], statements, ca_arns):
            self.role.add_to_policy(statement)
        decisions.grant_decisions(self.role)
        crl_objects = read_crl_objects(config)
        if crl_objects is not None:
            self.role.add_to_policy(crl_objects)
        if config.event_bus:
            self.role.add_to_policy(publish_statement(config.event_bus))
        if enrollment is not None:
            enrollment.grant_enrollments(self.role)
        for function in dict.fromkeys(p.hook.function for p in config.products if p.hook):
            grant_hook(self.role, function, self)

        names = {template.product.name: template.template_name for template in templates}
        self.settings = config.handler_settings(
            names, decisions.table.table_name, enrollment.table.table_name if enrollment else None
        )
        environment = {
            "POWERTOOLS_SERVICE_NAME": self.service,
            "POWERTOOLS_LOG_LEVEL": "INFO",
            **self.settings.to_environment(),
        }
        fit_environment(environment, "registration handler")
        timeout_s = TIMEOUT_S + math.ceil(BATCH_SIZE * config.hook_budget_seconds)

        self.function = jitr_function(
            self,
            code=code,
            handler=HANDLER,
            description="jitr: validate a device certificate registered by AWS IoT, then provision or reject it",
            memory_mb=MEMORY_MB,
            timeout_s=timeout_s,
            role=self.role,
            log_group=self.log_group,
            environment=environment,
        )
        self.timeout = cdk.Duration.seconds(timeout_s)


def fit_environment(environment: Mapping[str, str], function: str) -> None:
    """Refuse an environment over Lambda's limit, naming the settings that take the most of it (the names
    CloudFormation gives at deploy are unknown at synth: they are given room)."""
    sizes = {
        name: len(name.encode()) + len(TOKEN.sub("x" * TOKEN_ROOM_BYTES, value).encode())
        for name, value in environment.items()
        if not cdk.Token.is_unresolved(value) or TOKEN.sub("", value)  # a name alone is in UNRESOLVED_ROOM_BYTES
    }
    total = sum(sizes.values())
    if total <= ENVIRONMENT_LIMIT_BYTES - UNRESOLVED_ROOM_BYTES:
        return
    largest = sorted((name for name in GROWING_VARIABLES if name in sizes), key=lambda name: -sizes[name])
    named = "; ".join(f"{GROWING_VARIABLES[name]}: {sizes[name]} bytes" for name in largest)
    raise ConfigError(
        f"the {function}'s settings take {total} bytes of the {ENVIRONMENT_LIMIT_BYTES} Lambda allows for a"
        f" function's environment, {UNRESOLVED_ROOM_BYTES} of which are kept for names given at deploy. The"
        f" largest: {named}. Configure fewer or shorter values"
    )


def read_crl_objects(config: JitrConfig) -> iam.PolicyStatement | None:
    """s3:GetObject on exactly the objects the revocation sources name (None when none does)."""
    objects = config.revocation_s3_objects
    if not objects:
        return None
    return iam.PolicyStatement(
        sid="ReadTheCrls",
        actions=["s3:GetObject"],
        resources=[f"arn:{cdk.Aws.PARTITION}:s3:::{bucket}/{key}" for bucket, key in objects],
    )


def role_and_logs(scope: Construct, *, retention_days: int, description: str) -> tuple[logs.LogGroup, iam.Role]:
    """A function's own log group (deleted with the stack) and its role, which may write to it and nothing else yet."""
    log_group = logs.LogGroup(
        scope, "Logs", retention=retention(retention_days), removal_policy=cdk.RemovalPolicy.DESTROY
    )
    role = iam.Role(scope, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description)
    log_group.grant_write(role)
    return log_group, role


def jitr_function(
    scope: Construct,
    *,
    code: aws_lambda.Code,
    handler: str,
    description: str,
    memory_mb: int,
    timeout_s: int,
    role: iam.IRole,
    log_group: logs.ILogGroup,
    environment: dict[str, str],
    **options: Any,
) -> aws_lambda.Function:
    """A function of the Lambda asset (`code`, from `jitr_cdk.bundling.lambda_code`, made once per stack): the runtime
    and architecture it is built for, JSON logs to its own log group, active tracing."""
    return aws_lambda.Function(
        scope,
        "Function",
        description=description,
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        handler=handler,
        code=code,
        memory_size=memory_mb,
        timeout=cdk.Duration.seconds(timeout_s),
        role=role,
        log_group=log_group,
        logging_format=aws_lambda.LoggingFormat.JSON,
        tracing=aws_lambda.Tracing.ACTIVE,
        environment=environment,
        **options,
    )


def _distinct(statements: list[iam.PolicyStatement]) -> list[iam.PolicyStatement]:
    """The statements, each once (products whose templates create the same kinds of resource need the same)."""
    seen: dict[str, iam.PolicyStatement] = {}
    for statement in statements:
        seen.setdefault(json.dumps(statement.to_statement_json(), sort_keys=True, default=str), statement)
    return list(seen.values())


def _iot_statements(
    template_arns: list[str], template_statements: list[iam.PolicyStatement], ca_arns: list[str]
) -> list[iam.PolicyStatement]:
    return [
        iam.PolicyStatement(
            sid="ReadRegisteredCertificates",
            actions=["iot:DescribeCertificate"],
            resources=[iot_arn("cert/*")],  # any device certificate: ids are only known when devices connect
        ),
        iam.PolicyStatement(sid="ReadTheCas", actions=["iot:DescribeCACertificate"], resources=ca_arns),
        iam.PolicyStatement(
            sid="ReadTheTemplate", actions=["iot:DescribeProvisioningTemplate"], resources=template_arns
        ),
        iam.PolicyStatement(sid="RejectCertificates", actions=["iot:UpdateCertificate"], resources=[iot_arn("cert/*")]),
        iam.PolicyStatement(
            sid="OneThingOneOwner",  # who else holds the thing; detach a certificate that lost it or was replaced
            actions=["iot:DescribeThing", "iot:ListThingPrincipals", "iot:DetachThingPrincipal"],
            resources=[iot_arn("thing/*")],
        ),
        iam.PolicyStatement(
            sid="ThingsOfACertificate",  # a redelivery finishes a settlement of who keeps the certificate's thing
            actions=["iot:ListPrincipalThings"],
            resources=["*"],  # no resource-level permission (see WILDCARDS in construct.py)
        ),
        *template_statements,
    ]


# CloudWatch Logs' retention choices, in days, in the order of `logs.RetentionDays` (INFINITE excluded).
_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


def retention(days: int) -> logs.RetentionDays:
    """The shortest retention CloudWatch Logs offers that keeps logs at least `days`."""
    choices = [r for r in logs.RetentionDays if r.name != "INFINITE"]
    index = next((i for i, d in enumerate(_RETENTION_DAYS) if d >= days), len(_RETENTION_DAYS) - 1)
    return choices[index]
