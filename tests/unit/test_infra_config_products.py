"""Products in the stack's configuration: each with its CAs, selector, template and rules, checked at synth, together
(no CA claimed twice, no overlapping or unreachable selector) and one by one (as the stack's settings were), each
refusal naming the setting."""

from __future__ import annotations

from typing import Any

import pytest

from jitr.certificates import certificate_id
from jitr.products import Product
from jitr_config.model import IMPLICIT, ConfigError, JitrConfig, load_config
from jitr_tools import pki
from tests.support import REPO

TEMPLATE = str(REPO / "templates/jitr-device.json")


@pytest.fixture(scope="module")
def shared_ca(root_ca: pki.Issued) -> pki.Issued:
    return pki.make_ca("test shared CA", issuer=root_ca)


def ca_id(ca: pki.Issued) -> str:
    return certificate_id(ca.certificate)


def configure(cas: list[pki.Issued], products: dict[str, Any] | None, **settings: Any) -> JitrConfig:
    raw: dict[str, Any] = {"caCertificates": [ca.pem for ca in cas], "template": TEMPLATE, **settings}
    if products is not None:
        raw["products"] = products
    return load_config(raw, REPO)


def three_products(issuing_ca: pki.Issued, shared_ca: pki.Issued) -> dict[str, Any]:
    return {
        "sensor": {"caCertificates": [issuing_ca.pem], "cnPattern": "^sensor-[0-9]+$", "rejectionAction": "INACTIVE"},
        "gateway": {"caCertificates": [ca_id(shared_ca)], "select": {"OU": "gateway"}},
        "meter": {"caCertificates": [shared_ca.pem], "select": {"OU": "meter-v[0-9]+"}, "existingThing": "replace"},
    }


def test_todays_configuration_is_one_implicit_product_and_the_handlers_settings_do_not_change(
    issuing_ca: pki.Issued,
) -> None:
    config = configure([issuing_ca], None, cnPattern="^s$")
    (product,) = config.products
    assert product.implicit
    assert product.name == IMPLICIT
    assert product.ca_certificate_ids == (ca_id(issuing_ca),)
    settings = config.handler_settings("jitr-device", "decisions")
    assert settings.products == ()
    assert "JITR_PRODUCTS" not in settings.to_environment()
    assert settings.cn_pattern == "^s$"


def test_products_split_cas_and_a_shared_ca_and_inherit_the_top_level_settings(
    issuing_ca: pki.Issued, shared_ca: pki.Issued
) -> None:
    config = configure([issuing_ca, shared_ca], three_products(issuing_ca, shared_ca), maxValidityDays=90)
    sensor, gateway, _meter = config.products
    assert (sensor.ca_certificate_ids, gateway.ca_certificate_ids) == ((ca_id(issuing_ca),), (ca_id(shared_ca),))
    assert sensor.rejection_action == "INACTIVE"
    assert gateway.rejection_action == "REVOKED"
    assert {p.max_validity_days for p in config.products} == {90}  # inherited
    settings = config.handler_settings({"sensor": "t-s", "gateway": "t-g", "meter": "t-m"}, "decisions")
    assert [p.template for p in settings.products] == ["t-s", "t-g", "t-m"]
    assert settings.products[2] == Product(
        name="meter",
        cas=(ca_id(shared_ca),),
        select={"OU": "meter-v[0-9]+"},
        template="t-m",
        max_validity_days=90,
        existing_thing="replace",
    )


@pytest.mark.parametrize(
    ("products", "message"),
    [
        (
            {"gateway": {"select": {"OU": "gateway|edge"}}, "meter": {"select": {"OU": "edge|meter"}}},
            "products.gateway.select and products.meter.select overlap",
        ),
        (
            {"gateway": {"select": {"OU": "gateway"}}, "meter": {"select": {"O": "acme"}}},  # OU=gateway, O=acme
            "overlap",
        ),
        ({"gateway": {}, "meter": {}}, "is claimed by products gateway and meter"),
        ({"gateway": {"select": {"OU": "gateway"}}, "meter": {}}, "is claimed by products gateway and meter"),
        ({"gateway": {"select": {"OU": "a[^\\s\\S]b"}}, "meter": {"select": {"OU": "m"}}}, "matches no value"),
        ({"gateway": {"select": {"OU": "(?<=x)g"}}, "meter": {"select": {"OU": "m"}}}, "cannot be checked"),
        ({"gateway": {"select": {"Email": "x"}}, "meter": {"select": {"OU": "m"}}}, "select reads 'Email'"),
        (
            {"gateway": {"select": {"CN": "gw-[0-9]+"}, "cnPattern": "^sensor-.*$"}, "meter": {"select": {"CN": "m"}}},
            "products.gateway.select.CN 'gw-[0-9]+' and its cnPattern",
        ),
    ],
)
def test_selectors_that_overlap_or_reach_nothing_are_refused(
    shared_ca: pki.Issued, products: dict[str, Any], message: str
) -> None:
    for product in products.values():
        product["caCertificates"] = [shared_ca.pem]
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[").replace("+", r"\+")):
        configure([shared_ca], products)


def test_selectors_apart_on_one_attribute_are_disjoint_whatever_else_they_read(shared_ca: pki.Issued) -> None:
    products = {
        "gateway": {"caCertificates": [shared_ca.pem], "select": {"OU": "gateway", "O": ".*"}},
        "meter": {"caCertificates": [shared_ca.pem], "select": {"OU": "meter", "C": "DE"}},
    }
    assert [p.name for p in configure([shared_ca], products).products] == ["gateway", "meter"]


@pytest.mark.parametrize(
    ("products", "message"),
    [
        ({"sensor": {"caCertificates": ["@0"]}}, r"caCertificates\[1\] \(.*\) is served by no product"),
        ({"sensor": {"caCertificates": ["@0", "@0"]}, "x": {"caCertificates": ["@1"]}}, "names the same CA twice"),
        ({"sensor": {"caCertificates": ["ab" * 32]}}, r"products.sensor.caCertificates\[0\] is not one of"),
        ({"sensor": {}}, "products.sensor.caCertificates must list the product's CAs"),
        ({"sensor": {"caCertificates": ["@0", "@1"], "colour": "red"}}, "products.sensor has unknown key"),
        ({"bad name": {"caCertificates": ["@0", "@1"]}}, "a product name is"),
        ({"sensor": {"caCertificates": ["@0", "@1"], "cnPattern": "("}}, "products.sensor: cnPattern is not"),
        ({"sensor": {"caCertificates": ["@0", "@1"], "template": "none.json"}}, "products.sensor: template"),
        ({}, "products must be an object"),
        (
            {
                "a": {"caCertificates": ["@0"], "templateName": "t"},
                "b": {"caCertificates": ["@1"], "templateName": "t"},
            },
            "templateName 't' is given to two products",
        ),
    ],
)
def test_a_product_that_cannot_be_deployed_is_refused_naming_it(
    issuing_ca: pki.Issued, shared_ca: pki.Issued, products: dict[str, Any], message: str
) -> None:
    cas = [issuing_ca, shared_ca]
    for product in products.values():
        product["caCertificates"] = [
            cas[int(entry[1:])].pem if entry.startswith("@") else entry for entry in product.get("caCertificates", [])
        ] or product.pop("caCertificates", None)
        if product.get("caCertificates") is None:
            product.pop("caCertificates", None)
    with pytest.raises(ConfigError, match=message):
        configure(cas, products)


def test_a_retired_ca_may_be_served_by_no_product(issuing_ca: pki.Issued, shared_ca: pki.Issued) -> None:
    config = load_config(
        {
            "caCertificates": [issuing_ca.pem, {"pem": shared_ca.pem, "retired": True}],
            "template": TEMPLATE,
            "products": {"sensor": {"caCertificates": [issuing_ca.pem]}},
        },
        REPO,
    )
    assert [p.name for p in config.products] == ["sensor"]


def test_products_need_jitr_mode(issuing_ca: pki.Issued) -> None:
    with pytest.raises(ConfigError, match="products need provisioningMode jitr"):
        configure([issuing_ca], {"sensor": {"caCertificates": [issuing_ca.pem]}}, provisioningMode="jitp")


@pytest.mark.parametrize(
    ("product", "message"),
    [
        ({"enrollment": {"by": "imei"}}, "enrollment must be"),
        ({"enrollment": "serialNumber"}, "enrollment must be"),
        ({"hook": {"function": "arn:aws:lambda:*"}}, "hook.function"),
        ({"hook": {"function": "f", "timeoutSeconds": 6}}, "hook.timeoutSeconds"),
        ({"hook": {"function": "f", "parameters": ["Site"]}}, "'Site', which template .* does not declare"),
        ({"hook": {"function": "f", "parameters": ["DevicePolicyName"]}}, "uses in a policy"),
        ({"hook": {"function": "f", "parameters": ["AWS::IoT::Certificate::CommonName"]}}, "cannot be set by a hook"),
    ],
)
def test_enrollment_and_hooks_that_cannot_work_are_refused_naming_the_setting(
    issuing_ca: pki.Issued, product: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=f"products.sensor: .*{message}"):
        configure([issuing_ca], {"sensor": {"caCertificates": [issuing_ca.pem], **product}})


def test_enrollment_and_hooks_are_a_products_not_the_stacks(issuing_ca: pki.Issued) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting.*'enrollment'"):
        configure([issuing_ca], None, enrollment={"by": "serialNumber"})
