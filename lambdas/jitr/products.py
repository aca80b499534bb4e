"""Products: one stack serves several product lines, each with its own CAs, template and rules. A certificate's
product is found from its CA and, where products share a CA, from a selector on the certificate's subject.

A selector maps subject attributes (by short name: OU, O, CN, ...) to regular expressions the attribute's value must
match in full. An attribute is read only when the subject holds it exactly once: a subject with two OUs matches no
selector on OU, so a certificate can never match two products whose selectors the synth found disjoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .certificates import PROFILES, DeviceProfile
from .enrollment import EnrollmentSettings
from .hook import HookSettings
from .templates.fields import EXTENSION_NAME

RejectionAction = Literal["REVOKED", "INACTIVE", "NONE"]
ExistingThing = Literal["refuse", "replace"]
ProfileName = Literal["strict", "aws-openssl"]

# The rules a product sets for its certificates, named alike on `Product` and on the stack's `Settings`.
RULES = (
    "rejection_action",
    "device_profile",
    "cn_pattern",
    "max_validity_days",
    "extra_parameters",
    "certificate_extensions",
    "existing_thing",
)
IMPLICIT = "default"  # the one product of a configuration that names none
PRODUCT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # also a CloudWatch dimension value and a construct id
# The subject attributes a selector may read, by the short names RFC 4514 and OpenSSL print.
SUBJECT_ATTRIBUTES: Mapping[str, x509.ObjectIdentifier] = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "title": NameOID.TITLE,
    "DC": NameOID.DOMAIN_COMPONENT,
}


def extension_problem(name: str, oid: str) -> str | None:
    """Why `name` -> `oid` cannot declare an extension a template reads, or None."""
    if not EXTENSION_NAME.fullmatch(name):
        return f"extension name {name!r} must match {EXTENSION_NAME.pattern}"
    try:
        written = x509.ObjectIdentifier(oid).dotted_string
    except ValueError:
        written = None
    if written != oid:
        return f"extension {name!r}: {oid!r} is not a dotted object identifier such as 1.3.6.1.4.1.55555.1"
    return None


def extensions(value: dict[str, str]) -> dict[str, str]:
    """`value` if each name -> OID can declare an extension a template reads; raises ValueError (pydantic's)."""
    for name, oid in value.items():
        if problem := extension_problem(name, oid):
            raise ValueError(problem)
    return value


def regular_expression(value: str | None) -> str | None:
    """`value` if it is a regular expression (or None); raises ValueError (pydantic's)."""
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
    return value


class Product(BaseModel):
    """One product line's rules, as the handler decides with them. Defaults are the handler's (`Settings`)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    name: str = Field(pattern=PRODUCT_NAME.pattern)
    cas: tuple[str, ...] = ()  # the certificate ids of its CAs; empty: every CA (the implicit product)
    select: dict[str, str] = Field(default_factory=dict)  # subject attribute -> regular expression, all must match
    template: str = Field(min_length=1)  # the stored template's name
    rejection_action: RejectionAction = Field("REVOKED", alias="rejectionAction")
    device_profile: ProfileName = Field("strict", alias="deviceProfile")
    cn_pattern: str | None = Field(None, alias="cnPattern")
    max_validity_days: int | None = Field(None, alias="maxValidityDays", ge=1)
    extra_parameters: dict[str, str] = Field(default_factory=dict, alias="extraParameters")
    certificate_extensions: dict[str, str] = Field(default_factory=dict, alias="certificateExtensions")
    existing_thing: ExistingThing = Field("refuse", alias="existingThing")
    enrollment: EnrollmentSettings | None = None  # devices are provisioned only once an imported manifest lists them
    hook: HookSettings | None = None  # the team's function asked to allow, deny or hold each device

    @field_validator("select")
    @classmethod
    def _selector(cls, value: dict[str, str]) -> dict[str, str]:
        for attribute, pattern in value.items():
            if attribute not in SUBJECT_ATTRIBUTES:
                raise ValueError(f"select reads {attribute!r}; known: {', '.join(SUBJECT_ATTRIBUTES)}")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"select.{attribute} is not a regular expression: {exc}") from exc
        return value

    _extensions = field_validator("certificate_extensions")(classmethod(lambda cls, v: extensions(v)))
    _cn_pattern = field_validator("cn_pattern")(classmethod(lambda cls, v: regular_expression(v)))

    @property
    def profile(self) -> DeviceProfile:
        return PROFILES[self.device_profile].with_options(self.cn_pattern, self.max_validity_days)

    def serves(self, ca_certificate_id: str) -> bool:
        return not self.cas or ca_certificate_id in self.cas

    def selects(self, subject: x509.Name) -> bool:
        """Whether every attribute the selector reads is in the subject exactly once and matches in full."""
        for attribute, pattern in self.select.items():
            values = subject.get_attributes_for_oid(SUBJECT_ATTRIBUTES[attribute])
            if len(values) != 1 or not re.fullmatch(pattern, str(values[0].value)):
                return False
        return True


@dataclass(frozen=True)
class Selection:
    """The product a certificate belongs to, or why none (`product` None)."""

    product: Product | None
    why: str = ""
    ambiguous: bool = False  # several products matched: the deployment's fault (the synth refuses overlaps)
    malformed: bool = False  # the certificate could not be read to choose (`why` says why)


def candidates(products: Sequence[Product], ca_certificate_id: str) -> list[Product]:
    """The products that serve certificates of this CA."""
    return [p for p in products if p.serves(ca_certificate_id)]


def needs_subject(products: Sequence[Product]) -> bool:
    """Whether choosing among `products` reads the certificate (a CA one product serves without a selector does not)."""
    return not (len(products) == 1 and not products[0].select)


def select(products: Sequence[Product], ca_certificate_id: str, subject: x509.Name | None) -> Selection:
    """The product of a certificate of CA `ca_certificate_id` whose subject is `subject` (None when it was not
    read: only valid when `needs_subject` is False)."""
    serving = candidates(products, ca_certificate_id)
    if not serving:
        return Selection(None, f"no product serves CA {ca_certificate_id}")
    if not needs_subject(serving):
        return Selection(serving[0])
    assert subject is not None
    matching = [p for p in serving if p.selects(subject)]
    names = ", ".join(p.name for p in serving)
    if not matching:
        return Selection(None, f"the subject matches the selector of none of the CA's products ({names})")
    if len(matching) > 1:
        both = ", ".join(p.name for p in matching)
        return Selection(None, f"the subject matches the selectors of several products ({both})", ambiguous=True)
    return Selection(matching[0])
