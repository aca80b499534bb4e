"""`jitr pki`: a development PKI on disk, and the verification certificate AWS IoT asks for in DEFAULT mode.

jitr pki ca [--dir .dev-pki]
jitr pki devices --count N [--invalid-fraction F] [--defects a,b] [--out .dev-pki/devices] [--crl-url URL]
jitr pki verification --ca CA.pem --ca-key CA.key --registration-code CODE [--out FILE]
jitr pki revoke CERT.pem [--reason keyCompromise|...|certificateHold]   (default: unspecified)
jitr pki release CERT.pem                                               (lifts a certificateHold)
jitr pki crl [--out FILE] [--next-update-hours N]                       (the development CA's CRL, DER)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from jitr_tools import pki
from jitr_tools.arguments import UsageError, certificates, number, private_key
from jitr_tools.pki import revocations as pki_revocations

REGISTRATION_CODE = re.compile(r"^[0-9a-f]{64}$")


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("pki", help="development CAs, device certificates, verification certificates")
    sub = parser.add_subparsers(title="pki commands")

    ca = sub.add_parser("ca", help="create (or show) the development root and issuing CA")
    ca.add_argument("--dir", type=Path, default=pki.DEVELOPMENT_PKI, help="folder (default: .dev-pki)")
    ca.set_defaults(run=_ca)

    devices = sub.add_parser("devices", help="device certificates in bulk, signed by the development issuing CA")
    devices.add_argument("--count", type=int, required=True)
    devices.add_argument("--invalid-fraction", type=float, default=0.0, help="share with a defect (default 0)")
    devices.add_argument("--defects", help="comma-separated, used in turn (default all): " + ", ".join(pki.DEFECTS))
    devices.add_argument("--prefix", default="sensor-", help="names are <prefix>00001... (default sensor-)")
    devices.add_argument("--seed", type=int, help="repeatable choice of the defective devices")
    devices.add_argument("--dir", type=Path, default=pki.DEVELOPMENT_PKI, help="the CA folder (default .dev-pki)")
    devices.add_argument("--out", type=Path, help="where to write (default <dir>/devices)")
    devices.add_argument(
        "--crl-url",
        default=pki_revocations.crl_url(),
        help="the CRL distribution point the good devices name (default: where jitr serve publishes the CA's CRL,"
        f" {pki_revocations.crl_url()}; '' for none)",
    )
    devices.set_defaults(run=_devices)

    verification = sub.add_parser(
        "verification", help="the certificate that proves you hold the CA's key (certificateMode DEFAULT)"
    )
    verification.add_argument("--ca", type=Path, required=True, help="the CA certificate PEM")
    verification.add_argument("--ca-key", type=Path, required=True, help="the CA's private key PEM (unencrypted)")
    verification.add_argument(
        "--registration-code",
        required=True,
        help="this account's code: aws iot get-registration-code --query registrationCode --output text",
    )
    verification.add_argument("--out", type=Path, help="write here instead of standard output")
    verification.set_defaults(run=_verification)
    _revocation_commands(sub)


def _revocation_commands(sub: Any) -> None:
    revoke = sub.add_parser("revoke", help="the development CA revokes a device certificate (its next CRL lists it)")
    revoke.add_argument("certificate", type=Path, metavar="CERT.pem", help="a device certificate the CA issued")
    revoke.add_argument(
        "--reason",
        default=pki_revocations.UNSPECIFIED,
        choices=list(pki_revocations.REASONS),
        metavar="REASON",
        help="RFC 5280's name: " + ", ".join(pki_revocations.REASONS) + " (default unspecified: no reason code)."
        " certificateHold suspends it until `jitr pki release`",
    )
    revoke.add_argument("--dir", type=Path, default=pki.DEVELOPMENT_PKI, help="the CA folder (default .dev-pki)")
    revoke.set_defaults(run=_revoke)

    release = sub.add_parser("release", help="lift a certificateHold (a revocation for any other reason is permanent)")
    release.add_argument("certificate", type=Path, metavar="CERT.pem", help="a device certificate on hold")
    release.add_argument("--dir", type=Path, default=pki.DEVELOPMENT_PKI, help="the CA folder (default .dev-pki)")
    release.set_defaults(run=_release)

    crl = sub.add_parser("crl", help="the development CA's current CRL (DER), signed by it")
    crl.add_argument("--out", type=Path, help=f"where to write it (default <dir>/{pki_revocations.CRL_FILE})")
    crl.add_argument(
        "--next-update-hours",
        type=number(minimum=0, exclusive=True, maximum=pki_revocations.MAX_NEXT_UPDATE_HOURS),
        default=pki_revocations.DEFAULT_NEXT_UPDATE_HOURS,
        help="how long the CRL is current (24)",
    )
    crl.add_argument("--dir", type=Path, default=pki.DEVELOPMENT_PKI, help="the CA folder (default .dev-pki)")
    crl.set_defaults(run=_crl)


def _ca(args: argparse.Namespace) -> int:
    issuing, created = pki.development_ca(args.dir)
    state = "created" if created else "exists"
    print(f"{state}: {args.dir / (pki.ISSUING_STEM + '.pem')} (issuing CA, signs devices; register this one)")
    print(f"        {args.dir / (pki.ROOT_STEM + '.pem')} (root CA)")
    print(f"        subject {issuing.certificate.subject.rfc4514_string()}")
    return 0


def _devices(args: argparse.Namespace) -> int:
    issuing, _ = pki.development_ca(args.dir)
    defects = tuple(args.defects.split(",")) if args.defects else tuple(pki.DEFECTS)
    try:
        fleet = pki.make_fleet(
            issuing,
            args.count,
            invalid_fraction=args.invalid_fraction,
            defects=defects,
            prefix=args.prefix,
            seed=args.seed,
            crl_urls=[args.crl_url] if args.crl_url else [],
        )
    except ValueError as exc:
        print(f"jitr: {exc}", file=sys.stderr)
        return 2
    out = args.out or args.dir / "devices"
    manifest = []
    for device in fleet:
        pki.write_issued(device.issued, out, device.name)
        manifest.append(
            {
                "name": device.name,
                "certificate": f"{device.name}.pem",
                "defect": device.defect.name if device.defect else None,
                "expectedReason": device.expected_reason,
            }
        )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    bad = sum(1 for d in fleet if d.defect)
    print(f"wrote {len(fleet)} devices ({bad} defective) to {out}/ (keys 0600; manifest.json says which and why)")
    return 0


def _verification(args: argparse.Namespace) -> int:
    code = args.registration_code.strip()
    if not REGISTRATION_CODE.match(code):
        print(f"jitr: the registration code must be 64 lower-case hex characters, got {code!r}", file=sys.stderr)
        return 2
    certificate = certificates(args.ca, "--ca")[0]  # the CA first, then the chain above it (as `jitr pki ca` writes)
    key = private_key(args.ca_key, "--ca-key")
    if key.public_key() != certificate.public_key():
        print(f"jitr: {args.ca_key} is not the key of {args.ca}", file=sys.stderr)
        return 2
    issued = pki.make_verification_certificate(pki.Issued(certificate, key), code)  # type: ignore[arg-type]
    if args.out:
        args.out.write_text(issued.pem)
        print(f"wrote {args.out}: CN={code}, signed by {certificate.subject.rfc4514_string()}")
    else:
        sys.stdout.write(issued.pem)
    return 0


def _revocations(folder: Path) -> pki_revocations.Revocations:
    if not (folder / f"{pki.ISSUING_STEM}.pem").exists():
        raise UsageError(f"no development CA in {folder}: `jitr pki ca --dir {folder}` makes one")
    return pki_revocations.Revocations(folder)


def _revoke(args: argparse.Namespace) -> int:
    revocations = _revocations(args.dir)
    certificate = certificates(args.certificate, "CERT.pem")[0]  # the device first, then its chain
    try:
        entry = revocations.revoke(certificate, args.reason)
    except pki_revocations.RevocationError as exc:
        raise UsageError(f"{args.certificate}: {exc}") from None
    print(
        f"revoked {entry.subject} (serial {entry.serial:x}, {entry.reason}, {entry.revoked_at:%Y-%m-%dT%H:%M:%SZ});"
        " the development CA's next CRL lists it (jitr pki crl; jitr serve publishes it at once)"
    )
    return 0


def _release(args: argparse.Namespace) -> int:
    revocations = _revocations(args.dir)
    certificate = certificates(args.certificate, "CERT.pem")[0]
    try:
        entry = revocations.release(certificate)
    except pki_revocations.RevocationError as exc:
        raise UsageError(f"{args.certificate}: {exc}") from None
    print(f"released {entry.subject} (serial {entry.serial:x}) from its hold; the next CRL no longer lists it")
    return 0


def _crl(args: argparse.Namespace) -> int:
    try:
        issued = _revocations(args.dir).crl(args.next_update_hours)
    except pki_revocations.RevocationError as exc:
        raise UsageError(str(exc)) from None
    out = args.out or args.dir / pki_revocations.CRL_FILE
    if out != args.dir / pki_revocations.CRL_FILE:
        out.write_bytes(issued.der)
    state = "new" if issued.issued_now else "unchanged, still current"
    print(
        f"wrote {out}: CRL #{issued.number} ({state}), {issued.entries} revoked, next update"
        f" {issued.next_update:%Y-%m-%dT%H:%M:%SZ}"
    )
    return 0
