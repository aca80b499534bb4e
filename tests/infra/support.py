"""Stacks synthesized once per configuration, with cdk-nag's AwsSolutions gate on (as `cdk synth` runs it), and the
helpers that read their templates.

Bundling is skipped here (CDK's `aws:cdk:bundling-stacks` context): the asset is built and checked by the test that
runs the pinned CDK CLI, and by the end-to-end test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template

from jitr_cdk.stack import JitrStack, build
from jitr_config.model import JitrConfig, load_config
from jitr_tools import pki
from tests.support import REPO

REGISTRATION_CODE = "c0de" * 16


@dataclass
class Synthesized:
    config: JitrConfig
    stack: JitrStack
    template: Template

    @property
    def json(self) -> dict[str, Any]:
        return dict(self.template.to_json())

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.json["Resources"].items() if v["Type"] == resource_type}

    def one(self, resource_type: str) -> dict[str, Any]:
        (resource,) = self.resources(resource_type).values()
        return resource

    def logical_id(self, construct: cdk.CfnElement | Any) -> str:
        return str(self.stack.resolve(construct.logical_id))


def synthesize(settings: dict[str, Any], outdir: Path, **app_context: Any) -> Synthesized:
    config = load_config(
        {"template": str(REPO / "templates/jitr-device.json"), **settings}, REPO, development_ca=pki.development_ca_pem
    )
    app = cdk.App(context={"aws:cdk:bundling-stacks": [], **app_context}, outdir=str(outdir))
    stack = build(app, config)
    app.synth()  # raises when cdk-nag reports an unacknowledged finding
    return Synthesized(config, stack, Template.from_stack(stack))


def statements_of(synthesized: Synthesized, role_logical_id: str) -> list[dict[str, Any]]:
    """Every IAM statement granted to a role: inline policies and attached AWS::IAM::Policy resources."""
    resources = synthesized.json["Resources"]
    statements: list[dict[str, Any]] = []
    for policy in resources[role_logical_id]["Properties"].get("Policies", []):
        statements += policy["PolicyDocument"]["Statement"]
    for resource in resources.values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_logical_id} in resource["Properties"]["Roles"]:
            statements += resource["Properties"]["PolicyDocument"]["Statement"]
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def flat(value: Any) -> str:
    """A resolved CloudFormation value as text: Fn::Join parts joined, pseudo parameters as ${AWS::...}."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(flat(p) for p in parts)
    if isinstance(value, dict) and "Ref" in value:
        return "${" + value["Ref"] + "}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "${" + ".".join(value["Fn::GetAtt"]) + "}"
    return json.dumps(value, sort_keys=True)


def registration_function(synthesized: Synthesized) -> dict[str, Any]:
    """The registration handler's AWS::Lambda::Function (the stack also has the sweeper's)."""
    from jitr_cdk.bundling import HANDLER

    (function,) = [
        f for f in synthesized.resources("AWS::Lambda::Function").values() if f["Properties"]["Handler"] == HANDLER
    ]
    return function
