"""`jitr pki`: a development PKI on disk, and the verification certificate AWS IoT asks for in DEFAULT mode.

jitr pki ca [--dir .dev-pki]
jitr pki devices --count N [--invalid-fraction F] [--defects a,b] [--out .dev-pki/devices]
jitr pki verification --ca CA.pem --ca-key CA.key --registration-code CODE [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from . import pki
from .arguments import certificates, private_key

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
