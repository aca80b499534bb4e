"""`jitr simulate --products`: one stack serving three product lines, rehearsed from a products configuration read
as the stack reads it (`jitr_config.model.load_config`, then `JitrConfig.handler_settings`):

- sensor: its own CA; requires enrollment by serial number. Its first manifest (half the sensors) is imported before
  the fleet connects; the second arrives partway, once each of its sensors has been held NOT_ENROLLED, and the import
  sends their held events to the intake again, as `jitr enroll import` does.
- gateway: the shared CA, subjects with OU=gateway; a decision hook (a local function, `gateway_hook`) denies one
  unit, holds one, and sets the others' Site.
- meter: the shared CA, OU=meter, with its own cnPattern: one meter carries a sensor's name and is refused for it.

Each product's template writes `product` as a thing attribute, which the accounting checks on every thing provisioned.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from jitr.certificates import certificate_id
from jitr.enrollment import Enrollments, ImportReport, Intake, Manifest, import_manifest, read_manifest
from jitr.outcomes import Outcome, Reason
from jitr.provisioning import RegistrationEvent
from jitr_tools import pki
from jitr_tools.rehearsing.local_hooks import install, local_settings
from jitr_tools.rehearsing.rehearsal import (
    DECISION_TABLE,
    ENROLLMENT_TABLE,
    TEMPLATE,
    create_decision_table,
    create_enrollment_table,
    deploy_products,
)

if TYPE_CHECKING:
    from jitr.settings import Settings
    from jitr_config.model import JitrConfig
    from jitr_tools.embedded import EmbeddedIoT
    from jitr_tools.rehearsing.wiring import Wiring

SENSOR, GATEWAY, METER = "sensor", "gateway", "meter"
PRODUCTS = (SENSOR, GATEWAY, METER)
HOOK_FUNCTION = "jitr-simulate-gateway-hook"
MIN_DEVICES = 9  # three of each product: the hook's gateways need a third that is allowed
DENIED, HELD = "gw-00002", "gw-00003"  # the units the hook denies and holds
# What the rehearsal expects of its odd devices (each product's rules, the hook's answers).
DENIED_BY_HOOK = pki.Defect("denied-by-hook", Reason.DENIED_BY_HOOK, lambda ca, n: pki.make_device(ca, n))
HELD_BY_HOOK = pki.Defect("held-by-hook", Reason.HELD_BY_HOOK, lambda ca, n: pki.make_device(ca, n))
WRONG_LINE = pki.Defect("wrong-line-name", Reason.CN_MISMATCH, lambda ca, n: pki.make_device(ca, n))


def gateway_hook(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    """The gateway product's decision hook, as a Lambda handler: a unit returned for repair is denied, one not yet
    through end-of-line test is held, every other one allowed with the plant it ships from."""
    name = event["subject"]["attributes"].get("CommonName")
    if name == DENIED:
        return {"decision": "deny", "reason": "unit returned for repair (RMA 4711)"}
    if name == HELD:
        return {"decision": "hold", "reason": "awaiting end-of-line test"}
    return {"decision": "allow", "parameters": {"Site": "plant-7"}}


@dataclass
class ProductFleet:
    """The configuration, the devices of each product, and the sensors' manifests."""

    config: JitrConfig
    fleet: list[pki.FleetDevice]
    product_of: dict[str, str]  # device name -> product
    first_manifest: Manifest
    late_manifest: Manifest
    late: frozenset[str]  # certificate ids of the sensors the late manifest lists


def make_product_fleet(devices: int, folder: Path) -> ProductFleet:
    """The three products' CAs, templates and configuration written to `folder` and read as the stack reads them, and
    `devices` devices split between the products."""
    from jitr_config.model import load_config

    if devices < MIN_DEVICES:
        raise ValueError(f"--products needs at least {MIN_DEVICES} devices (three of each product), not {devices}")
    sensor_ca, shared_ca = pki.make_ca("jitr simulation sensor CA"), pki.make_ca("jitr simulation shared CA")
    (folder / "sensor-ca.pem").write_text(sensor_ca.pem)
    (folder / "shared-ca.pem").write_text(shared_ca.pem)
    for product in PRODUCTS:
        (folder / f"{product}.json").write_text(json.dumps(_template(product)))
    settings = {
        "caCertificates": ["sensor-ca.pem", "shared-ca.pem"],
        "template": "sensor.json",
        "products": {
            SENSOR: {
                "caCertificates": ["sensor-ca.pem"],
                "template": "sensor.json",
                "enrollment": {"by": "serialNumber"},
            },
            GATEWAY: {
                "caCertificates": ["shared-ca.pem"],
                "select": {"OU": GATEWAY},
                "template": "gateway.json",
                "hook": {"function": HOOK_FUNCTION, "timeoutSeconds": 2, "parameters": ["Site"]},
            },
            METER: {
                "caCertificates": ["shared-ca.pem"],
                "select": {"OU": METER},
                "template": "meter.json",
                "cnPattern": "m-[0-9]+",
            },
        },
    }
    (folder / "products.json").write_text(json.dumps(settings, indent=2))
    config = load_config(settings, folder)
    sensors, gateways = devices // 3, devices // 3
    lines = (
        (SENSOR, sensor_ca, "sensor-", sensors),
        (GATEWAY, shared_ca, "gw-", gateways),
        (METER, shared_ca, "m-", devices - sensors - gateways),
    )
    fleet: list[pki.FleetDevice] = []
    product_of: dict[str, str] = {}
    for product, ca, prefix, count in lines:
        for device in _devices(product, ca, prefix, count):
            fleet.append(device)
            product_of[device.name] = product
    sensor_devices = [d for d in fleet if product_of[d.name] == SENSOR]
    first, late = sensor_devices[: sensors // 2], sensor_devices[sensors // 2 :]
    return ProductFleet(
        config=config,
        fleet=fleet,
        product_of=product_of,
        first_manifest=_manifest("sensors-batch-1.csv", first),
        late_manifest=_manifest("sensors-batch-2.csv", late),
        late=frozenset(certificate_id(d.issued.certificate) for d in late),
    )


def _template(product: str) -> dict[str, Any]:
    """The project's template, writing the product as a thing attribute (the gateway's: and the Site its hook sets)."""
    document: dict[str, Any] = json.loads(TEMPLATE.read_text())
    attributes = document["Resources"]["thing"]["Properties"]["AttributePayload"]
    attributes["product"] = product
    if product == GATEWAY:
        document["Parameters"]["Site"] = {"Type": "String", "Default": "unassigned"}
        attributes["site"] = {"Ref": "Site"}
    return document


def _devices(product: str, ca: pki.Issued, prefix: str, count: int) -> Iterable[pki.FleetDevice]:
    """`count` devices of the product named `<prefix>00001`..., with the product's OU on the shared CA; the odd ones
    marked with what the rehearsal expects of them."""
    unit = None if product == SENSOR else product
    for index in range(1, count + 1):
        name = f"{prefix}{index:05d}"
        expected = {DENIED: DENIED_BY_HOOK, HELD: HELD_BY_HOOK}.get(name) if product == GATEWAY else None
        if product == METER and index == count:
            name, expected = f"sensor-m{index:05d}", WRONG_LINE  # a sensor's name on a meter: its cnPattern refuses it
        yield pki.FleetDevice(name, pki.make_device(ca, name, unit=unit), expected)


def _manifest(name: str, devices: list[pki.FleetDevice]) -> Manifest:
    """The manufacturing manifest of these devices: their certificates' serial numbers, one batch."""
    rows = "".join(f"{d.issued.certificate.serial_number:x},{name.removesuffix('.csv')}\n" for d in devices)
    return read_manifest(name, "serialNumber,batch\n" + rows)


# -- the account: what `cdk deploy` leaves for the configuration -------------------------------------------------------


def deploy(iot: EmbeddedIoT, products: ProductFleet, *, quota: float | None, concurrency: int) -> Settings:
    """The products' CAs, device policy, templates, decision and enrollment tables and the gateway's hook in the
    embedded account; the first manifest imported. Returns the handler's settings as the stack gives them, paced as
    the rehearsal paces (`quota` None: no pacing, the naive wiring)."""
    import boto3

    config = products.config
    for ca in config.cas:
        iot.backend.register_as_deployed(ca.pem, config.certificate_mode, retired=ca.retired)
    client = boto3.client("iot", region_name=iot.region)
    names = deploy_products(client, config, iot.account_id)
    dynamodb = boto3.client("dynamodb", region_name=iot.region)
    create_decision_table(dynamodb)
    create_enrollment_table(dynamodb)
    import_manifest(Enrollments(ENROLLMENT_TABLE, dynamodb), SENSOR, products.first_manifest)
    install(iot.functions, config.products, {HOOK_FUNCTION: gateway_hook})
    settings = config.handler_settings(names, DECISION_TABLE, ENROLLMENT_TABLE)
    return local_settings(settings).model_copy(
        update={"register_thing_tps": quota or None, "max_concurrency": concurrency, "event_bus": "default"}
    )


class _IntakeQueue:
    """The intake queue, as `Intake` sends to it (SendMessage): the rehearsal's wiring."""

    def __init__(self, wiring: Wiring) -> None:
        self.wiring = wiring

    def send_message(self, **request: str) -> dict[str, Any]:
        self.wiring.send(request["MessageBody"])
        return {}


@dataclass
class LateManifest:
    """The sensors' second manifest, imported once each sensor it lists has been held NOT_ENROLLED: the import sends
    their held events to the intake again, as `jitr enroll import --function ...` does."""

    products: ProductFleet
    region: str
    account_id: str
    held: set[str] = field(default_factory=set)  # late sensors held NOT_ENROLLED so far
    report: ImportReport | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, decision: dict[str, Any]) -> None:
        """Every decision the handler makes."""
        if decision.get("reason") == Reason.NOT_ENROLLED and decision.get("certificateId") in self.products.late:
            with self.lock:
                self.held.add(str(decision["certificateId"]))

    @property
    def pending(self) -> bool:
        return self.report is None

    def arrive_when_due(self, wiring: Wiring) -> None:
        with self.lock:
            due = self.report is None and self.held >= self.products.late
        if not due:
            return
        import boto3

        dynamodb = boto3.client("dynamodb", region_name=self.region)
        intake = Intake(
            "jitr-intake",
            _IntakeQueue(wiring),
            lambda c, ca: RegistrationEvent.payload(c, ca, self.account_id),
        )
        self.report = import_manifest(
            Enrollments(ENROLLMENT_TABLE, dynamodb), SENSOR, self.products.late_manifest, intake=intake
        )


def held_then_provisioned(decisions: Iterable[dict[str, Any]]) -> set[str]:
    """Certificates held (for any reason) and later provisioned."""
    held: set[str] = set()
    provisioned: set[str] = set()
    for decision in decisions:
        certificate = str(decision.get("certificateId"))
        if decision.get("outcome") == Outcome.HELD:
            held.add(certificate)
        elif decision.get("outcome") == Outcome.PROVISIONED and certificate in held:
            provisioned.add(certificate)
    return provisioned


# -- the accounting, product by product --------------------------------------------------------------------------------

COLUMNS = ("devices", "provisioned", "rejected", "held", "held_first", "retry", "events", "decision_events")


def count_by_product(
    products: ProductFleet,
    client: Any,
    decisions: list[dict[str, Any]],
    events: Mapping[str, int],
    decision_events: list[dict[str, Any]],
    result: Any,
) -> dict[str, dict[str, int]]:
    """Each product's devices provisioned, rejected and held (read from the account), those held first and provisioned
    later, its RETRY decisions, the registration events its devices' connects published and the decision events a
    subscriber received. A thing provisioned without its product's attribute is added to `result.unexpected`."""
    statuses = {
        c["certificateId"]: c["status"]
        for page in client.get_paginator("list_certificates").paginate(pageSize=250)
        for c in page["certificates"]
    }
    held_first = held_then_provisioned(decisions)
    counts = {product: dict.fromkeys(COLUMNS, 0) for product in PRODUCTS}
    for device in products.fleet:
        product, cert_id = products.product_of[device.name], certificate_id(device.issued.certificate)
        count = counts[product]
        count["devices"] += 1
        count["events"] += events.get(cert_id, 0)
        status = statuses.get(cert_id)
        count["provisioned"] += status == "ACTIVE"
        count["rejected"] += status in ("REVOKED", "INACTIVE")
        count["held"] += status == "PENDING_ACTIVATION"
        count["held_first"] += cert_id in held_first
        if status == "ACTIVE":
            attributes = client.describe_thing(thingName=device.name).get("attributes", {})
            if attributes.get("product") != product:
                result.unexpected.append(f"{device.name}: provisioned as product {attributes.get('product')}")
    for decision in decisions:
        if decision.get("outcome") == Outcome.RETRY and decision.get("product") in counts:
            counts[str(decision["product"])]["retry"] += 1
    for event in decision_events:
        product = event.get("detail", {}).get("product")
        if product in counts:
            counts[product]["decision_events"] += 1
    return counts


def product_table(by_product: Mapping[str, Mapping[str, int]]) -> Table:
    """The summary's table by product: one row per product, one right-aligned column per count."""
    table = Table(box=None, padding=(0, 2), collapse_padding=True, pad_edge=False, header_style="bold")
    table.add_column("by product")
    for column in COLUMNS:
        table.add_column(column.replace("_", " "), justify="right")
    for product, count in by_product.items():
        table.add_row(product, *(str(count[column]) for column in COLUMNS))
    return table
