"""Tearing down and upgrading, at the template level: what `cdk destroy` deletes and what it keeps, and what an
upgrade (a changed template, a second CA, a retired CA) replaces and what it leaves alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jitr_config.model import ConfigError
from jitr_tools import pki
from tests.infra.support import Synthesized, synthesize
from tests.support import REPO


def _by_type(synthesized: Synthesized, resource_type: str) -> dict[str, dict[str, Any]]:
    return synthesized.resources(resource_type)


def test_deleting_the_stack_keeps_only_the_device_policy(jitr_stack: Synthesized) -> None:
    resources = jitr_stack.json["Resources"]
    retained = {k for k, v in resources.items() if v.get("DeletionPolicy") == "Retain"}
    (policy_id,) = _by_type(jitr_stack, "AWS::IoT::Policy")
    # AWS IoT refuses to delete a policy attached to certificates (DELETE_FAILED), and devices need it to connect
    assert retained == {policy_id}
    assert resources[policy_id]["UpdateReplacePolicy"] == "Retain"
    assert jitr_stack.json["Outputs"]["DevicePolicyName"]["Value"] == {"Ref": policy_id}
    # everything else goes: the table's records and the logs expire anyway, the queues hold only undecided events,
    # the alarm topic's key serves only the topic
    for kind in ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::Logs::LogGroup", "AWS::KMS::Key"):
        for resource in _by_type(jitr_stack, kind).values():
            assert resource.get("DeletionPolicy", "Delete") == "Delete", kind


def test_a_changed_template_updates_in_place_and_leaves_the_device_policy_alone(
    tmp_path: Path, issuing_ca: pki.Issued
) -> None:
    template = json.loads((REPO / "templates/jitr-device.json").read_text())
    before = synthesize({"caCertificates": [issuing_ca.pem]}, tmp_path / "before")
    thing = next(r for r in template["Resources"].values() if r["Type"] == "AWS::IoT::Thing")
    thing["Properties"].setdefault("AttributePayload", {})["fleet"] = "b"
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(template))
    after = synthesize({"caCertificates": [issuing_ca.pem], "template": str(changed)}, tmp_path / "after")
    (template_before,) = _by_type(before, "AWS::IoT::ProvisioningTemplate").items()
    (template_after,) = _by_type(after, "AWS::IoT::ProvisioningTemplate").items()
    assert template_before[0] == template_after[0]  # same logical id: updated, not replaced
    assert template_before[1]["Properties"]["TemplateBody"] != template_after[1]["Properties"]["TemplateBody"]
    assert _by_type(before, "AWS::IoT::Policy") == _by_type(after, "AWS::IoT::Policy")


def test_a_second_ca_appended_leaves_the_first_registration_untouched(
    tmp_path: Path, issuing_ca: pki.Issued, second_ca: pki.Issued
) -> None:
    one = synthesize({"caCertificates": [issuing_ca.pem]}, tmp_path / "one")
    two = synthesize({"caCertificates": [issuing_ca.pem, second_ca.pem]}, tmp_path / "two")
    before, after = _by_type(one, "AWS::IoT::CACertificate"), _by_type(two, "AWS::IoT::CACertificate")
    assert len(after) == 2
    for logical_id, resource in before.items():
        assert after[logical_id] == resource  # same id, same properties: not replaced, not re-registered
    assert len(_by_type(two, "AWS::IoT::TopicRule")) == 2  # one rule per CA


def test_a_retired_ca_stays_registered_inactive_with_auto_registration_off(
    tmp_path: Path, issuing_ca: pki.Issued, second_ca: pki.Issued
) -> None:
    active = synthesize({"caCertificates": [issuing_ca.pem, second_ca.pem]}, tmp_path / "active")
    retired = synthesize(
        {"caCertificates": [{"pem": issuing_ca.pem, "retired": True}, second_ca.pem]}, tmp_path / "retired"
    )
    before, after = _by_type(active, "AWS::IoT::CACertificate"), _by_type(retired, "AWS::IoT::CACertificate")
    assert before.keys() == after.keys()  # the same registrations, updated in place
    by_pem = {r["Properties"]["CACertificatePem"]: r["Properties"] for r in after.values()}
    old, new = by_pem[issuing_ca.pem], by_pem[second_ca.pem]
    assert (old["Status"], old["AutoRegistrationStatus"]) == ("INACTIVE", "DISABLE")
    assert (new["Status"], new["AutoRegistrationStatus"]) == ("ACTIVE", "ENABLE")


def test_an_expired_ca_can_be_kept_retired_but_not_active(tmp_path: Path, root_ca: pki.Issued) -> None:
    expired = pki.make_ca("expired issuing CA", issuer=root_ca, days=0)  # its validity ended yesterday
    with pytest.raises(ConfigError, match="expired"):
        synthesize({"caCertificates": [expired.pem]}, tmp_path / "active")
    synthesize({"caCertificates": [{"pem": expired.pem, "retired": True}]}, tmp_path / "retired")


def test_retired_must_be_a_boolean(tmp_path: Path, issuing_ca: pki.Issued) -> None:
    with pytest.raises(ConfigError, match="retired must be true or false"):
        synthesize({"caCertificates": [{"pem": issuing_ca.pem, "retired": "yes"}]}, tmp_path / "x")
