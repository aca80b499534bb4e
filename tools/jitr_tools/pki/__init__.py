"""A development PKI: CAs, device certificates (good ones and every defect the handler refuses), verification certs.

Used by `jitr pki`, `jitr simulate`, the tests and the benchmarks. Nothing here is for production keys. Beside it:
`revocations` (the development CA's revocation list), `crl_server` and `ocsp_responder` (what devices' CRL and OCSP
URLs reach), `commands` (`jitr pki`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from jitr.certificates import BadCertificate, load_certificates

KeyKind = Literal["ec256", "ec384", "rsa2048", "rsa3072", "rsa1024", "ec192"]
HashKind = Literal["sha256", "sha384", "sha512", "sha1"]

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sha1": hashes.SHA1,
}


def new_key(kind: KeyKind = "ec256") -> CertificateIssuerPrivateKeyTypes:
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    curve = {"ec256": ec.SECP256R1(), "ec384": ec.SECP384R1(), "ec192": ec.SECP192R1()}[kind]
    return ec.generate_private_key(curve)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class Issued:
    """A certificate with its private key."""

    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes
    chain: list[x509.Certificate] = field(default_factory=list)

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    @property
    def chain_pem(self) -> str:
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in self.chain)


def _name(common_name: str, **attributes: str) -> x509.Name:
    oids = {
        "serial_number": NameOID.SERIAL_NUMBER,
        "organization": NameOID.ORGANIZATION_NAME,
        "organizational_unit": NameOID.ORGANIZATIONAL_UNIT_NAME,
        "country": NameOID.COUNTRY_NAME,
        "state": NameOID.STATE_OR_PROVINCE_NAME,
        "dn_qualifier": NameOID.DN_QUALIFIER,
    }
    parts = [x509.NameAttribute(oids[k], v) for k, v in attributes.items() if v]
    return x509.Name([*parts, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(
    common_name: str = "jitr development root CA",
    *,
    issuer: Issued | None = None,
    key: KeyKind = "ec256",
    days: int = 3650,
    key_usage: bool = True,
    path_length: int | None = None,
    organization: str = "jitr dev",
) -> Issued:
    """A root CA, or an intermediate when `issuer` is given."""
    private = new_key(key)
    subject = _name(common_name, organization=organization)
    start = now() - dt.timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False)
    )
    if key_usage:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    signer = issuer.key if issuer else private
    certificate = builder.sign(signer, hashes.SHA256())
    chain = [issuer.certificate, *issuer.chain] if issuer else []
    return Issued(certificate, private, chain)


def make_device(
    issuer: Issued,
    common_name: str,
    *,
    key: KeyKind = "ec256",
    hash_name: HashKind = "sha256",
    not_before: dt.datetime | None = None,
    days: int = 365,
    signer: CertificateIssuerPrivateKeyTypes | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    san: Sequence[str | x509.GeneralName] | None = None,
    key_usage: bool = True,
    serial_number: str | None = None,
    organization: str | None = None,
    country: str | None = None,
    unit: str | None = None,
    crl_urls: Sequence[str] = (),
    ocsp_urls: Sequence[str] = (),
    extensions: Sequence[x509.ExtensionType] = (),
) -> Issued:
    """A device certificate signed by `issuer` (or by `signer`, to forge one under the issuer's name), naming
    `crl_urls` as its CRL distribution points and `ocsp_urls` as its OCSP responders (authorityInfoAccess), with
    `extensions` besides (non-critical). `san` takes general names, or text: an IP address or a DNS name."""
    private = new_key(key)
    start = not_before or (now() - dt.timedelta(minutes=5))
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            _name(
                common_name,
                serial_number=serial_number or "",
                organization=organization or "",
                organizational_unit=unit or "",
                country=country or "",
            )
        )
        .issuer_name(issuer.certificate.subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    if key_usage:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(private, rsa.RSAPrivateKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(n) for n in san]), critical=False)
    if crl_urls:
        builder = builder.add_extension(crl_distribution_points(crl_urls), critical=False)
    if ocsp_urls:
        access = [
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(u))
            for u in ocsp_urls
        ]
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    certificate = builder.sign(signer or issuer.key, _HASHES[hash_name]())  # type: ignore[arg-type]  # SHA-1 on purpose
    return Issued(certificate, private, [issuer.certificate, *issuer.chain])


def crl_distribution_points(urls: Sequence[str]) -> x509.CRLDistributionPoints:
    """One distribution point per URL, each a full name (what CAs put in their certificates)."""
    return x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(u)], relative_name=None, reasons=None, crl_issuer=None
            )
            for u in urls
        ]
    )


def _general_name(name: str | x509.GeneralName) -> x509.GeneralName:
    """An IP address subjectAltName for an address, a DNS name for other text."""
    if isinstance(name, x509.GeneralName):
        return name
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def make_verification_certificate(ca: Issued, registration_code: str) -> Issued:
    """The certificate AWS IoT asks for to register a CA in DEFAULT mode: CN = registration code, signed by the CA."""
    return make_device(ca, registration_code, eku=None, key_usage=False)


# -- on disk: certificates as <stem>.pem, keys as <stem>.key readable by the owner only ------------------------------

DEVELOPMENT_PKI = Path(".dev-pki")
ROOT_STEM = "root-ca"
ISSUING_STEM = "issuing-ca"


def write_private(path: Path, content: str | bytes) -> None:
    """Write `content` to `path` with mode 0600 from the start (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content.encode() if isinstance(content, str) else content)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_TRUNC


def write_issued(issued: Issued, folder: Path, stem: str) -> Path:
    """`<stem>.pem` (the certificate, then its chain) and `<stem>.key` (0600). Returns the certificate's path."""
    folder.mkdir(parents=True, exist_ok=True)
    write_private(folder / f"{stem}.key", issued.key_pem)
    certificate = folder / f"{stem}.pem"
    certificate.write_text(issued.pem + issued.chain_pem)
    return certificate


def load_certificates_file(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


_ISSUER_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
    dsa.DSAPrivateKey,
)


class BadKey(ValueError):
    """A private key file that is not an unencrypted PEM key of a kind that signs certificates."""


def read_issued(folder: Path, stem: str) -> Issued:
    """A certificate (with the chain after it) and its key, as `write_issued` wrote them; raises `BadCertificate` or
    `BadKey` naming the file that is not readable."""
    pem, key_file = folder / f"{stem}.pem", folder / f"{stem}.key"
    try:
        certificates = load_certificates(pem.read_bytes())
    except BadCertificate as exc:
        raise BadCertificate(f"{pem}: {exc}") from None
    if not certificates:
        raise BadCertificate(f"{pem}: no PEM certificate in it")
    try:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise BadKey(f"{key_file}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, _ISSUER_KEYS):
        raise BadKey(f"{key_file}: a {type(key).__name__}, which cannot sign certificates")
    return Issued(certificates[0], key, certificates[1:])


def development_ca_pem(folder: Path) -> tuple[str, bool]:
    """The development issuing CA's PEM (made under `folder` on first use) and whether it was made now: what synth
    registers when no CA is configured (app.py hands it to `jitr_config.model.load_config`)."""
    ca, created = development_ca(folder)
    return ca.pem, created


def development_ca(folder: Path = DEVELOPMENT_PKI) -> tuple[Issued, bool]:
    """The development issuing CA under `folder` (with its root), created on first use. Returns (CA, created)."""
    if (folder / f"{ISSUING_STEM}.pem").exists() and (folder / f"{ISSUING_STEM}.key").exists():
        return read_issued(folder, ISSUING_STEM), False
    root = make_ca("jitr development root CA")
    issuing = make_ca("jitr development issuing CA", issuer=root, path_length=0)
    write_issued(root, folder, ROOT_STEM)
    write_issued(issuing, folder, ISSUING_STEM)
    (folder / "README").write_text(
        "A development PKI made by jitr. Never use these keys for real devices; never commit this folder.\n"
    )
    return issuing, True


CLIENT_AUTH = [ExtendedKeyUsageOID.CLIENT_AUTH]
SERVER_AUTH_ONLY = [ExtendedKeyUsageOID.SERVER_AUTH]


# -- certificates cryptography will not build: SHA-1 signatures and version 1 -------------------------------------

_SIGNATURE_ALGORITHMS = {
    ("ec", "sha1"): bytes.fromhex("300906072a8648ce3d0401"),
    ("ec", "sha256"): bytes.fromhex("300a06082a8648ce3d040302"),
    ("rsa", "sha1"): bytes.fromhex("300d06092a864886f70d0101050500"),
    ("rsa", "sha256"): bytes.fromhex("300d06092a864886f70d01010b0500"),
}


def _read(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at `at`."""
    length = data[at + 1]
    if length < 0x80:
        return data[at], at + 2, at + 2 + length
    size = length & 0x7F
    start = at + 2 + size
    return data[at], start, start + int.from_bytes(data[at + 2 : start], "big")


def _encode(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = (n.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + n.to_bytes(size, "big") + content


def der_children(data: bytes) -> list[bytes]:
    """The encoded elements inside the DER element at the start of `data` (a certificate's TBS, say)."""
    _, start, end = _read(data, 0)
    children: list[bytes] = []
    at = start
    while at < end:
        _tag, _, stop = _read(data, at)
        children.append(data[at:stop])
        at = stop
    return children


def der_read(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at `at`."""
    return _read(data, at)


def der_element(tag: int, content: bytes) -> bytes:
    """One DER element (tag, length, content)."""
    return _encode(tag, content)


def sign_tbs(tbs: bytes, signer: CertificateIssuerPrivateKeyTypes, hash_name: HashKind = "sha256") -> bytes:
    """A certificate's DER: `tbs` (any bytes, well-formed or not) signed by `signer`. The TBS's own signature
    algorithm field is left as it is."""
    kind = "rsa" if isinstance(signer, rsa.RSAPrivateKey) else "ec"
    algorithm = _SIGNATURE_ALGORITHMS[(kind, hash_name)]
    digest = _HASHES[hash_name]()
    if isinstance(signer, rsa.RSAPrivateKey):
        from cryptography.hazmat.primitives.asymmetric import padding

        signature = signer.sign(tbs, padding.PKCS1v15(), digest)
    elif isinstance(signer, ec.EllipticCurvePrivateKey):
        signature = signer.sign(tbs, ec.ECDSA(digest))
    else:
        raise TypeError(f"sign_tbs signs with RSA or EC keys, not {type(signer).__name__}")
    return _encode(0x30, tbs + algorithm + _encode(0x03, b"\x00" + signature))


def resign(
    template: Issued,
    signer: CertificateIssuerPrivateKeyTypes,
    *,
    hash_name: HashKind = "sha256",
    version1: bool = False,
) -> Issued:
    """Re-sign `template`'s certificate with `signer` using `hash_name`, optionally as an X.509 version 1 certificate
    (no version field, no extensions), as AWS's documented openssl commands produce."""
    children = der_children(template.certificate.tbs_certificate_bytes)
    kind = "rsa" if isinstance(signer, rsa.RSAPrivateKey) else "ec"
    algorithm = _SIGNATURE_ALGORITHMS[(kind, hash_name)]
    if children[0][0] == 0xA0:  # explicit version
        version, rest = children[0], children[1:]
    else:
        version, rest = b"", children
    serial, _old_algorithm, issuer, validity, subject, spki, *extensions = rest
    parts = [serial, algorithm, issuer, validity, subject, spki]
    if not version1:
        parts = [version, *parts, *extensions]
    der = sign_tbs(_encode(0x30, b"".join(parts)), signer, hash_name)
    return Issued(x509.load_der_x509_certificate(der), template.key, template.chain)


# -- fleets: many devices, a share of them with the defects the handler refuses ---------------------------------------


@dataclass(frozen=True)
class Defect:
    """A way to get a device certificate wrong, and the reason the handler gives (None: AWS refuses it at TLS)."""

    name: str
    reason: str | None
    make: Callable[[Issued, str], Issued]


def _forged(ca: Issued, name: str) -> Issued:
    return make_device(ca, name, signer=new_key())


DEFECTS: dict[str, Defect] = {
    d.name: d
    for d in (
        Defect(
            "expired", "EXPIRED", lambda ca, n: make_device(ca, n, not_before=now() - dt.timedelta(days=400), days=30)
        ),
        Defect(
            "not-yet-valid", "NOT_YET_VALID", lambda ca, n: make_device(ca, n, not_before=now() + dt.timedelta(days=2))
        ),
        Defect("weak-key", "WEAK_KEY", lambda ca, n: make_device(ca, n, key="rsa1024")),
        Defect("sha1", "WEAK_SIGNATURE", lambda ca, n: resign(make_device(ca, n), ca.key, hash_name="sha1")),
        Defect("v1", "LEGACY_V1_CERTIFICATE", lambda ca, n: resign(make_device(ca, n), ca.key, version1=True)),
        Defect("server-only", "NOT_CLIENT_AUTH", lambda ca, n: make_device(ca, n, eku=SERVER_AUTH_ONLY)),
        Defect("bad-cn", "INVALID_DEVICE_NAME", lambda ca, n: make_device(ca, n.replace("-", ".") + ".example.com")),
        Defect("wrong-issuer", None, _forged),
    )
}


# Not a defect of the certificate, which is sound: its issuer listed it in the CRL (`jitr simulate --revoked`).
REVOKED = Defect("revoked", "REVOKED_BY_ISSUER", lambda ca, n: make_device(ca, n))


@dataclass(frozen=True)
class FleetDevice:
    name: str
    issued: Issued
    defect: Defect | None = None

    @property
    def expected_reason(self) -> str | None:
        return self.defect.reason if self.defect else None


def make_fleet(
    ca: Issued,
    count: int,
    *,
    invalid_fraction: float = 0.0,
    defects: Sequence[str] = tuple(DEFECTS),
    prefix: str = "sensor-",
    seed: int | None = None,
    crl_urls: Sequence[str] = (),
) -> list[FleetDevice]:
    """`count` devices named `<prefix>00001`...; round(count x invalid_fraction) of them, chosen by `seed`, carry a
    defect from `defects` (in turn). The good ones name `crl_urls` as their CRL distribution points."""
    unknown = [d for d in defects if d not in DEFECTS]
    if unknown:
        raise ValueError(f"unknown defect(s) {', '.join(unknown)}; known: {', '.join(DEFECTS)}")
    if not 0.0 <= invalid_fraction <= 1.0:
        raise ValueError("the invalid fraction must be between 0 and 1")
    rng = random.Random(seed)  # noqa: S311 (picks which devices are defective; not a secret)
    width = max(5, len(str(count)))
    defective = set(rng.sample(range(count), round(count * invalid_fraction)))
    kinds = [DEFECTS[d] for d in defects]
    fleet: list[FleetDevice] = []
    made = 0
    for index in range(count):
        name = f"{prefix}{index + 1:0{width}d}"
        defect = None
        if index in defective and kinds:
            defect = kinds[made % len(kinds)]
            made += 1
        issued = defect.make(ca, name) if defect else make_device(ca, name, crl_urls=crl_urls)
        fleet.append(FleetDevice(name, issued, defect))
    return fleet


RevokedEntry = tuple[x509.Certificate | int, x509.ReasonFlags | None]


def make_crl(
    issuer: Issued,
    revoked: Sequence[RevokedEntry] = (),
    *,
    this_update: dt.datetime | None = None,
    next_update: dt.datetime | None = None,
    signer: CertificateIssuerPrivateKeyTypes | None = None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    number: int = 1,
    revoked_at: Mapping[int, dt.datetime] | None = None,
) -> x509.CertificateRevocationList:
    """A CRL from `issuer` listing `revoked` (a certificate or a serial number, with a reason or none), current for a
    day unless told otherwise; signed by `signer` to forge one under the issuer's name. `extensions` are added as
    (value, critical). Each entry's revocation date is `revoked_at[serial]`, else the CRL's thisUpdate."""
    start = this_update or (now() - dt.timedelta(minutes=5))
    dates = revoked_at or {}
    entries = []
    for item, reason in revoked:
        serial = item.serial_number if isinstance(item, x509.Certificate) else item
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(dates.get(serial, start))
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        entries.append(entry.build())
    builder = (
        x509.CertificateRevocationListBuilder(revoked_certificates=entries)  # all at once: adding one by one copies
        .issuer_name(issuer.certificate.subject)
        .last_update(start)
        .next_update(next_update or start + dt.timedelta(days=1))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    )
    for value, critical in extensions:
        builder = builder.add_extension(value, critical=critical)
    return builder.sign(signer or issuer.key, hashes.SHA256())
