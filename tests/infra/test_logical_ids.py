"""The repository's stack keeps its resources' logical ids (and types), its outputs', parameters' and rules' ids, and
its topic rules' names, so a stack deployed before the `JustInTimeRegistration` construct updates in place.

The snapshots under tests/data/logical-ids/ were written by `_snapshot` from the stack as it was before the construct
(commit 1261d40) for the configurations below; regenerate them only for a change that means to replace resources.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from jitr_tools import pki
from tests.infra.support import Synthesized, synthesize
from tests.support import DATA

SNAPSHOTS = DATA / "logical-ids"


def _snapshot(synthesized: Synthesized) -> dict[str, Any]:
    """What must not change: every logical id with its type, and the names CDK derives from construct paths."""
    template = synthesized.json
    return {
        "Resources": {k: v["Type"] for k, v in sorted(template["Resources"].items())},
        "Outputs": sorted(template.get("Outputs", {})),
        "Parameters": {k: v["Type"] for k, v in sorted(template.get("Parameters", {}).items())},
        "Rules": sorted(template.get("Rules", {})),
        "Conditions": sorted(template.get("Conditions", {})),
        "TopicRuleNames": sorted(
            r["Properties"]["RuleName"] for r in synthesized.resources("AWS::IoT::TopicRule").values()
        ),
    }


@pytest.fixture(scope="module")
def products_stack(
    tmp_path_factory: pytest.TempPathFactory, issuing_ca: pki.Issued, second_ca: pki.Issued
) -> Synthesized:
    """Products, one requiring enrollment and one with a decision hook."""
    return synthesize(
        {
            "caCertificates": [issuing_ca.pem, second_ca.pem],
            "products": {
                "sensor": {"caCertificates": [issuing_ca.pem], "enrollment": {"by": "serialNumber"}},
                "gateway": {"caCertificates": [second_ca.pem], "hook": {"function": "fleet-hook", "timeoutSeconds": 3}},
            },
        },
        tmp_path_factory.mktemp("products"),
    )


@pytest.fixture(scope="module")
def revocation_stack(
    tmp_path_factory: pytest.TempPathFactory, issuing_ca: pki.Issued, second_ca: pki.Issued, root_ca: pki.Issued
) -> Synthesized:
    """Issuer revocation: an S3 and an HTTP CRL, OCSP hosts, a trust root with its own CRL, and the sync."""
    return synthesize(
        {
            "caCertificates": [
                {
                    "pem": issuing_ca.pem,
                    "revocation": {"crl": ["s3://acme-pki-crls/ca.crl", "http://pki.example.com/a.crl"]},
                },
                {"pem": second_ca.pem, "revocation": {"certificateHosts": ["pki.example.com"]}},
            ],
            "trustRoot": {"pem": root_ca.pem, "revocation": {"crl": ["https://pki.example.com/root.crl"]}},
            "alarmEmail": "iot-ops@example.com",
            "revocationSync": {"schedule": "rate(12 hours)", "updateTps": 3},
        },
        tmp_path_factory.mktemp("revocation"),
    )


CONFIGURATIONS = ("jitr_stack", "development_stack", "jitp_stack", "products_stack", "revocation_stack")


@pytest.mark.parametrize("name", CONFIGURATIONS)
def test_the_stack_keeps_every_logical_id_it_had_before_the_construct(
    name: str, request: pytest.FixtureRequest
) -> None:
    synthesized: Synthesized = request.getfixturevalue(name)
    expected = json.loads((SNAPSHOTS / f"{name}.json").read_text())
    assert _snapshot(synthesized) == expected
