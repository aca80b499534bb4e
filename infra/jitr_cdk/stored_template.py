"""The stored provisioning template, its provisioning role, and the device IoT policy it attaches.

The template is checked by jitr's engine at synth (a broken template fails `cdk synth` with the engine's messages,
done in `jitr_config.model`). In `jitr` mode it is a disabled FLEET_PROVISIONING template that only the handler reads
(no device can provision itself with it); in `jitp` mode it is a JITP template that AWS runs for the CA.
"""

from __future__ import annotations

import copy

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from constructs import Construct

from jitr.policy import device_policy_document
from jitr.templates import Template
from jitr.templates.limits import CERTIFICATE, POLICY, THING
from jitr_config.model import JitrConfig, ProductConfig


def iot_arn(resource: str) -> str:
    """An AWS IoT ARN in this stack's partition, region and account."""
    return f"arn:{cdk.Aws.PARTITION}:iot:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:{resource}"


def iot_principal(source_arns: str | list[str]) -> iam.ServicePrincipal:
    """AWS IoT as a role's principal, acting for this account and only for `source_arns` (confused-deputy guard)."""
    return iam.ServicePrincipal(
        "iot.amazonaws.com",
        conditions={
            "StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID},
            "ArnLike": {"aws:SourceArn": source_arns},
        },
    )


def template_statements(
    template: Template, device_policy_name: str | None, policy_parameter: str | None
) -> list[iam.PolicyStatement]:
    """What RegisterThing needs to apply `template`: its resource types, scoped by ARN where IAM allows it.
    RegisterThing itself has no resource-level permission (it must be on "*")."""
    resources = template.document.get("Resources", {})
    types = {r.get("Type") for r in resources.values() if isinstance(r, dict)}
    statements = [iam.PolicyStatement(actions=["iot:RegisterThing"], resources=["*"])]
    if CERTIFICATE in types:
        statements.append(
            iam.PolicyStatement(
                actions=["iot:DescribeCertificate", "iot:UpdateCertificate", "iot:ListPrincipalThings"],
                resources=[iot_arn("cert/*")],
            )
        )
    things = [r.get("Properties", {}) for r in resources.values() if isinstance(r, dict) and r.get("Type") == THING]
    if things:
        statements.append(
            iam.PolicyStatement(
                actions=[
                    "iot:CreateThing",
                    "iot:DescribeThing",
                    "iot:UpdateThing",
                    "iot:AttachThingPrincipal",
                    "iot:ListThingPrincipals",
                ],
                resources=[iot_arn("thing/*")],
            )
        )
    if any("ThingGroups" in p for p in things):
        statements.append(
            iam.PolicyStatement(
                actions=["iot:AddThingToThingGroup", "iot:DescribeThingGroup", "iot:ListThingGroupsForThing"],
                resources=[iot_arn("thinggroup/*"), iot_arn("thing/*")],
            )
        )
    if any("ThingTypeName" in p for p in things):
        statements.append(iam.PolicyStatement(actions=["iot:DescribeThingType"], resources=[iot_arn("thingtype/*")]))
    if any("BillingGroup" in p for p in things):
        statements.append(
            iam.PolicyStatement(
                actions=["iot:AddThingToBillingGroup", "iot:DescribeBillingGroup"],
                resources=[iot_arn("billinggroup/*"), iot_arn("thing/*")],
            )
        )
    policies = [r.get("Properties", {}) for r in resources.values() if isinstance(r, dict) and r.get("Type") == POLICY]
    names: list[str] = []
    for properties in policies:
        name = properties.get("PolicyName")
        if "PolicyDocument" in properties or name is None:
            names.append("*")
            statements.append(iam.PolicyStatement(actions=["iot:CreatePolicy"], resources=[iot_arn("policy/*")]))
        elif isinstance(name, str):
            names.append(name)
        elif name == {"Ref": policy_parameter} and device_policy_name is not None:
            names.append(device_policy_name)
        else:
            names.append("*")  # a name computed from parameters: any policy
    if names:
        policy_arns = [iot_arn(f"policy/{n}") for n in dict.fromkeys(names)]
        statements.append(iam.PolicyStatement(actions=["iot:GetPolicy"], resources=policy_arns))
        # AttachPolicy is authorised against the target certificate as well as the policy.
        statements.append(
            iam.PolicyStatement(actions=["iot:AttachPolicy"], resources=[*policy_arns, iot_arn("cert/*")])
        )
    return statements


class StoredTemplate(Construct):
    """`CfnProvisioningTemplate` + provisioning role + device `CfnPolicy` (when the template takes its name), of one
    product (`product`; the configuration's first when none is given)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: JitrConfig, product: ProductConfig | None = None
    ) -> None:
        super().__init__(scope, construct_id)
        product = product or config.products[0]
        self.product = product
        document = copy.deepcopy(product.template.document)
        self.device_policy: iot.CfnPolicy | None = None
        device_policy_name: str | None = None
        if product.device_policy_parameter:
            self.device_policy = iot.CfnPolicy(self, "DevicePolicy", policy_document=device_policy_document(iot_arn))
            # Kept when the stack is deleted or the resource replaced: every provisioned device's certificate is
            # attached to it (AWS IoT refuses to delete an attached policy, which would leave the stack DELETE_FAILED),
            # and a device that lost it could no longer connect. The stack's output names it for a later clean-up.
            self.device_policy.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
            device_policy_name = self.device_policy.ref
            # The generated policy name becomes the parameter's default, so AWS (jitp) and the handler (jitr) agree.
            document["Parameters"][product.device_policy_parameter]["Default"] = device_policy_name
        self.statements = template_statements(product.template, device_policy_name, product.device_policy_parameter)

        # CloudFormation requires a provisioning role. In jitr mode nothing uses it (the handler calls RegisterThing
        # with its own role, and the template is disabled), so it gets no permissions at all; in jitp mode AWS IoT
        # applies the template with it. Its trust is scoped to AWS IoT acting for this account's IoT resources.
        self.provisioning_role = iam.Role(
            self,
            "ProvisioningRole",
            assumed_by=iot_principal(iot_arn("*")),
            description=(
                "Lets AWS IoT apply the jitr provisioning template (jitp mode)."
                if not config.validated
                else "Required by CloudFormation for the stored template; unused in jitr mode, so it grants nothing."
            ),
            inline_policies=(
                {"ApplyTemplate": iam.PolicyDocument(statements=self.statements)} if not config.validated else None
            ),
        )
        self.template = iot.CfnProvisioningTemplate(
            self,
            "Template",
            template_name=product.template_name,
            description=f"jitr: {_described(product)}{product.template_path} ({config.provisioning_mode} mode)",
            provisioning_role_arn=self.provisioning_role.role_arn,
            template_body=cdk.Stack.of(self).to_json_string(document),
            template_type="FLEET_PROVISIONING" if config.validated else "JITP",
            # jitr mode: only the handler reads it; enabled, devices holding a claim certificate could use it.
            enabled=not config.validated,
        )
        self.template_name = self.template.ref
        self.template_arn = self.template.attr_template_arn


def _described(product: ProductConfig) -> str:
    return "" if product.implicit else f"product {product.name}: "
