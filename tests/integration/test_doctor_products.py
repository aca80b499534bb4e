"""`jitr doctor` on a stack with products: each product's template and what it names, the enrollment table, each
product's decision hook; on the embedded IoT, with moto's Lambda (the hook a function of the embedded Lambda),
DynamoDB and SQS. One test per finding kind."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from jitr.enrollment import Enrollments, EnrollmentSettings, import_manifest, read_manifest
from jitr.hook import HookSettings
from jitr.products import Product
from jitr.settings import Settings
from jitr_tools.embedded import EmbeddedIoT
from tests.integration.support import Fleet
from tests.integration.test_doctor import REGION, _doctor, deployed  # noqa: F401 (a fixture)
from tests.integration.test_enrollment import create_enrollment_table
from tests.support import REPO


def gateway_template() -> str:
    """The device template, with the gateway's thing group given by the product's extraParameters."""
    document = json.loads((REPO / "templates/jitr-device.json").read_text())
    document["Parameters"]["Site"] = {"Type": "String"}
    document["Resources"]["thing"]["Properties"]["ThingGroups"] = [{"Ref": "Site"}]
    return json.dumps(document)


@dataclass
class Products:
    outputs: dict[str, str]
    sensor: Product
    gateway: Product
    table: str
    hook_calls: list[dict[str, Any]]

    def deploy(self, *products: Product, **settings: Any) -> None:
        """The function's environment as the stack writes it, with these products (default: both)."""
        environment = Settings(
            template_name="t-sensor",
            products=products or (self.sensor, self.gateway),
            **{"enrollment_table": self.table, **settings},
        ).to_environment()
        boto3.client("lambda", region_name=REGION).update_function_configuration(
            FunctionName="jitr-registration", Environment={"Variables": environment}
        )


@pytest.fixture
def products(deployed: dict[str, str], fleet: Fleet) -> Products:  # noqa: F811 (the fixture imported above)
    """Two products of the fleet's CA: a sensor that requires enrollment (one device imported), and a gateway whose
    template names its site's thing group and whose hook is a function of the embedded Lambda."""
    iot = fleet.account.client
    role = "arn:aws:iam::123456789012:role/jitr-provisioning"
    iot.create_provisioning_template(
        templateName="t-sensor",
        templateBody=(REPO / "templates/jitr-device.json").read_text(),
        provisioningRoleArn=role,
    )
    iot.create_provisioning_template(
        templateName="t-gateway", templateBody=gateway_template(), provisioningRoleArn=role
    )
    iot.create_thing_group(thingGroupName="plant7")
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    table = create_enrollment_table(dynamodb, "jitr-enrollment")
    serial = f"{fleet.device('sensor-1').certificate.serial_number:x}"
    import_manifest(Enrollments(table, dynamodb), "sensor", read_manifest("b1.csv", f"serialNumber\n{serial}\n"))
    calls: list[dict[str, Any]] = []
    EmbeddedIoT(region=REGION).functions.add("fleet-hook", lambda event: calls.append(event) or {"decision": "allow"})
    sensor = Product(
        name="sensor",
        cas=(fleet.ca_id,),
        select={"OU": "sensors"},
        template="t-sensor",
        enrollment=EnrollmentSettings(by="serialNumber"),
    )
    gateway = Product(
        name="gateway",
        cas=(fleet.ca_id,),
        select={"OU": "gateways"},
        template="t-gateway",
        extra_parameters={"Site": "plant7"},
        hook=HookSettings(function="fleet-hook", parameters=("Site",)),
    )
    outputs = {
        **deployed,
        "TemplateName": "t-sensor",
        "ProductTemplates": json.dumps({"sensor": "t-sensor", "gateway": "t-gateway"}),
        "EnrollmentTableName": table,
    }
    deployment = Products(outputs, sensor, gateway, table, calls)
    deployment.deploy()
    return deployment


def _findings(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {f["subject"]: f for f in report["findings"]}


def _failing(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {s: f for s, f in _findings(report).items() if f["level"] == "FAIL"}


def test_a_healthy_stack_with_products_checks_each_product(
    tmp_path: Path, products: Products, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _doctor(tmp_path, products.outputs, capsys)

    assert code == 0, report
    findings = _findings(report)
    assert {f["level"] for f in findings.values()} == {"OK"}
    assert (
        "renders with product gateway's extraParameters (Site)"
        in findings["template t-gateway of product gateway"]["detail"]
    )
    assert "template t-sensor of product sensor" in findings
    assert "thing group plant7" in findings
    assert findings["enrollment of product sensor"]["detail"] == "readable in jitr-enrollment"
    assert findings["hook of product gateway"]["detail"] == "function fleet-hook reachable (a DryRun Invoke)"
    assert products.hook_calls == []  # a DryRun runs nothing


def test_a_stack_without_products_has_no_product_findings(
    tmp_path: Path,
    deployed: dict[str, str],  # noqa: F811 (the fixture imported above)
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, report = _doctor(tmp_path, deployed, capsys)
    assert code == 0, report
    subjects = set(_findings(report))
    assert "template jitr-device" in subjects
    assert not [s for s in subjects if "product" in s or s.startswith(("enrollment", "hook"))]


def test_a_product_the_function_does_not_decide_as_the_stack_stored_it_is_a_failure(
    tmp_path: Path, products: Products, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a function deployed with the sensor alone, deciding it with the gateway's template
    products.deploy(products.sensor.model_copy(update={"template": "t-gateway"}))

    code, report = _doctor(tmp_path, products.outputs, capsys)

    assert code == 1
    failing = _failing(report)
    assert "no such product: its devices are held NO_PRODUCT" in failing["product gateway"]["detail"]
    assert failing["product sensor"]["detail"] == (
        "the function decides it with template t-gateway, the stack stored t-sensor"
    )
    assert {failing[s]["action"] for s in ("product gateway", "product sensor")} == {"deploy the stack again"}


def test_a_products_missing_template_is_a_failure_naming_the_product(
    tmp_path: Path, products: Products, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.account.client.delete_provisioning_template(templateName="t-gateway")

    code, report = _doctor(tmp_path, products.outputs, capsys)

    assert code == 1
    assert set(_failing(report)) == {"template t-gateway of product gateway"}
    assert _failing(report)["template t-gateway of product gateway"]["detail"] == "not found"


def test_a_group_a_products_template_names_missing_is_a_failure_naming_the_product(
    tmp_path: Path, products: Products, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet.account.client.delete_thing_group(thingGroupName="plant7")

    code, report = _doctor(tmp_path, products.outputs, capsys)

    assert code == 1
    (group,) = _failing(report).values()
    assert (group["subject"], group["detail"]) == (
        "thing group plant7",
        "missing: RegisterThing fails for every device of gateway",
    )


def test_a_template_that_does_not_render_with_the_products_parameters_is_a_failure(
    tmp_path: Path, products: Products, capsys: pytest.CaptureFixture[str]
) -> None:
    products.deploy(products.sensor, products.gateway.model_copy(update={"extra_parameters": {}}))

    code, report = _doctor(tmp_path, products.outputs, capsys)

    assert code == 1
    template = _failing(report)["template t-gateway of product gateway"]
    assert template["detail"].startswith("does not render with product gateway's extraParameters (none): ")
    assert "'Site'" in template["detail"]


@pytest.mark.parametrize(
    ("change", "subject", "detail"),
    [
        (
            {"enrollment_table": None},
            "enrollment table",
            "products sensor require enrollment but the function has no JITR_ENROLLMENT_TABLE",
        ),
        (
            {"enrollment_table": "other-table"},
            "enrollment table other-table",
            "the function reads it, but the stack's enrollment table is jitr-enrollment",
        ),
    ],
    ids=["no table set", "another table"],
)
def test_an_enrollment_table_the_function_does_not_read_as_the_stack_made_it_is_a_failure(
    tmp_path: Path,
    products: Products,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
    subject: str,
    detail: str,
) -> None:
    products.deploy(products.sensor, products.gateway, **change)

    code, report = _doctor(tmp_path, products.outputs, capsys)

    assert code == 1
    failing = _failing(report)
    assert set(failing) == {subject}
    assert failing[subject]["detail"].startswith(detail)


def test_an_enrollment_table_that_cannot_be_read_is_a_failure(
    tmp_path: Path, products: Products, capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("dynamodb", region_name=REGION).delete_table(TableName=products.table)

    code, report = _doctor(tmp_path, products.outputs, capsys)

    assert code == 1
    failing = _failing(report)["enrollment table jitr-enrollment"]
    assert failing["detail"].startswith("not readable: jitr-enrollment: ResourceNotFoundException")
    assert failing["detail"].endswith("devices of products sensor are retried (RETRY ENROLLMENT_UNAVAILABLE)")


def test_a_product_with_no_device_enrolled_is_a_warning_saying_to_import(
    tmp_path: Path, products: Products, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a second product that requires enrollment, whose manifests were never imported
    meter = Product(
        name="meter",
        cas=(fleet.ca_id,),
        select={"OU": "meters"},
        template="t-sensor",
        enrollment=EnrollmentSettings(by="commonName"),
    )
    products.deploy(products.sensor, products.gateway, meter)
    products.outputs["ProductTemplates"] = json.dumps(
        {"sensor": "t-sensor", "gateway": "t-gateway", "meter": "t-sensor"}
    )

    code, report = _doctor(tmp_path, products.outputs, capsys)

    assert code == 0, report
    meter_finding = _findings(report)["enrollment of product meter"]
    assert meter_finding["level"] == "WARN"
    assert "every device of meter is held NOT_ENROLLED" in meter_finding["detail"]
    assert meter_finding["action"] == "import its manifests: jitr enroll import MANIFEST --product meter"


def test_a_products_hook_function_that_does_not_exist_is_a_failure_naming_the_product(
    tmp_path: Path, products: Products, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = HookSettings(function="no-such-hook", parameters=("Site",))
    products.deploy(products.sensor, products.gateway.model_copy(update={"hook": hook}))

    code, report = _doctor(tmp_path, products.outputs, capsys)

    assert code == 1
    (failing,) = _failing(report).values()
    assert failing["subject"] == "hook of product gateway"
    assert failing["detail"] == (
        "its function no-such-hook does not exist: every device of gateway is retried (RETRY HOOK_FAILED)"
    )
    assert failing["action"] == "deploy the function, or fix the product's hook.function"
