"""Whether the issuer has revoked a certificate (RFC 5280 6.1.3 (a)(3)), from the issuer's CRL, parsed and checked
with pyca/cryptography: never hand-written ASN.1.

A CRL is read once (`read_crl`): its size is capped, its issuer must be the certificate issuer's subject, the
issuer's key must be allowed to sign CRLs (keyUsage cRLSign, when keyUsage is present) and must have signed it, and
every extension must be one jitr understands unless it is non-critical. What jitr cannot process and could change
the answer makes the CRL unusable, never "good": a delta CRL, an indirect CRL (IDP indirectCRL, or an entry naming
another issuer), a CRL covering only some reasons. A usable CRL is indexed by serial number once, so a look-up costs
the same for a 10-entry and a 100,000-entry CRL.

`check` then answers for one certificate at one moment (RFC 5280 6.3.3): the CRL must be current (`thisUpdate` not in
the future, `nextUpdate` plus the grace not past), its scope (issuing distribution point) must cover the
certificate, and a base CRL that names a delta (FreshestCRL, in the CRL or the certificate) cannot say "good" alone.
Every doubt is `UNKNOWN` with its cause: whose fault that is, the caller decides (never the device's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import AuthorityInformationAccessOID, CRLEntryExtensionOID, ExtensionOID

MAX_CRL_BYTES = 20 * 1024 * 1024  # the default cap on one CRL: a 100,000-entry CRL is about 4 MB


class Status(StrEnum):
    GOOD = "GOOD"  # the CRL is usable, current, covers the certificate and does not list it
    REVOKED = "REVOKED"  # listed, for any reason but certificateHold: permanent
    ON_HOLD = "ON_HOLD"  # listed with reason certificateHold: suspended, may be released
    UNKNOWN = "UNKNOWN"  # the status could not be learned (the cause says why): never the device's fault


@dataclass(frozen=True)
class Revocation:
    """One certificate's revocation status, where it came from and why."""

    status: Status
    source: str
    detail: str
    reason: str | None = None  # the CRL entry's reason code (RFC 5280 5.3.1 names), when listed
    revoked_at: datetime | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "status": str(self.status),
            "source": self.source,
            "detail": self.detail,
            "reason": self.reason,
            "revokedAt": self.revoked_at.isoformat() if self.revoked_at else None,
        }


class UnusableCrl(Exception):
    """The CRL cannot be used: the message says why (the status it would give is UNKNOWN)."""


@dataclass(frozen=True)
class Entry:
    revoked_at: datetime
    reason: str  # "unspecified" when the entry carries no reason code
    problem: str | None = None  # an entry jitr cannot read (an unknown critical extension): its status is unknown


@dataclass(frozen=True)
class Scope:
    """What the CRL's issuing distribution point says it covers (RFC 5280 5.2.5); no IDP covers everything."""

    names: frozenset[str] = frozenset()  # the distribution point's full names (URIs and others, as text)
    only_user: bool = False
    only_ca: bool = False


@dataclass(frozen=True)
class IndexedCrl:
    """A CRL read once: checked against its issuer, and indexed by serial number (serial -> its entry's position;
    an entry's extensions are decoded when a look-up finds it)."""

    source: str
    crl: x509.CertificateRevocationList
    issuer: x509.Name
    this_update: datetime
    next_update: datetime | None
    positions: Mapping[int, int]
    scope: Scope
    names_delta: bool  # FreshestCRL: a delta CRL exists, which jitr does not read
    number: int | None = None  # CRLNumber

    good_detail: str = field(init=False)  # formatted once: a "good" answer costs no date formatting per event

    def __post_init__(self) -> None:
        object.__setattr__(self, "good_detail", f"not listed in the CRL of {self.this_update:%Y-%m-%d %H:%M}Z")

    def __len__(self) -> int:
        return len(self.positions)

    def entry(self, serial: int) -> Entry | None:
        """The CRL's entry for `serial`, or None when it is not listed."""
        position = self.positions.get(serial)
        if position is None:
            return None
        revoked = self.crl[position]
        try:
            return _entry(revoked)
        except (ValueError, x509.DuplicateExtension) as exc:
            return Entry(revoked.revocation_date_utc, "unspecified", f"its CRL entry cannot be decoded ({exc})")


# Extensions a CRL may carry that jitr understands (RFC 5280 5.2); any other critical one makes the CRL unusable.
_UNDERSTOOD = frozenset(
    {
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.ISSUER_ALTERNATIVE_NAME,
        ExtensionOID.CRL_NUMBER,
        ExtensionOID.ISSUING_DISTRIBUTION_POINT,
        ExtensionOID.FRESHEST_CRL,
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
    }
)
_ENTRY_UNDERSTOOD = frozenset({CRLEntryExtensionOID.CRL_REASON, CRLEntryExtensionOID.INVALIDITY_DATE})


def parse_crl(data: bytes, *, max_bytes: int = MAX_CRL_BYTES) -> x509.CertificateRevocationList:
    """The CRL in `data` (DER, or PEM), or UnusableCrl: oversized, truncated or not a CRL."""
    if len(data) > max_bytes:
        raise UnusableCrl(f"the CRL is {len(data)} bytes, over the {max_bytes}-byte cap")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except (ValueError, x509.InvalidVersion) as exc:
        raise UnusableCrl(f"the CRL cannot be decoded ({exc})") from None


def read_crl(data: bytes, issuer: x509.Certificate, source: str, *, max_bytes: int = MAX_CRL_BYTES) -> IndexedCrl:
    """Parse, check and index the CRL `issuer` published at `source`. Raises UnusableCrl with the cause."""
    crl = parse_crl(data, max_bytes=max_bytes)
    try:  # cryptography decodes a CRL's parts on first access: any of them may be undecodable
        _check_signer(crl, issuer)
        return _indexed(crl, source)
    except (ValueError, x509.InvalidVersion, x509.DuplicateExtension) as exc:
        raise UnusableCrl(f"the CRL cannot be decoded ({exc})") from None


def _indexed(crl: x509.CertificateRevocationList, source: str) -> IndexedCrl:
    extensions = list(crl.extensions)
    scope, names_delta, number = Scope(), False, None
    for extension in extensions:
        value = extension.value
        if isinstance(value, x509.DeltaCRLIndicator):
            raise UnusableCrl("it is a delta CRL; jitr reads only complete CRLs")
        if isinstance(value, x509.IssuingDistributionPoint):
            scope = _scope(value)
        elif isinstance(value, x509.FreshestCRL):
            names_delta = True
        elif isinstance(value, x509.CRLNumber):
            number = value.crl_number
        elif extension.critical and extension.oid not in _UNDERSTOOD:
            raise UnusableCrl(f"it has a critical extension jitr does not understand ({extension.oid.dotted_string})")
    critical_here = sum(1 for extension in extensions if extension.critical)
    return IndexedCrl(
        source=source,
        crl=crl,
        issuer=crl.issuer,
        this_update=crl.last_update_utc,
        next_update=crl.next_update_utc,
        positions=MappingProxyType(_index(crl, critical_here)),
        scope=scope,
        names_delta=names_delta,
        number=number,
    )


def _check_signer(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> None:
    if crl.issuer != issuer.subject:
        raise UnusableCrl(
            f"it is issued by {crl.issuer.rfc4514_string()!r}, not by {issuer.subject.rfc4514_string()!r}"
        )
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    except ValueError as exc:
        raise UnusableCrl(f"the issuer's extensions cannot be decoded ({exc})") from None
    if usage is not None and not usage.crl_sign:
        raise UnusableCrl("the issuer's key is not allowed to sign CRLs (keyUsage without cRLSign)")
    named_key, issuer_key = _key_identifier(crl), _subject_key_identifier(issuer)
    if named_key and issuer_key and named_key != issuer_key:
        raise UnusableCrl("it names another key of the issuer (authorityKeyIdentifier), not the registered CA's")
    try:
        valid = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]  # CA keys are issuer key types
    except (UnsupportedAlgorithm, TypeError, ValueError, InvalidSignature) as exc:
        raise UnusableCrl(f"its signature cannot be checked ({exc})") from None
    if not valid:
        raise UnusableCrl("its signature is not the issuer's (signed by another key, or altered)")


def _key_identifier(crl: x509.CertificateRevocationList) -> bytes | None:
    try:
        return crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        return None


def _subject_key_identifier(certificate: x509.Certificate) -> bytes | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except (x509.ExtensionNotFound, ValueError, x509.DuplicateExtension):
        return None


def _scope(idp: x509.IssuingDistributionPoint) -> Scope:
    if idp.indirect_crl:
        raise UnusableCrl("it is an indirect CRL; jitr reads only CRLs that their certificates' issuer signed")
    if idp.only_some_reasons:
        raise UnusableCrl("it covers only some revocation reasons, so it cannot say a certificate is good alone")
    if idp.only_contains_attribute_certs:
        raise UnusableCrl("it covers only attribute certificates")
    if idp.relative_name is not None:
        raise UnusableCrl("its distribution point is a relative name, which jitr does not match")
    names = frozenset(_general_name_text(n) for n in idp.full_name or ())
    return Scope(names=names, only_user=idp.only_contains_user_certs, only_ca=idp.only_contains_ca_certs)


def _general_name_text(name: x509.GeneralName) -> str:
    if isinstance(name, x509.DirectoryName):
        return f"dirName:{name.value.rfc4514_string()}"
    return f"{type(name).__name__}:{name.value}"


_DER_TRUE = b"\x01\x01\xff"  # BOOLEAN TRUE has exactly one DER encoding, which cannot overlap itself


def _index(crl: x509.CertificateRevocationList, critical_here: int) -> dict[int, int]:
    """Serial number -> entry position, read once. Entries' extensions are decoded here only if one of them can be
    critical: when the CRL's encoding holds no more `critical TRUE` than its own critical extensions, no entry has a
    critical extension (an entry naming another issuer, which must be critical, makes the whole CRL indirect)."""
    scan = crl.tbs_certlist_bytes.count(_DER_TRUE) > critical_here
    positions: dict[int, int] = {}
    for position, revoked in enumerate(crl):
        if scan:
            _entry(revoked)
        positions[revoked.serial_number] = position
    return positions


def _entry(revoked: x509.RevokedCertificate) -> Entry:
    at = revoked.revocation_date_utc
    extensions = list(revoked.extensions)
    reason, problem = "unspecified", None
    for extension in extensions:
        if isinstance(extension.value, x509.CRLReason):
            reason = extension.value.reason.value
        elif isinstance(extension.value, x509.CertificateIssuer):
            raise UnusableCrl("an entry names another certificate issuer (an indirect CRL)")
        elif extension.critical and extension.oid not in _ENTRY_UNDERSTOOD:
            problem = f"its CRL entry has a critical extension jitr does not understand ({extension.oid.dotted_string})"
    if reason == x509.ReasonFlags.remove_from_crl.value:
        problem = "its CRL entry says removeFromCRL, which only a delta CRL may say"
    return Entry(at, reason, problem)


@dataclass(frozen=True)
class Facts:
    """What a revocation check needs of a certificate, read in one pass over its extensions."""

    is_ca: bool
    points: tuple[str, ...]  # its CRL distribution points' full names, as text, in order
    partial: bool  # a distribution point split by reason, or naming another CRL issuer
    names_delta: bool  # FreshestCRL: the issuer publishes delta CRLs
    responders: tuple[str, ...] = ()  # its OCSP responders' URLs (authorityInfoAccess), in order

    @classmethod
    def of(cls, certificate: x509.Certificate) -> Facts:
        is_ca = partial = names_delta = False
        points: list[str] = []
        responders: list[str] = []
        for extension in certificate.extensions:
            value = extension.value
            if isinstance(value, x509.BasicConstraints):
                is_ca = value.ca
            elif isinstance(value, x509.CRLDistributionPoints):
                for point in value:
                    points += [_general_name_text(n) for n in point.full_name or ()]
                    partial = partial or bool(point.reasons or point.crl_issuer)
            elif isinstance(value, x509.FreshestCRL):
                names_delta = True
            elif isinstance(value, x509.AuthorityInformationAccess):
                responders += [
                    d.access_location.value
                    for d in value
                    if d.access_method == AuthorityInformationAccessOID.OCSP
                    and isinstance(d.access_location, x509.UniformResourceIdentifier)
                ]
        return cls(is_ca, tuple(points), partial, names_delta, tuple(responders))

    @property
    def urls(self) -> list[str]:
        """The http(s) URLs of the distribution points, in order."""
        prefix = "UniformResourceIdentifier:"
        return [name[len(prefix) :] for name in self.points if name.startswith(prefix + "http")]


def check(
    certificate: x509.Certificate,
    crl: IndexedCrl,
    *,
    at: datetime | None = None,
    grace: timedelta = timedelta(0),
    skew: timedelta = timedelta(0),
    facts: Facts | None = None,
) -> Revocation:
    """The certificate's status by this CRL at `at` (now), with `grace` past nextUpdate still taken as current and
    a thisUpdate at most `skew` ahead (the issuer's clock) taken as issued. `facts`: the certificate's, if read."""
    moment = at or datetime.now(UTC)
    known = facts or Facts.of(certificate)
    unknown = _not_answerable(certificate, known, crl, moment, grace, skew)
    if unknown:
        return Revocation(Status.UNKNOWN, crl.source, unknown)
    entry = crl.entry(certificate.serial_number)
    if entry is None:
        if crl.names_delta or known.names_delta:
            return Revocation(
                Status.UNKNOWN, crl.source, "not listed, but a delta CRL exists (FreshestCRL), which jitr does not read"
            )
        return Revocation(Status.GOOD, crl.source, crl.good_detail)
    if entry.problem:
        return Revocation(Status.UNKNOWN, crl.source, entry.problem)
    when = f"{entry.revoked_at:%Y-%m-%d %H:%M:%S}Z"
    if entry.reason == x509.ReasonFlags.certificate_hold.value:
        return Revocation(
            Status.ON_HOLD, crl.source, f"on hold (certificateHold) since {when}", entry.reason, entry.revoked_at
        )
    return Revocation(
        Status.REVOKED,
        crl.source,
        f"revoked by the issuer on {when}, reason {entry.reason}",
        entry.reason,
        entry.revoked_at,
    )


def _not_answerable(
    certificate: x509.Certificate, facts: Facts, crl: IndexedCrl, at: datetime, grace: timedelta, skew: timedelta
) -> str | None:
    """Why this CRL cannot answer for this certificate now, or None."""
    if certificate.issuer != crl.issuer:
        return "the CRL is not the certificate issuer's"
    if crl.this_update > at + skew:
        return f"the CRL's thisUpdate ({crl.this_update:%Y-%m-%d %H:%M}Z) is in the future"
    if crl.next_update is None:
        return "the CRL has no nextUpdate, so jitr cannot tell whether it is current"
    if crl.next_update + grace < at:
        return f"the CRL is stale: its nextUpdate ({crl.next_update:%Y-%m-%d %H:%M}Z) plus the grace has passed"
    if crl.scope.only_user and facts.is_ca:
        return "the CRL covers only end-entity certificates, and this one is a CA"
    if crl.scope.only_ca and not facts.is_ca:
        return "the CRL covers only CA certificates, and this one is not a CA"
    if crl.scope.names and not crl.scope.names.intersection(facts.points):
        return "the CRL's issuing distribution point is not one the certificate names (another partition)"
    if facts.partial:
        return "the certificate's CRL distribution point is split by reason or names another CRL issuer"
    return None


def distribution_point_urls(certificate: x509.Certificate) -> list[str]:
    """The http(s) URLs of the certificate's CRL distribution points, in order."""
    return Facts.of(certificate).urls
