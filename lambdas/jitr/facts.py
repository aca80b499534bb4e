"""What a device certificate tells a template: AWS's `AWS::IoT::Certificate::*` parameters and jitr's own
`Jitr::Certificate::*` facts (subjectAltName values, notAfter, the public key's SHA-256, the extensions the
configuration declares). Names and their rules are in `jitr.templates.fields`; the values are decoded here."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from .certificates import BadCertificate, certificate_parameters
from .templates.fields import (
    NOT_AFTER,
    NOT_AFTER_EPOCH,
    PUBLIC_KEY_SHA256,
    SAN_PREFIX,
    SanKind,
    extension_parameter,
    san_parameter,
)

# What cryptography raises for a part it cannot decode (it parses lazily, on access).
_UNDECODABLE = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


@dataclass(frozen=True)
class CertificateFacts:
    """The parameters a certificate gives a template. `unreadable` names the declared extensions the certificate
    carries in a form that is not text (parameter -> why): the certificate's fault only if a template declares them."""

    values: dict[str, str]
    unreadable: dict[str, str] = field(default_factory=dict)

    def given(self, declared: Collection[str]) -> dict[str, str]:
        """The values a template declaring `declared` is given (a value it does not read is no reason to refuse)."""
        return {name: value for name, value in self.values.items() if name in declared}

    def unreadable_in(self, declared: Collection[str]) -> list[str]:
        """Why each fact a template declaring `declared` reads cannot be given: the certificate's fault."""
        return [f"{why}; the template reads it as {name}" for name, why in self.unreadable.items() if name in declared]


def certificate_facts(
    certificate: x509.Certificate,
    extensions: Mapping[str, str] | None = None,
    wanted: Collection[str] | None = None,
) -> CertificateFacts:
    """The parameters `certificate` gives: AWS's and jitr's, and the value of each extension `extensions` declares
    (parameter name -> dotted OID) that the certificate carries; with `wanted` (the parameters a template declares),
    only jitr's facts among them are read (a decision pays for what its template uses). Raises `BadCertificate` when
    a part every template may read cannot be decoded."""
    values = certificate_parameters(certificate)
    want = (lambda name: True) if wanted is None else set(wanted).__contains__
    try:
        if wanted is None or any(name.startswith(SAN_PREFIX) for name in wanted):
            values |= _subject_alternative_names(certificate)
        if want(NOT_AFTER) or want(NOT_AFTER_EPOCH):
            not_after = certificate.not_valid_after_utc
            values[NOT_AFTER] = not_after.isoformat().removesuffix("+00:00") + "Z"  # whole seconds, 4-digit years
            values[NOT_AFTER_EPOCH] = str(int(not_after.timestamp()))
        if want(PUBLIC_KEY_SHA256):
            values[PUBLIC_KEY_SHA256] = hashlib.sha256(subject_public_key_info(certificate)).hexdigest()
        declared = {name: oid for name, oid in (extensions or {}).items() if want(extension_parameter(name))}
        carried = {extension.oid.dotted_string: extension for extension in certificate.extensions} if declared else {}
    except _UNDECODABLE as exc:
        raise BadCertificate(f"the certificate cannot be decoded: {exc}") from exc
    unreadable: dict[str, str] = {}
    for name, oid in declared.items():
        if oid not in carried:
            continue
        try:
            values[extension_parameter(name)] = extension_text(carried[oid].value.public_bytes())
        except ValueError as exc:
            unreadable[extension_parameter(name)] = f"the certificate's extension {oid} ({name}) {exc}"
    return CertificateFacts(values, unreadable)


def _subject_alternative_names(certificate: x509.Certificate) -> dict[str, str]:
    """Each subjectAltName entry of the four kinds, numbered from 1 in the certificate's order; the first of each
    kind also under the short name."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return {}
    found: dict[SanKind, list[str]] = {
        SanKind.DNS: names.get_values_for_type(x509.DNSName),
        SanKind.URI: names.get_values_for_type(x509.UniformResourceIdentifier),
        SanKind.EMAIL: names.get_values_for_type(x509.RFC822Name),
        SanKind.IP: [str(address) for address in names.get_values_for_type(x509.IPAddress)],
    }
    values: dict[str, str] = {}
    for kind, texts in found.items():
        for index, text in enumerate(texts, start=1):
            values[san_parameter(kind, index)] = text
            if index == 1:
                values[f"{SAN_PREFIX}{kind}"] = text
    return values


# -- DER, as little as these facts need ---

_TEXT = {  # universal tag -> (ASN.1 type, decoding)
    0x0C: ("a UTF8String", "utf-8"),
    0x13: ("a PrintableString", "ascii"),
    0x16: ("an IA5String", "ascii"),
    0x1A: ("a VisibleString", "ascii"),
    0x04: ("an OCTET STRING", "utf-8"),
}
_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")
_VISIBLE = frozenset(map(chr, range(0x20, 0x7F)))
_TAG_NAMES = {
    0x01: "a BOOLEAN",
    0x02: "an INTEGER",
    0x03: "a BIT STRING",
    0x05: "a NULL",
    0x06: "an OBJECT IDENTIFIER",
    0x30: "a SEQUENCE",
    0x31: "a SET",
}


def extension_text(der: bytes) -> str:
    """The text of an extension value that is one DER UTF8String, PrintableString, IA5String, VisibleString or OCTET
    STRING (its bytes as UTF-8). Raises ValueError with the rest of a sentence ("holds an INTEGER, not text")."""
    try:
        tag, start, end = _element(der, 0)
    except ValueError as exc:
        raise ValueError(f"is not DER: {exc}") from None
    if end != len(der):
        raise ValueError("holds more than one DER value, not text")
    if tag not in _TEXT:
        raise ValueError(f"holds {_TAG_NAMES.get(tag, f'an ASN.1 value of tag 0x{tag:02x}')}, not text")
    kind, encoding = _TEXT[tag]
    try:
        text = der[start:end].decode(encoding)
    except UnicodeDecodeError:
        raise ValueError(f"holds {kind} that is not valid {encoding.upper()}") from None
    allowed = {0x13: _PRINTABLE, 0x1A: _VISIBLE}.get(tag)
    if allowed is not None and not set(text) <= allowed:
        raise ValueError(f"holds {kind} with characters its type does not allow")
    return text


def subject_public_key_info(certificate: x509.Certificate) -> bytes:
    """The certificate's SubjectPublicKeyInfo exactly as encoded in it (a key re-encoded by a library may differ,
    e.g. an EC point written compressed), read from the DER of the TBSCertificate."""
    tbs = certificate.tbs_certificate_bytes
    _, at, _ = _element(tbs, 0)  # TBSCertificate ::= SEQUENCE {
    tag, _, end = _element(tbs, at)
    if tag == 0xA0:  # [0] version (absent in a version 1 certificate)
        at = end
    for _field in ("serialNumber", "signature", "issuer", "validity", "subject"):
        _, _, at = _element(tbs, at)
    _, _, end = _element(tbs, at)
    return tbs[at:end]


def _element(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of contents, end) of the DER element at offset `at`; raises ValueError when there is none."""
    if at + 2 > len(der):
        raise ValueError("truncated")
    tag, first = der[at], der[at + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("a multi-byte tag")
    at += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 0 < count <= 4 or at + count > len(der):
            raise ValueError("a length it cannot read")
        length = int.from_bytes(der[at : at + count], "big")
        if length < 0x80 or der[at] == 0:
            raise ValueError("a length not in its shortest form")
        at += count
    if at + length > len(der):
        raise ValueError("truncated")
    return tag, at, at + length
