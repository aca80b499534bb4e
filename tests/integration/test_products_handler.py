"""Products through the handler on the embedded IoT: two products from two CAs and a third sharing a CA by its
subject's OU, each provisioned with its own template and decided by its own rules; a certificate no product claims
is held pending, never refused, and provisioned once a product claims it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jitr.products import Product
from jitr.settings import Settings
from jitr_tools import pki
from tests.integration.support import FakeLambdaContext, Fleet, sqs_event
from tests.support import REPO


def line_template(line: str) -> str:
    """The project's template, with the product line as a thing attribute."""
    document = json.loads((REPO / "templates/jitr-device.json").read_text())
    document["Resources"]["thing"]["Properties"]["AttributePayload"] = {"line": line}
    return json.dumps(document)


@pytest.fixture
def shared(fleet: Fleet, root_ca: pki.Issued) -> Fleet:
    """A second CA, shared by the gateway and the meter products."""
    ca = pki.make_ca("test shared CA", issuer=root_ca)
    return Fleet(fleet.account, ca, fleet.account.register_ca(ca))


def products(fleet: Fleet, shared: Fleet, *, meter: bool = True) -> tuple[Product, ...]:
    for line in ("sensor", "gateway", "meter"):
        if not _stored(fleet, f"t-{line}"):
            fleet.account.client.create_provisioning_template(
                templateName=f"t-{line}",
                templateBody=line_template(line),
                provisioningRoleArn="arn:aws:iam::123456789012:role/jitr-provisioning",
            )
    lines = [
        Product(name="sensor", cas=(fleet.ca_id,), template="t-sensor", cn_pattern="sensor-[0-9]+"),
        Product(name="gateway", cas=(shared.ca_id,), select={"OU": "gateway"}, template="t-gateway"),
    ]
    if meter:
        lines.append(
            Product(
                name="meter",
                cas=(shared.ca_id,),
                select={"OU": "meter"},
                template="t-meter",
                cn_pattern="m-[0-9]+",
                rejection_action="INACTIVE",
            )
        )
    return tuple(lines)


def _stored(fleet: Fleet, name: str) -> bool:
    names = [t["templateName"] for t in fleet.account.client.list_provisioning_templates()["templates"]]
    return name in names


def serve(monkeypatch: pytest.MonkeyPatch, lines: tuple[Product, ...]) -> None:
    from jitr_handlers import registration

    environment = Settings(template_name="jitr-device", products=lines).to_environment()
    monkeypatch.setenv("JITR_PRODUCTS", environment["JITR_PRODUCTS"])
    registration.use(None)


def decide(event: dict[str, Any]) -> dict[str, Any]:
    from jitr_handlers.registration import current

    return current().handle_one(event).to_dict()


def line_of(fleet: Fleet, thing_name: str) -> str:
    return str(fleet.account.client.describe_thing(thingName=thing_name)["attributes"]["line"])


def test_each_product_is_provisioned_with_its_own_template(
    fleet: Fleet, shared: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve(monkeypatch, products(fleet, shared))
    sensor = fleet.first_connect(fleet.device("sensor-1"))
    gateway = shared.first_connect(shared.device("gw-1", unit="gateway"))
    meter = shared.first_connect(shared.device("m-1", unit="meter"))
    from jitr_handlers.registration import handler

    assert handler(sqs_event(sensor, gateway, meter), FakeLambdaContext()) == {"batchItemFailures": []}
    assert [line_of(fleet, name) for name in ("sensor-1", "gw-1", "m-1")] == ["sensor", "gateway", "meter"]
    assert {shared.status(e["certificateId"]) for e in (sensor, gateway, meter)} == {"ACTIVE"}


def test_each_product_refuses_by_its_own_rules_with_its_own_rejection_action(
    fleet: Fleet, shared: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve(monkeypatch, products(fleet, shared))
    sensor = decide(fleet.first_connect(fleet.device("m-7")))  # a meter's name, from the sensor CA
    meter = decide(shared.first_connect(shared.device("sensor-7", unit="meter")))
    gateway = decide(shared.first_connect(shared.device("sensor-8", unit="gateway")))  # no cnPattern: provisioned
    assert (sensor["product"], sensor["outcome"], sensor["reason"]) == ("sensor", "REJECTED", "CN_MISMATCH")
    assert (meter["product"], meter["outcome"], meter["reason"]) == ("meter", "REJECTED", "CN_MISMATCH")
    assert fleet.status(sensor["certificateId"]) == "REVOKED"
    assert fleet.status(meter["certificateId"]) == "INACTIVE"  # the meter's rejection action
    assert (gateway["product"], gateway["outcome"]) == ("gateway", "PROVISIONED")


def test_a_certificate_no_product_claims_is_held_and_provisioned_once_one_does(
    fleet: Fleet, shared: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stack that serves gateways but not yet meters on the shared CA
    serve(monkeypatch, products(fleet, shared, meter=False))
    device = shared.device("m-9", unit="meter")
    event = shared.first_connect(device)
    from jitr_handlers.registration import handler

    # When the meter connects, it is held: the record is done (no dead letter), the certificate left pending
    assert handler(sqs_event(event), FakeLambdaContext()) == {"batchItemFailures": []}
    held = decide(event)
    assert (held["outcome"], held["reason"]) == ("HELD", "NO_PRODUCT")
    assert "none of the CA's products (gateway)" in held["message"]
    assert "product" not in held
    assert shared.status(event["certificateId"]) == "PENDING_ACTIVATION"
    # Then once the meter product is deployed, the device's next connect provisions it
    serve(monkeypatch, products(fleet, shared))
    again = decide(shared.first_connect(device))
    assert (again["outcome"], again["product"]) == ("PROVISIONED", "meter")
    assert line_of(shared, "m-9") == "meter"


def test_decisions_are_counted_per_product_and_an_unclaimed_certificate_by_its_reason(
    fleet: Fleet, shared: Fleet, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    serve(monkeypatch, products(fleet, shared, meter=False))
    provisioned = fleet.first_connect(fleet.device("sensor-3"))
    unclaimed = shared.first_connect(shared.device("m-3", unit="meter"))
    capsys.readouterr()
    from jitr_handlers.registration import handler

    assert handler(sqs_event(provisioned, unclaimed), FakeLambdaContext()) == {"batchItemFailures": []}
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    by_product = {(doc["Product"], name) for doc in metrics if "Product" in doc for name in doc if "ByProduct" in name}
    by_reason = {(doc["Reason"], name) for doc in metrics if "Reason" in doc for name in doc if "ByReason" in name}
    assert by_product == {("sensor", "PROVISIONEDByProduct")}  # the unclaimed one has no product to count under
    assert ("NO_PRODUCT", "HELDByReason") in by_reason
