"""No policy a certificate can widen: a template in which a certificate field reaches a policy is refused (check
--jitr, synth, handler), and at render time every parameter value that lands in a policy document must be a valid
thing name, whatever the template."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jitr.templates import TemplateError, check_template, render_template
from jitr_tools.cli import main

CN = "AWS::IoT::Certificate::CommonName"
ORG = "AWS::IoT::Certificate::Organization"
PREFIX = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "'
SUFFIX = '"}]}'


def template(policy: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "Parameters": {
            CN: {"Type": "String"},
            ORG: {"Type": "String", "Default": "acme"},
            "AWS::IoT::Certificate::Id": {"Type": "String"},
            "Site": {"Type": "String", "Default": "plant-7"},
        },
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": CN}}},
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": policy},
        },
        **extra,
    }


LEAKS = {
    "Fn::Sub": {"PolicyDocument": {"Fn::Sub": PREFIX + "arn:aws:iot:*:*:client/${" + CN + "}" + SUFFIX}},
    "Fn::Sub variable map": {
        "PolicyDocument": {"Fn::Sub": [PREFIX + "client/${name}" + SUFFIX, {"name": {"Ref": CN}}]}
    },
    "Fn::Join": {"PolicyDocument": {"Fn::Join": ["", [PREFIX, {"Ref": CN}, SUFFIX]]}},
    "Fn::Select/Fn::Split": {
        "PolicyDocument": {"Fn::Join": ["", [PREFIX, {"Fn::Select": [0, {"Fn::Split": ["-", {"Ref": CN}]}]}, SUFFIX]]}
    },
    "Fn::FindInMap key": {"PolicyDocument": {"Fn::FindInMap": ["Policies", {"Ref": ORG}, "document"]}},
    "PolicyName": {"PolicyName": {"Ref": CN}},
}


@pytest.mark.parametrize("how", sorted(LEAKS))
def test_a_certificate_field_reaching_a_policy_is_refused_for_jitr(how: str) -> None:
    mappings = {"Mappings": {"Policies": {"acme": {"document": PREFIX + "*" + SUFFIX}}}}
    problems = check_template(template(LEAKS[how], **mappings), for_jitr=True)
    leaks = [p for p in problems if p.code == "JITR_CERTIFICATE_FIELD_IN_POLICY"]
    assert len(leaks) == 1, problems
    assert leaks[0].path.startswith("$.Resources.policy.Properties.Policy")
    assert "${iot:Connection.Thing.ThingName}" in leaks[0].message


def test_a_deployment_parameter_in_a_policy_is_not_a_leak() -> None:
    policy = {"PolicyDocument": {"Fn::Sub": PREFIX + "arn:aws:iot:*:*:client/${Site}-*" + SUFFIX}}
    assert check_template(template(policy), for_jitr=True) == []


@pytest.mark.parametrize(
    ("cn", "site", "unsafe"),
    [
        ("sensor-1", "plant-7", None),
        ("*", "plant-7", CN),
        ('x"]},{"Effect":"Allow","Action":"iot:*","Resource":["*', "plant-7", CN),
        ("sensor-1", "*", "Site"),
    ],
)
def test_every_value_landing_in_a_policy_document_must_be_a_thing_name(cn: str, site: str, unsafe: str | None) -> None:
    # whatever the template: this one (not a JITR template) leaks both a certificate field and a parameter
    policy = {"PolicyDocument": {"Fn::Sub": PREFIX + "client/${" + CN + "}-${Site}" + SUFFIX}}
    parameters = {CN: cn, "Site": site, "AWS::IoT::Certificate::Id": "a" * 64}
    if unsafe is None:
        plan = render_template(template(policy), parameters)
        assert json.loads(plan.policies[0].properties["PolicyDocument"])["Statement"][0]["Resource"].endswith(
            "client/sensor-1-plant-7"
        )
        return
    with pytest.raises(TemplateError) as caught:
        render_template(template(policy), parameters)
    (problem,) = [p for p in caught.value.problems if p.code == "UNSAFE_POLICY_VALUE"]  # (a CN of * is no thing name)
    assert unsafe in problem.parameters


def test_jitr_template_check_names_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "leaky.json"
    path.write_text(json.dumps(template(LEAKS["Fn::Sub"])))
    assert main(["template", "check", str(path)]) == 0  # a valid template as AWS reads it...
    capsys.readouterr()
    assert main(["template", "check", str(path), "--jitr"]) == 1  # ...that jitr refuses to run
    err = capsys.readouterr().err
    assert "$.Resources.policy.Properties.PolicyDocument" in err
    assert "JITR_CERTIFICATE_FIELD_IN_POLICY" in err
