"""What we deploy is what we test: the Lambda asset, built by the stack's own bundling code for this machine's platform,
runs the handler in a fresh process that sees only the asset and the standard library, against the embedded AWS IoT
over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from jitr.certificates import certificate_id
from jitr_cdk import bundling
from jitr_tools import embedded, pki
from jitr_tools.embedded import EmbeddedIoT, serve
from jitr_tools.operating.invoke import invoke, stack_environment
from jitr_tools.rehearsing.rehearsal import prepare_account
from jitr_tools.rehearsing.wiring import sqs_record

REGION = "eu-central-1"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def asset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundling.bundle(tmp_path_factory.mktemp("asset"), bundling.Target.this_machine())


@dataclass
class Endpoint:
    url: str
    iot: EmbeddedIoT
    client: Any
    ca: pki.Issued
    events: list[dict[str, Any]]

    def first_connect(self, device: pki.Issued) -> dict[str, Any]:
        self.iot.connect(device.pem)
        return self.events[-1]

    def status(self, device: pki.Issued) -> str:
        description = self.client.describe_certificate(certificateId=certificate_id(device.certificate))
        return str(description["certificateDescription"]["status"])


@pytest.fixture
def endpoint(aws_env: None, issuing_ca: pki.Issued) -> Iterator[Endpoint]:
    with embedded.mock(), serve() as url:  # the mock: a fresh account per test, shared with the server's backends
        iot = EmbeddedIoT(region=REGION)
        client = boto3.client("iot", region_name=REGION, endpoint_url=url)
        prepare_account(client, issuing_ca, iot.account_id)
        events: list[dict[str, Any]] = []
        iot.subscribe("$aws/events/certificates/registered/+", lambda _t, e: events.append(e))
        yield Endpoint(url, iot, client, issuing_ca, events)


def run(asset: Path, endpoint: Endpoint, event: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    result, logs = invoke(path, stack_environment(endpoint_url=endpoint.url, region=REGION), asset=asset)
    assert "response" in result, f"{result}\n{logs}"
    assert "BEGIN CERTIFICATE" not in logs  # never log PEMs
    return dict(result["response"])


def test_the_asset_holds_only_what_runs_in_aws(asset: Path) -> None:
    top = {path.name for path in asset.iterdir()}
    assert {"jitr", "jitr_handlers", "aws_lambda_powertools", "boto3", "cryptography", "pydantic"} <= top
    assert not top & {"jitr_tools", "jitr_cdk", "jitr_config", "moto", "aws_cdk", "pytest", "hypothesis", "tests"}


def test_the_built_asset_provisions_a_device_over_http(asset: Path, endpoint: Endpoint, tmp_path: Path) -> None:
    device = pki.make_device(endpoint.ca, "artifact-1")
    event = endpoint.first_connect(device)

    response = run(asset, endpoint, event, tmp_path)

    assert response["outcome"] == "PROVISIONED"
    assert response["thingName"] == "artifact-1"
    assert endpoint.status(device) == "ACTIVE"
    assert endpoint.iot.connect(device.pem).outcome == "CONNECTED"


def test_the_built_asset_handles_an_sqs_batch_with_a_refusal(asset: Path, endpoint: Endpoint, tmp_path: Path) -> None:
    good = pki.make_device(endpoint.ca, "artifact-2")
    weak = pki.make_device(endpoint.ca, "artifact-3", key="rsa1024")
    records = []
    for index, device in enumerate((good, weak)):
        event = endpoint.first_connect(device)
        records.append({**_record(json.dumps(event)), "messageId": f"m{index}"})
    records.append({**_record('{"not": "an event"}'), "messageId": "malformed"})

    response = run(asset, endpoint, {"Records": records}, tmp_path)

    assert response == {"batchItemFailures": [{"itemIdentifier": "malformed"}]}  # kept for the dead-letter queue
    assert endpoint.status(good) == "ACTIVE"
    assert endpoint.status(weak) == "REVOKED"


def _record(body: str) -> dict[str, Any]:
    from jitr_tools.rehearsing.wiring import Message

    return sqs_record(Message("id", body, 0.0, receive_count=1, receipt="r"), "arn:aws:sqs:eu-central-1:1:q")
