"""The template parameters a device certificate fills, by name: AWS's `AWS::IoT::Certificate::*` (what JITP passes)
and jitr's own `Jitr::Certificate::*` (subjectAltName values, notAfter, the public key's SHA-256 and the extensions
the configuration declares). Which names exist, which are the certificate's to fill, and a neutral value for each:
the engine, synth, `jitr doctor` and the handler all ask here. The values are decoded in `jitr.facts`."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from enum import StrEnum

from .limits import CERTIFICATE_PARAMETER_PREFIX

AWS_PREFIX = CERTIFICATE_PARAMETER_PREFIX
JITR_PREFIX = "Jitr::Certificate::"  # AWS reserves AWS::, so no name of AWS's can ever collide with these
PREFIXES = (AWS_PREFIX, JITR_PREFIX)

# What AWS fills in JITP (documented list): the subject's attributes, and Id (the certificate id).
AWS_SUBJECT_NAMES = (
    "CommonName",
    "SerialNumber",
    "Country",
    "Organization",
    "OrganizationalUnit",
    "DistinguishedNameQualifier",
    "StateName",
)
ID = AWS_PREFIX + "Id"
AWS_FIELDS = frozenset({*(AWS_PREFIX + name for name in AWS_SUBJECT_NAMES), ID})


class SanKind(StrEnum):
    """The subjectAltName entries jitr gives a template, by the word in the parameter's name."""

    DNS = "DNS"  # dNSName
    URI = "URI"  # uniformResourceIdentifier
    EMAIL = "Email"  # rfc822Name
    IP = "IP"  # iPAddress, as Python's ipaddress writes it (IPv6 compressed)


SAN_PREFIX = JITR_PREFIX + "SubjectAlternativeName::"
NOT_AFTER = JITR_PREFIX + "NotAfter"  # ISO 8601 UTC to the second: 2031-05-02T10:00:00Z
NOT_AFTER_EPOCH = JITR_PREFIX + "NotAfter::Epoch"  # seconds since 1970-01-01T00:00:00Z
PUBLIC_KEY_SHA256 = JITR_PREFIX + "PublicKey::SHA256"  # lower-case hex of the SubjectPublicKeyInfo DER's SHA-256
EXTENSION_PREFIX = JITR_PREFIX + "Extension::"  # + a name the configuration declares (certificateExtensions)
JITR_FIXED = frozenset({NOT_AFTER, NOT_AFTER_EPOCH, PUBLIC_KEY_SHA256})

EXTENSION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_SAN_NAME = re.compile(re.escape(SAN_PREFIX) + r"(DNS|URI|Email|IP)(?:::([1-9][0-9]*))?")

NEUTRAL_FIELD_VALUE = "0"
"""A value a well-formed certificate field could hold, valid wherever a template puts it (thing name, attribute value,
group name): used to ask "would a sound certificate have rendered?" when a value mixes certificate fields with the
deployment's own parameters, and to render a template at synth and in `jitr doctor`."""


def san_parameter(kind: SanKind, index: int = 1) -> str:
    """The parameter of the `index`-th (from 1) subjectAltName entry of `kind`; the first also has the short name
    without an index."""
    return f"{SAN_PREFIX}{kind}::{index}"


def extension_parameter(name: str) -> str:
    return EXTENSION_PREFIX + name


def is_certificate_field(name: str, extensions: Collection[str] = ()) -> bool:
    """Whether the device certificate fills the parameter `name`, given the extension names the configuration
    declares. Any other parameter is the deployment's: a Default or an extraParameters value."""
    if name in AWS_FIELDS or name in JITR_FIXED or _SAN_NAME.fullmatch(name):
        return True
    return name.startswith(EXTENSION_PREFIX) and name.removeprefix(EXTENSION_PREFIX) in extensions


def certificate_fields(names: Iterable[str], extensions: Collection[str] = ()) -> frozenset[str]:
    """Those of `names` the device certificate fills."""
    return frozenset(name for name in names if is_certificate_field(name, extensions))


def unknown_field_problem(name: str) -> str | None:
    """Why a `Jitr::Certificate::*` parameter is one no certificate fills, or None (also for any other name). An
    extension's name is only checked for its form here; whether the configuration declares it is synth's to say."""
    if not name.startswith(JITR_PREFIX) or name in JITR_FIXED or _SAN_NAME.fullmatch(name):
        return None
    if name.startswith(EXTENSION_PREFIX):
        if EXTENSION_NAME.fullmatch(name.removeprefix(EXTENSION_PREFIX)):
            return None
        return (
            f"{name!r} is not an extension parameter: after {EXTENSION_PREFIX} comes a name matching"
            f" {EXTENSION_NAME.pattern}"
        )
    kinds = "|".join(SanKind)
    return (
        f"{name!r} is not a certificate fact jitr gives: use {SAN_PREFIX}{{{kinds}}}[::N], {NOT_AFTER},"
        f" {NOT_AFTER_EPOCH}, {PUBLIC_KEY_SHA256} or {EXTENSION_PREFIX}<name declared in certificateExtensions>"
    )


def neutral_parameters(names: Iterable[str], extensions: Collection[str] = ()) -> dict[str, str]:
    """A neutral, sound value for each of `names` the certificate fills (a certificate id's shape for Id): a
    template rendered with these renders for any sound certificate."""
    return {name: "0" * 64 if name == ID else NEUTRAL_FIELD_VALUE for name in certificate_fields(names, extensions)}
