"""A certificate's product: from its CA, and from a selector on its subject where products share the CA."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from jitr.products import IMPLICIT, Product, select
from jitr.settings import Settings

SHARED, OWN = "ab" * 32, "cd" * 32


def subject(**attributes: str | list[str]) -> x509.Name:
    oids = {"CN": NameOID.COMMON_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "O": NameOID.ORGANIZATION_NAME}
    parts = []
    for name, values in attributes.items():
        for value in [values] if isinstance(values, str) else values:
            parts.append(x509.NameAttribute(oids[name], value))
    return x509.Name(parts)


SENSOR = Product(name="sensor", cas=(OWN,), template="t-sensor")
GATEWAY = Product(name="gateway", cas=(SHARED,), select={"OU": "gateway"}, template="t-gateway")
METER = Product(name="meter", cas=(SHARED,), select={"OU": "meter(-v[0-9]+)?"}, template="t-meter")
LINES = (SENSOR, GATEWAY, METER)


def test_a_ca_of_one_product_without_selector_needs_no_subject() -> None:
    assert select(LINES, OWN, None).product == SENSOR


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (subject(CN="g-1", OU="gateway"), GATEWAY),
        (subject(CN="m-1", OU="meter-v2"), METER),
        (subject(CN="m-1", OU="meter"), METER),
        (subject(CN="m-1", OU="meter-v"), None),  # matches in full or not at all
        (subject(CN="x", OU="gateway-2"), None),
        (subject(CN="x"), None),  # no OU: no selector on OU matches
        (subject(CN="x", OU=["gateway", "meter"]), None),  # two OUs: read by no selector
    ],
)
def test_a_shared_ca_is_split_by_the_selectors(name: x509.Name, expected: Product | None) -> None:
    selection = select(LINES, SHARED, name)
    assert selection.product == expected
    if expected is None:
        assert "none of the CA's products (gateway, meter)" in selection.why
        assert not selection.ambiguous


def test_a_ca_no_product_serves_selects_none() -> None:
    selection = select(LINES, "ef" * 32, None)
    assert selection.product is None
    assert "no product serves CA" in selection.why


def test_two_matching_products_are_ambiguous_not_a_choice() -> None:
    loose = Product(name="any", cas=(SHARED,), select={"CN": ".*"}, template="t-any")
    selection = select((GATEWAY, loose), SHARED, subject(CN="g", OU="gateway"))
    assert selection.product is None
    assert selection.ambiguous


def test_settings_without_products_decide_every_ca_as_one_implicit_product() -> None:
    settings = Settings(template_name="jitr-device", cn_pattern="^s-[0-9]+$", rejection_action="INACTIVE")
    (implicit,) = settings.product_lines
    assert implicit.name == IMPLICIT
    assert implicit.serves(SHARED)
    assert implicit.serves(OWN)
    assert settings.for_product(implicit) == settings


def test_a_products_rules_replace_the_stacks_for_its_certificates() -> None:
    settings = Settings(template_name="jitr-device", products=LINES, cn_pattern="^x$")
    chosen = settings.for_product(METER)
    assert (chosen.template_name, chosen.cn_pattern) == ("t-meter", None)
    assert chosen.products == LINES


@pytest.mark.parametrize(
    ("select_", "message"),
    [({"Email": ".*"}, "select reads 'Email'"), ({"OU": "("}, "select.OU is not a regular expression")],
)
def test_a_selector_the_handler_cannot_read_is_refused(select_: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Product(name="p", template="t", select=select_)


@pytest.mark.parametrize("name", ["", "-lead", "has space", "x" * 65, "dot.ted"])
def test_a_product_name_is_a_plain_identifier(name: str) -> None:
    with pytest.raises(ValidationError):
        Product(name=name, template="t")
