"""What AWS IoT Core's policy variables resolve to for one MQTT connection over mutual TLS (an X.509 certificate).

The vocabulary is AWS's (developer guide: "Basic AWS IoT Core policy variables", "Thing policy variables", "X.509
Certificate AWS IoT Core policy variables" and "Using X.509 certificate policy variables"):

- basic: `iot:ClientId`, `aws:SourceIp`, `iot:DomainName`;
- the thing named by the client id, when it is attached to the certificate: `iot:Connection.Thing.ThingName`,
  `iot:Connection.Thing.ThingTypeName`, `iot:Connection.Thing.Attributes[<name>]`, and
  `iot:Connection.Thing.IsAttached` (`true` or `false`);
- the certificate: `iot:Certificate.Subject.<A>` and `iot:Certificate.Issuer.<A>` for the thirteen attributes AWS
  lists (`NAME_ATTRIBUTES`), `iot:Certificate.Subject.AlternativeName.<T>` and
  `iot:Certificate.Issuer.AlternativeName.<T>` for the five name types (`ALTERNATIVE_NAMES`),
  `iot:Certificate.SerialNumber` (in decimal) and `iot:Certificate.AvailableKeys` (the names of those that have a
  value). An attribute may hold several values: the plain name gives the first, `.N` the value at index N (AWS's
  example: `.1` is the second value) and `.List` all of them; AWS keeps at most five.

`Connection.values(name)` answers with the key's values: `()` when AWS IoT finds none (no thing attached under the
client id, an attribute the thing or the certificate lacks, an index past the end), or None when jitr cannot tell: a
name AWS does not document, or one the connection's source does not carry (`aws:SourceIp` and `iot:DomainName` unless
given, the thing's type and attributes when only its name is known, the certificate when it is not given). Names
match without regard to case, as IAM's condition keys do; a thing attribute's own name keeps its case.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import NameOID

NAME_ATTRIBUTES = {
    "DistinguishedNameQualifier": NameOID.DN_QUALIFIER,
    "Country": NameOID.COUNTRY_NAME,
    "Organization": NameOID.ORGANIZATION_NAME,
    "OrganizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "State": NameOID.STATE_OR_PROVINCE_NAME,
    "CommonName": NameOID.COMMON_NAME,
    "SerialNumber": NameOID.SERIAL_NUMBER,
    "Title": NameOID.TITLE,
    "Surname": NameOID.SURNAME,
    "GivenName": NameOID.GIVEN_NAME,
    "Initials": NameOID.INITIALS,
    "Pseudonym": NameOID.PSEUDONYM,
    "GenerationQualifier": NameOID.GENERATION_QUALIFIER,
}
ALTERNATIVE_NAMES: dict[str, type[x509.GeneralName]] = {
    "RFC822Name": x509.RFC822Name,
    "DNSName": x509.DNSName,
    "DirectoryName": x509.DirectoryName,
    "UniformResourceIdentifier": x509.UniformResourceIdentifier,
    "IPAddress": x509.IPAddress,
}
# the subject fields `jitr.certificates.certificate_parameters` decodes, by the variable that reads them
FIELD_PARAMETERS = {
    "CommonName": "AWS::IoT::Certificate::CommonName",
    "Organization": "AWS::IoT::Certificate::Organization",
    "OrganizationalUnit": "AWS::IoT::Certificate::OrganizationalUnit",
    "Country": "AWS::IoT::Certificate::Country",
    "State": "AWS::IoT::Certificate::StateName",
    "DistinguishedNameQualifier": "AWS::IoT::Certificate::DistinguishedNameQualifier",
    "SerialNumber": "AWS::IoT::Certificate::SerialNumber",
}
MAX_ITEMS = 5  # "Certificate attributes that contain arrays are limited to five items. Additional items are ignored."
MAX_LENGTH = 1024  # a longer certificate value is not substituted
NOT_SUBSTITUTED = frozenset("*$+?#")  # a certificate value holding one of these is not substituted either

AVAILABLE_KEYS = "iot:Certificate.AvailableKeys"
SERIAL_NUMBER = "iot:Certificate.SerialNumber"
CERTIFICATE_VARIABLES = (
    *(f"iot:Certificate.{scope}.{a}" for scope in ("Subject", "Issuer") for a in NAME_ATTRIBUTES),
    *(f"iot:Certificate.{scope}.AlternativeName.{t}" for scope in ("Subject", "Issuer") for t in ALTERNATIVE_NAMES),
    SERIAL_NUMBER,
)
_CERTIFICATE_KEYS = {name.lower(): name for name in (*CERTIFICATE_VARIABLES, AVAILABLE_KEYS)}
_THING = "iot:connection.thing."
_ATTRIBUTE = re.compile(r"attributes\[(.+)\]", re.IGNORECASE | re.DOTALL)
_SELECTOR = re.compile(r"(.+)\.(list|\d+)", re.DOTALL)

Values = tuple[str, ...] | None  # None: jitr cannot tell


@dataclass(frozen=True)
class Thing:
    """The registry's record of the thing attached under the client id (DescribeThing)."""

    name: str
    type_name: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Connection:
    """What the policy variables resolve from: the client id, the thing attached under it, the certificate.

    `thing_name` alone says a thing of that name is attached (its type and attributes unknown); `thing` is its whole
    record. `certificate_pem` is decoded only when a policy asks for more than `certificate_fields` (the
    `certificate_parameters` of the certificate, its subject's first values) holds."""

    client_id: str
    thing_name: str | None = None  # a thing of the client id's name attached to the certificate
    certificate_fields: Mapping[str, str] = field(default_factory=dict)
    thing: Thing | None = None
    certificate_pem: str | None = None
    source_ip: str | None = None
    domain_name: str | None = None

    def __post_init__(self) -> None:
        if self.thing is not None and self.thing_name is None:
            object.__setattr__(self, "thing_name", self.thing.name)

    def values(self, name: str) -> Values:
        """The values of the policy variable or condition key `name` (see the module's docstring)."""
        key = name.lower()
        if key == "iot:clientid":
            return (self.client_id,)
        if key == "aws:sourceip":
            return None if self.source_ip is None else (self.source_ip,)
        if key == "iot:domainname":
            return None if self.domain_name is None else (self.domain_name,)
        if key.startswith(_THING):
            return self._thing_values(name[len(_THING) :])
        return self._certificate_values(key)

    def _thing_values(self, rest: str) -> Values:
        key = rest.lower()
        attribute = _ATTRIBUTE.fullmatch(rest)
        if key == "isattached":
            return ("true" if self.thing_name is not None else "false",)
        if key not in ("thingname", "thingtypename") and attribute is None:
            return None
        if self.thing_name is None:
            return ()
        if key == "thingname":
            return (self.thing_name,)
        if self.thing is None:
            return None
        if key == "thingtypename":
            return (self.thing.type_name,) if self.thing.type_name else ()
        assert attribute is not None
        value = self.thing.attributes.get(attribute.group(1))
        return () if value is None else (value,)

    def _certificate_values(self, key: str) -> Values:
        selector = _SELECTOR.fullmatch(key)
        base, which = (selector.group(1), selector.group(2)) if selector else (key, None)
        if base not in _CERTIFICATE_KEYS:
            return None
        subject_field = _subject_field(base)
        if which is None and subject_field in FIELD_PARAMETERS and self.certificate_fields:
            value = self.certificate_fields.get(FIELD_PARAMETERS[subject_field])
            return (value,) if value else ()
        table = self._certificate_table
        if table is None:
            return None
        values = table.get(base, ())
        if which == "list" or base == AVAILABLE_KEYS.lower():
            return values
        index = 0 if which is None else int(which)
        return values[index : index + 1]

    @functools.cached_property
    def _certificate_table(self) -> dict[str, tuple[str, ...]] | None:
        if self.certificate_pem is None:
            return None
        try:
            return certificate_variables(x509.load_pem_x509_certificate(self.certificate_pem.encode()))
        except ValueError:  # a certificate AWS IoT would not have accepted: nothing of it is known
            return None


def _subject_field(key: str) -> str | None:
    prefix = "iot:certificate.subject."
    if not key.startswith(prefix):
        return None
    return next((a for a in FIELD_PARAMETERS if a.lower() == key[len(prefix) :]), None)


def documented(name: str) -> bool:
    """Whether `name` is a policy variable AWS IoT documents for a connection over X.509."""
    key = name.lower()
    if key in ("iot:clientid", "aws:sourceip", "iot:domainname"):
        return True
    if key.startswith(_THING):
        rest = name[len(_THING) :]
        return rest.lower() in ("thingname", "thingtypename", "isattached") or bool(_ATTRIBUTE.fullmatch(rest))
    selector = _SELECTOR.fullmatch(key)
    return (selector.group(1) if selector else key) in _CERTIFICATE_KEYS


def multivalued(name: str) -> bool:
    """A key whose value is a list: it is tested in conditions, never substituted into a string."""
    return name.lower().endswith(".list") or name.lower() == AVAILABLE_KEYS.lower()


def substitutable(name: str, value: str) -> bool:
    """False for a certificate value AWS IoT leaves unsubstituted (it keeps the `${...}` text instead): one with a
    wildcard character, or longer than 1,024 characters ("X.509 Certificate policy variable limitations")."""
    if not name.lower().startswith("iot:certificate."):
        return True
    return len(value) <= MAX_LENGTH and not NOT_SUBSTITUTED.intersection(value)


def certificate_variables(certificate: x509.Certificate) -> dict[str, tuple[str, ...]]:
    """Every certificate policy variable's values (keyed by its lower-cased name). Raises ValueError for a
    certificate whose names or extensions cannot be decoded."""
    table: dict[str, tuple[str, ...]] = {}
    for scope, name in (("Subject", certificate.subject), ("Issuer", certificate.issuer)):
        for attribute, oid in NAME_ATTRIBUTES.items():
            values = tuple(_text(a.value) for a in name.get_attributes_for_oid(oid))
            table[f"iot:certificate.{scope}.{attribute}".lower()] = values[:MAX_ITEMS]
    for scope in ("Subject", "Issuer"):
        names = _alternative_names(certificate, issuer=scope == "Issuer")
        for kind, kind_class in ALTERNATIVE_NAMES.items():
            values = tuple(_general_name(n) for n in names if isinstance(n, kind_class))
            table[f"iot:certificate.{scope}.alternativename.{kind}".lower()] = values[:MAX_ITEMS]
    table[SERIAL_NUMBER.lower()] = (str(certificate.serial_number),)
    table[AVAILABLE_KEYS.lower()] = tuple(name for name in CERTIFICATE_VARIABLES if table[name.lower()])
    return table


def _alternative_names(certificate: x509.Certificate, *, issuer: bool) -> list[x509.GeneralName]:
    try:
        if issuer:
            return list(certificate.extensions.get_extension_for_class(x509.IssuerAlternativeName).value)
        return list(certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _general_name(name: x509.GeneralName) -> str:
    """As AWS's table shows them: a directory name as `cn=...,ou=...,o=...,c=...` (RFC 4514 order, lower-case types),
    an IP address in its usual text, the others as written."""
    if isinstance(name, x509.DirectoryName):
        rdns = reversed(name.value.rdns)
        return ",".join("+".join(_lower_type(a.rfc4514_string()) for a in rdn) for rdn in rdns)
    return str(name.value)


def _lower_type(attribute: str) -> str:
    kind, _, value = attribute.partition("=")
    return f"{kind.lower()}={value}"
