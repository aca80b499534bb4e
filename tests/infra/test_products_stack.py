"""Products in the deployed stack: one intake, one decision table and one handler serve every product, each with its
own stored template; and a stack deployed before products upgrades in place (the synth diff against the template
the previous release synthesized from the same configuration)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jitr.certificates import certificate_id
from jitr.settings import Settings
from jitr_config.model import ConfigError
from jitr_tools import pki
from tests.infra.support import Synthesized, as_list, flat, registration_function, statements_of, synthesize
from tests.support import REPO

UPGRADE = REPO / "tests/data/upgrade"


def test_a_stack_from_before_products_upgrades_without_replacing_its_cas_queues_table_or_template(
    tmp_path: Path,
) -> None:
    """Every stateful resource the previous release made from this configuration is still there with the same
    logical id and properties (CloudFormation updates nothing and replaces nothing), and the handler's environment
    is the one it had. (tests/data/upgrade/previous-*.json: config.json synthesized by commit 6439020, the last
    release before products, with this module's `synthesize`.)"""
    settings = json.loads((UPGRADE / "config.json").read_text())
    now = synthesize(settings, tmp_path)
    previous: dict[str, Any] = json.loads((UPGRADE / "previous-stack.json").read_text())
    resources = now.json["Resources"]
    for logical_id, resource in previous.items():
        assert logical_id in resources, f"{logical_id} ({resource['Type']}) would be replaced"
        assert resources[logical_id] == resource, f"{logical_id} changed"
    environment = registration_function(now)["Properties"]["Environment"]["Variables"]
    assert environment == json.loads((UPGRADE / "previous-environment.json").read_text())


@pytest.fixture(scope="module")
def product_stack(
    tmp_path_factory: pytest.TempPathFactory, issuing_ca: pki.Issued, second_ca: pki.Issued
) -> Synthesized:
    return synthesize(
        {
            "caCertificates": [issuing_ca.pem, second_ca.pem],
            "products": {
                "default": {"caCertificates": [issuing_ca.pem], "cnPattern": "^sensor-[0-9]+$"},
                "gateway": {"caCertificates": [second_ca.pem], "select": {"OU": "gateway"}},
                "meter": {"caCertificates": [second_ca.pem], "select": {"OU": "meter"}, "rejectionAction": "INACTIVE"},
            },
        },
        tmp_path_factory.mktemp("products"),
    )


def test_each_product_has_its_stored_template_and_device_policy(product_stack: Synthesized) -> None:
    templates = product_stack.resources("AWS::IoT::ProvisioningTemplate")
    assert len(templates) == 3
    assert len(product_stack.resources("AWS::IoT::Policy")) == 3
    descriptions = sorted(t["Properties"]["Description"] for t in templates.values())
    assert [d.split(":")[1] for d in descriptions] == [" product default", " product gateway", " product meter"]
    # a product named "default" keeps the template a stack from before products had
    assert product_stack.logical_id(product_stack.stack.templates["default"].template).startswith("Template0")
    outputs = product_stack.json["Outputs"]
    assert "ProductTemplates" in outputs


def test_one_handler_decides_for_every_product_with_each_ones_rules(
    product_stack: Synthesized, issuing_ca: pki.Issued, second_ca: pki.Issued
) -> None:
    assert len(product_stack.resources("AWS::SQS::Queue")) == 2  # one intake and its dead-letter queue
    assert len(product_stack.resources("AWS::DynamoDB::Table")) == 1
    variables = registration_function(product_stack)["Properties"]["Environment"]["Variables"]
    products = variables["JITR_PRODUCTS"]
    assert isinstance(products, dict)
    assert "Fn::Join" in products
    text = "".join(part if isinstance(part, str) else "NAME" for part in products["Fn::Join"][1])
    settings = Settings.from_environment({"JITR_TEMPLATE_NAME": "t", "JITR_PRODUCTS": text})
    assert [(p.name, p.select, p.template) for p in settings.products] == [
        ("default", {}, "NAME"),
        ("gateway", {"OU": "gateway"}, "NAME"),
        ("meter", {"OU": "meter"}, "NAME"),
    ]
    assert settings.products[0].cas == (certificate_id(issuing_ca.certificate),)
    assert settings.products[2].rejection_action == "INACTIVE"


def test_the_handler_may_read_every_products_template_and_no_other(product_stack: Synthesized) -> None:
    role = product_stack.logical_id(product_stack.stack.handler.role.node.default_child)
    (read,) = [s for s in statements_of(product_stack, role) if s.get("Sid") == "ReadTheTemplate"]
    arns = {json.dumps(arn, sort_keys=True) for arn in read["Resource"]}
    expected = {
        json.dumps({"Fn::GetAtt": [product_stack.logical_id(t.template), "TemplateArn"]}, sort_keys=True)
        for t in product_stack.stack.templates.values()
    }
    assert arns == expected


def test_products_that_do_not_fit_the_functions_environment_are_refused_naming_them(
    tmp_path: Path, issuing_ca: pki.Issued
) -> None:
    many = {
        f"line-{i:02d}": {"caCertificates": [issuing_ca.pem], "select": {"OU": f"line-{i:02d}"}, "cnPattern": "x" * 99}
        for i in range(30)
    }
    with pytest.raises(ConfigError, match=r"the products .*: [0-9]+ bytes"):
        synthesize({"caCertificates": [issuing_ca.pem], "products": many}, tmp_path)


def test_enrollment_and_a_hook_give_the_handler_a_table_and_one_function_to_invoke(
    tmp_path: Path, issuing_ca: pki.Issued, second_ca: pki.Issued
) -> None:
    stack = synthesize(
        {
            "caCertificates": [issuing_ca.pem, second_ca.pem],
            "products": {
                "sensor": {"caCertificates": [issuing_ca.pem], "enrollment": {"by": "serialNumber"}},
                "gateway": {"caCertificates": [second_ca.pem], "hook": {"function": "fleet-hook", "timeoutSeconds": 3}},
            },
        },
        tmp_path,
    )
    tables = stack.resources("AWS::DynamoDB::Table")
    assert len(tables) == 2  # the decision table and the enrollment table
    function = registration_function(stack)
    assert "JITR_ENROLLMENT_TABLE" in function["Properties"]["Environment"]["Variables"]
    assert function["Properties"]["Timeout"] == 30 + 10 * 3  # room for each record of a batch to ask its hook
    (queue,) = [q for q in stack.resources("AWS::SQS::Queue").values() if "RedrivePolicy" in q["Properties"]]
    assert queue["Properties"]["VisibilityTimeout"] == 6 * 60
    role = stack.logical_id(stack.stack.handler.role.node.default_child)
    invoke = [s for s in statements_of(stack, role) if "lambda:InvokeFunction" in str(s["Action"])]
    assert [flat(s["Resource"]) for s in invoke] == [
        "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:fleet-hook"
    ]
    assert "EnrollmentTableName" in stack.json["Outputs"]
    assert "HookFailures" in stack.stack.monitoring.alarms


def test_each_product_has_its_rejections_alarm_and_unclaimed_certificates_one(product_stack: Synthesized) -> None:
    alarms = {a.node.id for a in product_stack.stack.monitoring.alarms.values()}
    assert {"Rejections-defaultAlarm", "Rejections-gatewayAlarm", "Rejections-meterAlarm", "NoProductAlarm"} <= alarms
    assert "HookFailuresAlarm" not in alarms  # no product has a hook


def test_the_revocation_sync_may_read_and_mark_enrollments_and_no_more(tmp_path: Path, issuing_ca: pki.Issued) -> None:
    stack = synthesize(
        {
            "caCertificates": [{"pem": issuing_ca.pem, "revocation": {"crl": ["https://pki.example.com/ca.crl"]}}],
            "products": {"sensor": {"caCertificates": [issuing_ca.pem], "enrollment": {"by": "serialNumber"}}},
        },
        tmp_path,
    )
    assert stack.stack.revocation_sync is not None
    assert stack.stack.enrollment is not None
    role = stack.logical_id(stack.stack.revocation_sync.role.node.default_child)
    table = stack.logical_id(stack.stack.enrollment.table.node.default_child)
    on_table = [s for s in statements_of(stack, role) if table in json.dumps(s["Resource"])]
    assert [sorted(as_list(s["Action"])) for s in on_table] == [["dynamodb:GetItem", "dynamodb:UpdateItem"]]
