"""jitr's certificate facts in the stack's configuration: `certificateExtensions` (name -> OID, one set for the stack
until products carry their own), the parameters a template may declare, and no fact in a policy, all checked at
synth with a sentence naming the setting."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from jitr.settings import Settings
from jitr_config.model import ConfigError, JitrConfig, load_config
from jitr_tools import pki
from tests.support import REPO

SAN_DNS = "Jitr::Certificate::SubjectAlternativeName::DNS"
BATCH = "Jitr::Certificate::Extension::Batch"
BATCH_OID = "1.3.6.1.4.1.55555.1.1"


def template_file(tmp_path: Path, thing_name: Any, attributes: dict[str, Any], *facts: str) -> str:
    """The project's template, naming its thing `thing_name` and with `attributes`, declaring `facts`."""
    document = json.loads((REPO / "templates/jitr-device.json").read_text())
    document["Parameters"] |= {name: {"Type": "String"} for name in facts}
    document["Resources"]["thing"]["Properties"] |= {"ThingName": thing_name, "AttributePayload": attributes}
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(document))
    return str(path)


def configure(issuing_ca: pki.Issued, **settings: Any) -> JitrConfig:
    settings.setdefault("template", str(REPO / "templates/jitr-device.json"))
    return load_config({"caCertificates": [issuing_ca.pem], **settings}, REPO)


def test_a_template_reading_a_san_and_a_declared_extension_is_carried_to_the_handler(
    tmp_path: Path, issuing_ca: pki.Issued
) -> None:
    first_label = {"Fn::Select": [0, {"Fn::Split": [".", {"Ref": SAN_DNS}]}]}
    template = template_file(tmp_path, first_label, {"batch": {"Ref": BATCH}}, SAN_DNS, BATCH)
    config = configure(issuing_ca, template=template, certificateExtensions={"Batch": BATCH_OID})
    assert config.certificate_extensions == {"Batch": BATCH_OID}
    settings = config.handler_settings("jitr-device", "decisions")
    assert settings.certificate_extensions == {"Batch": BATCH_OID}
    assert Settings.from_environment(settings.to_environment()).certificate_extensions == {"Batch": BATCH_OID}


def test_a_template_reading_an_extension_the_configuration_does_not_declare_fails_the_synth(
    tmp_path: Path, issuing_ca: pki.Issued
) -> None:
    template = template_file(tmp_path, {"Ref": "AWS::IoT::Certificate::CommonName"}, {"batch": {"Ref": BATCH}}, BATCH)
    with pytest.raises(ConfigError, match=rf"reads {BATCH}, which certificateExtensions does not declare"):
        configure(issuing_ca, template=template)
    with pytest.raises(ConfigError, match=r"certificateExtensions does not declare"):
        configure(issuing_ca, template=template, certificateExtensions={"Other": BATCH_OID})


def test_a_san_in_a_policy_fails_the_synth(tmp_path: Path, issuing_ca: pki.Issued) -> None:
    document = json.loads((REPO / "templates/jitr-device.json").read_text())
    document["Parameters"][SAN_DNS] = {"Type": "String"}
    document["Resources"]["policy"]["Properties"] = {
        "PolicyDocument": {
            "Fn::Sub": '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect",'
            '"Resource":"client/${' + SAN_DNS + '}"}]}'
        }
    }
    path = tmp_path / "leaky.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="JITR_CERTIFICATE_FIELD_IN_POLICY") as caught:
        configure(issuing_ca, template=str(path))
    assert f"takes {SAN_DNS} from the device certificate" in str(caught.value)


def test_a_jitr_fact_no_certificate_gives_fails_the_synth(tmp_path: Path, issuing_ca: pki.Issued) -> None:
    typo = "Jitr::Certificate::SubjectAltName::DNS"
    template = template_file(tmp_path, {"Ref": typo}, {}, typo)
    with pytest.raises(ConfigError, match="JITR_UNKNOWN_CERTIFICATE_FIELD"):
        configure(issuing_ca, template=template)


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (["1.2.3"], "certificateExtensions must be an object of name -> dotted OID"),
        ({"Batch": 7}, "certificateExtensions must be an object of name -> dotted OID"),
        ({"has space": BATCH_OID}, "extension name 'has space' must match"),
        ({"Batch": "1.3.06.1"}, "'1.3.06.1' is not a dotted object identifier"),
        ({"Batch": "batch-oid"}, "'batch-oid' is not a dotted object identifier"),
        ({"Batch": BATCH_OID, "Lot": BATCH_OID}, "names the same OID twice"),
    ],
)
def test_a_bad_extension_declaration_is_named(issuing_ca: pki.Issued, value: Any, said: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(said)):
        configure(issuing_ca, certificateExtensions=value)


def test_extra_parameters_may_not_set_a_jitr_fact(issuing_ca: pki.Issued) -> None:
    with pytest.raises(ConfigError, match=rf"extraParameters sets '{SAN_DNS}', which only the device certificate"):
        configure(issuing_ca, extraParameters={SAN_DNS: "forged"})


def test_in_jitp_mode_a_jitr_fact_needs_a_default_and_extensions_are_a_note(
    tmp_path: Path, issuing_ca: pki.Issued
) -> None:
    template = template_file(tmp_path, {"Ref": SAN_DNS}, {}, SAN_DNS)
    with pytest.raises(ConfigError, match=rf"in jitp mode AWS passes only AWS::IoT::Certificate::\* .*{SAN_DNS}"):
        configure(issuing_ca, template=template, provisioningMode="jitp")
    config = configure(issuing_ca, provisioningMode="jitp", certificateExtensions={"Batch": BATCH_OID})
    assert any("certificateExtensions has no effect in jitp mode" in note for note in config.notes)


def test_a_deployment_value_mixed_with_a_fact_is_checked_at_synth(tmp_path: Path, issuing_ca: pki.Issued) -> None:
    # the fact renders as a neutral sound value, so a prefix that is no thing name is the deployment's mistake
    name = {"Fn::Join": ["", [{"Ref": "Prefix"}, {"Ref": SAN_DNS}]]}
    document = json.loads(Path(template_file(tmp_path, name, {}, SAN_DNS)).read_text())
    document["Parameters"]["Prefix"] = {"Type": "String"}
    path = tmp_path / "prefixed.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match="does not render with the deployment's parameters"):
        configure(issuing_ca, template=str(path), extraParameters={"Prefix": "plant 7/"})
    configure(issuing_ca, template=str(path), extraParameters={"Prefix": "plant7-"})
