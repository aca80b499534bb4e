"""The typed properties cover exactly the configuration's keys, with synth's defaults, and mean the mapping they
were built from."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from jitr_config.model import (
    CA_CERTIFICATE_DEFAULTS,
    CA_CERTIFICATE_KEYS,
    DECISION_EVENTS_KEYS,
    DEFAULTS,
    EXISTING_RESOURCE_KINDS,
    KNOWN_KEYS,
    PRODUCT_KEYS,
    REVOCATION_SYNC_KEYS,
    TRUST_ROOT_KEYS,
)
from jitr_config.properties import (
    CaCertificate,
    DecisionEvents,
    ExistingResources,
    JitrProperties,
    Product,
    RevocationSync,
    TrustRoot,
)

KEYS_OF: list[tuple[type[BaseModel], Any]] = [
    (JitrProperties, KNOWN_KEYS),
    (Product, PRODUCT_KEYS),
    (CaCertificate, CA_CERTIFICATE_KEYS),
    (TrustRoot, TRUST_ROOT_KEYS),
    (ExistingResources, EXISTING_RESOURCE_KINDS),
    (RevocationSync, REVOCATION_SYNC_KEYS),
    (DecisionEvents, DECISION_EVENTS_KEYS),
]


def _keys(model: type[BaseModel]) -> set[str]:
    return {field.serialization_alias or name for name, field in model.model_fields.items()}


@pytest.mark.parametrize(("model", "keys"), KEYS_OF, ids=[model.__name__ for model, _ in KEYS_OF])
def test_each_model_has_one_field_per_key_synth_knows_each_described_in_one_line(
    model: type[BaseModel], keys: Any
) -> None:
    assert _keys(model) == set(keys)
    for name, field in model.model_fields.items():
        assert field.description, name
        assert "\n" not in field.description, name
        assert name == name.lower(), f"{name}: Python names are snake_case"


def test_the_defaults_are_synths() -> None:
    defaults = JitrProperties().model_dump(mode="json", by_alias=True)

    # an empty existingResources lists no names of any kind
    assert defaults == {**DEFAULTS, "existingResources": {kind: [] for kind in EXISTING_RESOURCE_KINDS}}
    entry = CaCertificate(pem="ca.pem").model_dump(mode="json", by_alias=True)
    assert entry == {"pem": "ca.pem", **CA_CERTIFICATE_DEFAULTS}


def test_properties_mean_the_keys_that_were_set_and_nothing_else() -> None:
    """Only what was set: synth tells a key set in jitp mode (a note) from one left alone, and a product from the
    top level it inherits."""
    properties = JitrProperties(
        ca_certificates=["pki/ca.pem", CaCertificate(pem="pki/old.pem", retired=True)],
        provisioning_mode="jitp",
        device_profile="strict",
        existing_resources=ExistingResources(thing_groups=["plant-7"]),
        decision_events=DecisionEvents(enabled=False),
        products={"gateway": Product(ca_certificates=["pki/ca.pem"], select={"OU": "gateway"}, template_name=None)},
    )

    assert properties.to_settings() == {
        "caCertificates": ["pki/ca.pem", {"pem": "pki/old.pem", "retired": True}],
        "provisioningMode": "jitp",
        "deviceProfile": "strict",
        "existingResources": {"thingGroups": ["plant-7"]},
        "decisionEvents": {"enabled": False},
        "products": {"gateway": {"caCertificates": ["pki/ca.pem"], "select": {"OU": "gateway"}, "templateName": None}},
    }
    assert JitrProperties().to_settings() == {}


def test_a_mapping_read_into_properties_means_itself() -> None:
    settings = {
        "caCertificates": [{"pem": "ca.pem", "revocation": {"crl": ["s3://crls/ca.crl"], "onUnknown": "accept"}}],
        "trustRoot": {"pem": "root.pem", "revocation": {"certificateHosts": ["pki.example.com"]}},
        "revocationSync": {"schedule": "rate(12 hours)", "updateTps": 3},
        "products": {"meter": {"caCertificates": ["ca.pem"], "hook": {"function": "decide"}, "maxValidityDays": 825}},
    }

    assert JitrProperties.model_validate(settings).to_settings() == settings
