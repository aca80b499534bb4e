"""What products cost per event, on a warm execution environment with AWS answering instantly (`benchmarks.warm`):
the handler with one implicit product, against a stack of 12 products where the device's CA is shared by 4 of them
and its product is found by an OU selector; then a product that requires enrollment (one GetItem) and one with a
decision hook (one Invoke), each answered instantly by an in-memory botocore stand-in, so what is measured is jitr's
own work: reading the subject, matching the selectors, building the hook's request and reading its answer."""

from __future__ import annotations

import io
import json
from typing import Any

from benchmarks import warm
from jitr.certificates import certificate_id
from jitr.enrollment import Enrollments, EnrollmentSettings
from jitr.hook import Hooks, HookSettings
from jitr.products import Product
from jitr.provisioning import Checks
from jitr.settings import Settings
from jitr_tools import pki

LINES = 12  # products in the stack
SHARING = 4  # of them on the device's CA, told apart by OU


class InstantDynamoDB:
    """GetItem answers ENROLLED; an UpdateItem (the provisioned certificate recorded) succeeds."""

    def get_item(self, **_: Any) -> dict[str, Any]:
        return {"Item": {"status": {"S": "ENROLLED"}, "manifest": {"S": "batch-7.csv"}, "line": {"N": "2"}}}

    def update_item(self, **_: Any) -> dict[str, Any]:
        return {}


class InstantLambda:
    """Invoke answers allow, as a hook that decides instantly would."""

    def invoke(self, **_: Any) -> dict[str, Any]:
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps({"decision": "allow"}).encode())}


def _lines(shared: str, other: str) -> tuple[Product, ...]:
    return tuple(
        Product(
            name=f"line-{i:02d}",
            cas=(shared if i < SHARING else other,),
            select={"OU": f"line-{i:02d}"} if i < SHARING else {},
            template="jitr-device",
        )
        for i in range(LINES)
    )


def run() -> dict[str, Any]:
    ca, other = pki.make_ca("bench CA"), pki.make_ca("bench other CA")
    shared, elsewhere = certificate_id(ca.certificate), certificate_id(other.certificate)
    device = pki.make_device(ca, "sensor-1", unit=f"line-{SHARING - 1:02d}")  # the last product of the shared CA
    implicit = warm.run(ca=ca, device=device)
    lines = _lines(shared, elsewhere)
    selected = warm.run(Settings(template_name="jitr-device", products=lines), ca=ca, device=device)
    last = lines[SHARING - 1]
    enrolled = last.model_copy(update={"enrollment": EnrollmentSettings(by="serialNumber")})
    enrollment = warm.run(
        Settings(template_name="jitr-device", products=(enrolled,), enrollment_table="bench"),
        ca=ca,
        device=device,
        checks=Checks(enrollments=Enrollments("bench", InstantDynamoDB())),
    )
    hooked = last.model_copy(update={"hook": HookSettings(function="bench-hook")})
    hook = warm.run(
        Settings(template_name="jitr-device", products=(hooked,)),
        ca=ca,
        device=device,
        checks=Checks(hooks=Hooks(lambda _config: InstantLambda())),
    )
    base = implicit["p50_us"]
    return {
        "p50_us_implicit": base,
        "p50_us_12_products_by_selector": selected["p50_us"],
        "selection_us": round(selected["p50_us"] - base, 1),
        "p50_us_enrollment": enrollment["p50_us"],
        "enrollment_step_us": enrollment["steps_us"].get("enrollment"),
        "p50_us_hook": hook["p50_us"],
        "hook_step_us": hook["steps_us"].get("hook"),
    }


if __name__ == "__main__":
    print(run())
