"""`JustInTimeRegistration`: everything jitr deploys, as one construct a team adds to a stack or stage it already has.

It composes one construct per concern (CA registration, stored templates, intake, handler, sweeper, revocation sync,
monitoring) and carries its own cdk-nag acknowledgements: each role's IAM5 wildcards, with the reason each cannot be
narrower. Turning cdk-nag on is the app's choice (`jitr_cdk.stack.build` does, for this repository's stack).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_lambda
from constructs import Construct

from jitr.products import IMPLICIT
from jitr_config.model import JitrConfig, load_config
from jitr_config.properties import JitrProperties

from .bundling import FUNCTION_TARGET, lambda_code
from .ca_registration import CaRegistration
from .decisions import DecisionTable
from .enrollment import EnrollmentTable
from .handler import RegistrationHandler
from .intake import Intake
from .monitoring import Monitoring
from .revocation_sync import RevocationSyncFunction
from .stored_template import StoredTemplate
from .sweeper import Sweeper

OPT_IN_PARAMETER = "DevelopmentCaOptIn"


class JustInTimeRegistration(Construct):
    """AWS IoT just-in-time registration of devices whose certificates the configured CAs issued: the CAs, each
    product's provisioning template and, in `jitr` mode, the handler that decides each new certificate, with its
    queue, sweeper, decision table, optional enrollment table and revocation sync, alarms and dashboard.

    `config` is a checked `JitrConfig` (`load_config`). `from_properties` builds one from typed properties
    (`jitr_config.properties.JitrProperties`), `from_settings` from the same mapping as the `jitr` context of this
    repository's cdk.json: both with synth's checks and messages."""

    # set in `jitr` mode only (in `jitp` mode AWS provisions by itself: there is no handler)
    decisions: DecisionTable
    enrollment: EnrollmentTable | None
    handler: RegistrationHandler
    intake: Intake
    sweeper: Sweeper
    revocation_sync: RevocationSyncFunction | None
    monitoring: Monitoring

    def __init__(self, scope: Construct, construct_id: str, *, config: JitrConfig) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        # one stored template per product; the implicit product's (or one named "default") keeps the id it had
        # before products, so an upgrade updates it in place
        self.templates = {
            p.name: StoredTemplate(self, _template_id(p.name), config=config, product=p) for p in config.products
        }
        self.template = next(iter(self.templates.values()))
        self.cas = CaRegistration(self, "Cas", config=config, jitp_template_name=self.template.template_name)
        for _, resource in self.cas.cas:
            # In jitp mode AWS runs the template the moment a device connects: it must exist before the CA does.
            resource.node.add_dependency(self.template.template)
        if config.development_ca:
            self._require_opt_in()
        self._template_outputs()
        for template in self.templates.values():
            _acknowledge_wildcards(template.provisioning_role)
        if config.validated:  # in jitp mode AWS provisions by itself: there is nothing for a handler to decide
            self._decide()

    @classmethod
    def from_settings(
        cls,
        scope: Construct,
        construct_id: str,
        settings: Mapping[str, Any],
        root: Path,
        *,
        development_ca: Callable[[Path], tuple[str, bool]] | None = None,
    ) -> JustInTimeRegistration:
        """The construct for `settings`, the mapping the `jitr` context holds; relative paths in it (CA PEM files,
        templates) are read from `root`. Raises `ConfigError`, naming the setting, for a configuration synth refuses.
        Without `development_ca` (how `app.py` makes the development CA), `caCertificates` is required."""
        return cls(scope, construct_id, config=load_config(settings, root, development_ca=development_ca))

    @classmethod
    def from_properties(
        cls,
        scope: Construct,
        construct_id: str,
        properties: JitrProperties,
        root: Path,
        *,
        development_ca: Callable[[Path], tuple[str, bool]] | None = None,
    ) -> JustInTimeRegistration:
        """The construct for typed `properties`: the same as `from_settings` with the mapping they mean
        (`properties.to_settings()`), checked by the same code with the same messages."""
        return cls.from_settings(scope, construct_id, properties.to_settings(), root, development_ca=development_ca)

    def _decide(self) -> None:
        """The handler and what feeds, sweeps and watches it."""
        config = self.config
        self.decisions = DecisionTable(self, "Decisions")
        self.enrollment = EnrollmentTable(self, "Enrollment") if config.enrollment else None
        code = lambda_code(self, FUNCTION_TARGET)  # one asset (bundled and hashed once) for both functions
        self.handler = RegistrationHandler(
            self,
            "Handler",
            config=config,
            templates=list(self.templates.values()),
            ca_arns=self.cas.arns,
            decisions=self.decisions,
            code=code,
            enrollment=self.enrollment,
        )
        self.intake = Intake(
            self,
            "Intake",
            config=config,
            ca_certificate_ids=self.cas.certificate_ids,
            function=self.handler.function,
            function_timeout=self.handler.timeout,
        )
        self.sweeper = Sweeper(
            self,
            "Sweeper",
            config=config,
            service=self.handler.service,
            ca_certificate_ids=self.cas.certificate_ids,
            queue=self.intake.queue,
            decisions=self.decisions,
            code=code,
        )
        self.revocation_sync = self._revocation_sync(code)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            service=self.handler.service,
            function=self.handler.function,
            queue=self.intake.queue,
            dead_letter_queue=self.intake.dead_letter_queue,
            rule_errors=self.intake.rule_errors,
            swept=self.sweeper.metric,
            sweeper=self.sweeper.function,
            revocation_sync=self.revocation_sync,
        )
        self._handler_outputs()
        _acknowledge_wildcards(self.handler.role)
        _acknowledge_wildcards(self.sweeper.role)
        if self.revocation_sync is not None:
            _acknowledge_wildcards(self.revocation_sync.role, SYNC_WILDCARDS)

    def _revocation_sync(self, code: aws_lambda.Code) -> RevocationSyncFunction | None:
        """The sync, only when a CA has revocation configured (a configuration without it synthesizes as before)."""
        sync = self.config.revocation_sync
        if sync is None:
            return None
        arns = dict(zip(self.cas.certificate_ids, self.cas.arns, strict=True))
        return RevocationSyncFunction(
            self,
            "RevocationSync",
            config=self.config,
            sync=sync,
            service=self.handler.service,
            environment=self.handler.settings.to_environment(),
            ca_arns=[arns[ca_id] for ca_id in self.config.revocation_ca_ids],
            decisions=self.decisions,
            code=code,
            enrollment=self.enrollment,
        )

    def _output(self, key: str, value: str, description: str | None = None) -> None:
        """An output under the key `jitr doctor` reads, in any stack: CDK would prefix it with the construct's path and
        a hash (`RegistrationFunctionName1A2B3C4D`) in a team's stack. In this repository's stack (id `Default`) that
        is the key CDK gives it anyway. Two constructs in one stack would clash here: one per stack, as documented."""
        cdk.CfnOutput(self, key, value=value, description=description).override_logical_id(key)

    def _template_outputs(self) -> None:
        self._output("CaCertificateIds", value=",".join(self.cas.certificate_ids))
        self._output("TemplateName", value=self.template.template_name)
        if not self.config.implicit_products:
            names = {name: template.template_name for name, template in self.templates.items()}
            self._output("ProductTemplates", value=cdk.Stack.of(self).to_json_string(names))
        if self.template.device_policy is not None:
            self._output(
                "DevicePolicyName",
                value=self.template.device_policy.ref,
                description="Retained when the stack is deleted: provisioned devices' certificates stay attached to it",
            )

    def _handler_outputs(self) -> None:
        self._output("FunctionName", value=self.handler.function.function_name)
        self._output("QueueUrl", value=self.intake.queue.queue_url)
        self._output("DeadLetterQueueUrl", value=self.intake.dead_letter_queue.queue_url)
        self._output("DeadLetterQueueArn", value=self.intake.dead_letter_queue.queue_arn)
        self._output("DashboardName", value=self.monitoring.dashboard.dashboard_name)
        self._output("DecisionTableName", value=self.decisions.table.table_name)
        if self.enrollment is not None:
            self._output("EnrollmentTableName", value=self.enrollment.table.table_name)
        # what `jitr doctor` checks, read from these outputs (cdk-outputs.json or the stack's)
        self._output("RuleNames", value=",".join(self.intake.rule_names))
        self._output("EventSourceMappingId", value=self.intake.event_source.event_source_mapping_id)
        if self.revocation_sync is not None:
            self._output("RevocationSyncFunctionName", value=self.revocation_sync.function.function_name)

    def _require_opt_in(self) -> None:
        """The development CA's key sits unencrypted on a laptop: deploying it must be a decision, not an accident.
        The parameter keeps its name in any stack, so the message below (and the configuration's note) stay true."""
        opt_in = cdk.CfnParameter(
            self,
            OPT_IN_PARAMETER,
            type="String",
            default="no",
            allowed_values=["no", "yes"],
            description="This stack registers jitr's development CA (.dev-pki/). Set to yes to deploy it anyway.",
        )
        opt_in.override_logical_id(OPT_IN_PARAMETER)
        cdk.CfnRule(
            self,
            "DevelopmentCaNeedsOptIn",
            assertions=[
                cdk.CfnRuleAssertion(
                    assert_=cdk.Fn.condition_equals(opt_in.value_as_string, "yes"),
                    assert_description=(
                        "No caCertificates are configured, so this stack would register the development CA whose key"
                        " is in .dev-pki/. Configure your CA in cdk.json, or deploy with"
                        f" --parameters {OPT_IN_PARAMETER}=yes for a test account."
                    ),
                )
            ],
        )


def _template_id(product: str) -> str:
    return "Template" if product == IMPLICIT else f"Template-{product}"


# Every wildcard the roles hold, and why it cannot be narrower.
WILDCARDS = {
    "Resource::*": (
        "iot:RegisterThing, iot:ListPrincipalThings and iot:ListCertificatesByCA (sweeper; jitr assumes, as for AWS"
        " IoT's other List actions, that they take no resource-level permission), and X-Ray's PutTraceSegments/"
        "PutTelemetryRecords, have no resource-level permissions in IAM; every other action in this policy is scoped"
        " to ARNs."
    ),
    "Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:cert/*": (
        "Device certificate ids are only known when a device first connects; Describe/UpdateCertificate and"
        " AttachPolicy's target are limited to this account's and region's certificates."
    ),
    "Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:thing/*": (
        "Thing names come from each device's certificate at provisioning time; thing actions are limited to this"
        " account's and region's things."
    ),
}


# The revocation sync's, and why.
SYNC_WILDCARDS = {
    "Resource::*": "X-Ray's PutTraceSegments/PutTelemetryRecords have no resource-level permissions in IAM.",
    "Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:cert/*": (
        "The certificates a CRL lists are only known when the sync reads it; UpdateCertificate is limited to this"
        " account's and region's certificates."
    ),
}


def _acknowledge_wildcards(construct: Construct, wildcards: dict[str, str] = WILDCARDS) -> None:
    """Accept exactly the IAM5 findings listed in `wildcards` on `construct` and its children, each with its reason
    (written into the template's metadata too). Any other wildcard still fails the synth."""
    for finding, reason in wildcards.items():
        cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=f"AwsSolutions-IAM5[{finding}]", reason=reason))
