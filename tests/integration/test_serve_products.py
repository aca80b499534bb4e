"""`jitr serve` with a products configuration: each product's certificate decided with its own template and rules,
enrollment held until `jitr enroll import` against the served account, a hook that is a Python file's Lambda handler
(`--hook FUNCTION=FILE.py:HANDLER`); the decision and EVENT lines and the summary name the product."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from jitr.certificates import certificate_id
from jitr.provisioning import Decision
from jitr_tools.cli import main
from jitr_tools.endpoint.serve import ServeOptions, Service
from jitr_tools.rehearsing import local_hooks
from jitr_tools.rehearsing.simulate_products import HOOK_FUNCTION, ProductFleet, make_product_fleet

DECIDED_S = 20.0
HOOK = '''
def handler(event, context):
    """An allow-list of gateways, as a team would deploy it to Lambda."""
    name = event["subject"]["attributes"]["CommonName"]
    if name == "gw-00002":
        return {"decision": "deny", "reason": "not on the allow-list"}
    return {"decision": "allow", "parameters": {"Site": context.function_name}}
'''


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory) -> ProductFleet:
    return make_product_fleet(9, tmp_path_factory.mktemp("products"))


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return []


@pytest.fixture(scope="module")
def service(products: ProductFleet, lines: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("serve-products")
    (folder / "allow_list.py").write_text(HOOK)
    name, where = local_hooks.parse(f"{HOOK_FUNCTION}={folder / 'allow_list.py'}:handler")
    options = ServeOptions(folder=folder, mqtt_port=0, api_port=0, hooks={name: local_hooks.load(where)})
    with Service(products.config, options, say=lines.append) as running:
        yield running


def device(products: ProductFleet, name: str) -> Any:
    return next(d.issued for d in products.fleet if d.name == name)


def eventually(found: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + DECIDED_S
    while not (value := found()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def first_connect(service: Service, products: ProductFleet, name: str) -> str:
    issued = device(products, name)
    service.iot.connect(issued.pem)
    return certificate_id(issued.certificate)


def decided(service: Service, products: ProductFleet, name: str, *, held: bool = True) -> Decision:
    """The decision on the device's connect: provisioned or rejected (or, with `held`, held)."""
    cert_id = first_connect(service, products, name)
    decision = eventually(lambda: service.decisions.get(cert_id) or (held and service.held.get(cert_id)))
    assert decision is not None, f"{name} was not decided"
    return decision  # type: ignore[no-any-return]


def attributes(service: Service, thing: str) -> dict[str, str]:
    iot = boto3.client("iot", region_name=service.iot.region)
    return dict(iot.describe_thing(thingName=thing)["attributes"])


def test_each_product_is_decided_with_its_own_template_and_rules(
    service: Service, products: ProductFleet, lines: list[str]
) -> None:
    gateway = decided(service, products, "gw-00001")
    meter = decided(service, products, "m-00001")
    wrong_line = decided(service, products, "sensor-m00003")  # a sensor's name under the meter's OU

    assert (gateway.product, gateway.outcome) == ("gateway", "PROVISIONED")
    assert attributes(service, "gw-00001") == {"provisionedBy": "jitr", "product": "gateway", "site": HOOK_FUNCTION}
    assert (meter.product, meter.outcome) == ("meter", "PROVISIONED")
    assert attributes(service, "m-00001")["product"] == "meter"
    assert (wrong_line.product, wrong_line.outcome, wrong_line.reason) == ("meter", "REJECTED", "CN_MISMATCH")
    cert_id = certificate_id(device(products, "gw-00001").certificate)
    assert any(line.startswith(f"HANDLER certificate {cert_id[:12]} (gateway): PROVISIONED") for line in lines)
    event = eventually(lambda: next((x for x in lines if x.startswith("EVENT") and cert_id[:12] in x), None))
    assert "thing gw-00001 product gateway" in event


def test_the_hook_file_denies_as_the_products_hook(service: Service, products: ProductFleet) -> None:
    denied = decided(service, products, "gw-00002")
    assert (denied.product, denied.outcome, denied.reason) == ("gateway", "REJECTED", "DENIED_BY_HOOK")
    assert "not on the allow-list" in (denied.message or "")


def test_a_sensor_is_held_until_its_manifest_is_imported_into_the_served_account(
    service: Service, products: ProductFleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    held = decided(service, products, "sensor-00001")
    assert (held.product, held.outcome, held.reason) == ("sensor", "HELD", "NOT_ENROLLED")

    serial = device(products, "sensor-00001").certificate.serial_number
    (tmp_path / "batch-1.csv").write_text(f"serialNumber\n{serial:x}\n")
    table = ["--product", "sensor", "--table", "jitr-enrollment", "--endpoint-url", service.api_url]
    assert main(["enroll", "import", str(tmp_path / "batch-1.csv"), *table]) == 0
    assert "imported 1" in capsys.readouterr().out

    provisioned = decided(service, products, "sensor-00001", held=False)  # its next connect
    assert (provisioned.product, provisioned.outcome) == ("sensor", "PROVISIONED")
    assert attributes(service, "sensor-00001")["product"] == "sensor"


def test_a_product_whose_hook_has_no_local_function_is_refused_at_start(
    products: ProductFleet, tmp_path: Path, service: Service
) -> None:
    # (after the module's service: one jitr serve per process)
    with pytest.raises(local_hooks.HookError, match=f"product gateway's hook function {HOOK_FUNCTION}"):
        local_hooks.install(service.iot.functions, products.config.products, {})


@pytest.mark.parametrize(
    ("hook", "said"),
    [
        ("no-equals", "write FUNCTION=FILE.py:HANDLER"),
        ("f=missing.py:handler", "missing.py is not a file"),
        ("f=json:no_such_handler", "json has no function 'no_such_handler'"),
    ],
)
def test_a_bad_hook_option_is_one_line(
    hook: str, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "--hook", hook, "--port", "0", "--api-port", "0"]) == 2
    err = capsys.readouterr().err
    assert said in err
    assert "Traceback" not in err


def test_the_banner_lists_each_product_with_its_template_enrollment_and_hook(service: Service) -> None:
    banner = service.banner()
    assert "sensor                     template jitr-sensor, enrollment by serialNumber" in banner
    assert f"gateway                    template jitr-gateway, hook {HOOK_FUNCTION} (a local function)" in banner
    assert (
        f"jitr enroll import MANIFEST --product PRODUCT --table jitr-enrollment --endpoint-url {service.api_url}"
        in banner
    )
