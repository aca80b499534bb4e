"""What the command line accepts, checked where argparse reads it, and the files it reads: bad input is one line on
standard error and exit status 2, never a traceback.

argparse's own `type=` hook does the checking: a `ValueError` or `argparse.ArgumentTypeError` raised there becomes
"argument --name: message", which `Parser.error` prints as one line.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from jitr.certificates import BadCertificate, load_certificates


class UsageError(Exception):
    """Bad input the user can fix; the message is the whole answer."""


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block) and `jitr: ` in front."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"jitr: {message} (see {self.prog} --help)\n")


def number(
    *, minimum: float | None = None, exclusive: bool = False, maximum: float | None = None
) -> Callable[[str], float]:
    """A finite float within the bounds (`exclusive`: strictly above `minimum`)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if minimum is not None and (value <= minimum if exclusive else value < minimum):
            raise argparse.ArgumentTypeError(
                f"must be {'above' if exclusive else 'at least'} {minimum:g}, got {text!r}"
            )
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:g}, got {text!r}")
        return value

    return parse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text!r}")
    return value


def port(text: str) -> int:
    """A TCP port, or 0 for any free one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {text!r}")
    return value


def moment(text: str) -> datetime:
    """An ISO-8601 time; without a zone, UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time (e.g. 2026-05-01T12:00:00Z): {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def certificate_id_argument(text: str) -> str:
    """An AWS IoT certificate id: 64 hexadecimal digits (the SHA-256 of the certificate)."""
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise argparse.ArgumentTypeError(f"not a certificate id (64 hexadecimal digits): {text!r}")
    return text.lower()


def regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"not a regular expression ({exc}): {text!r}") from None
    return text


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None


def read_text(path: Path) -> str:
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start}); a template is a JSON file") from None


def read_json(path: Path, what: str) -> Any:
    data = read_bytes(path)
    try:
        return json.loads(data)
    except RecursionError:
        raise UsageError(f"{path}: not {what} (nested too deeply to read)") from None
    except ValueError as exc:  # not UTF-8, not JSON, or a number too long to convert
        raise UsageError(f"{path}: not {what} ({exc})") from None


def certificates(path: Path, option: str) -> list[x509.Certificate]:
    """The certificates in a PEM file, at least one."""
    try:
        found = load_certificates(read_bytes(path))
    except BadCertificate as exc:
        raise UsageError(f"{option} {path}: {exc}") from None
    if not found:
        raise UsageError(f"{option} {path}: no PEM certificate in it")
    return found


def private_key(path: Path, option: str) -> PrivateKeyTypes:
    """An unencrypted PEM private key."""
    try:
        return serialization.load_pem_private_key(read_bytes(path), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:  # not a key, encrypted, or of an unknown kind
        raise UsageError(f"{option} {path}: not an unencrypted PEM private key ({exc})") from None


def one_certificate(path: Path, option: str, *, ca: bool = False) -> bytes:
    """The PEM of the single certificate in `path`; with `ca`, one that is a CA certificate."""
    data = read_bytes(path)
    found = certificates(path, option)
    if len(found) > 1:
        hint = "pass the root alone" if ca else "pass the certificate alone"
        raise UsageError(f"{option} {path}: holds {len(found)} certificates, expected one certificate: {hint}")
    if ca:
        _require_ca(found[0], path, option)
    return data


def chain_file(path: Path, option: str, *, ca: bool = False) -> tuple[bytes, list[bytes]]:
    """A certificate and the chain after it, as chain files hold them (a device's `.pem` from `jitr pki devices`, a
    CA's file up to its root): the first certificate's PEM, and the PEM of each one after it. With `ca`, the first
    must be a CA certificate (it is the one registered with AWS IoT, as synth reads a caCertificates file)."""
    first, *rest = certificates(path, option)
    if ca:
        _require_ca(first, path, option)
    return first.public_bytes(serialization.Encoding.PEM), [c.public_bytes(serialization.Encoding.PEM) for c in rest]


def _require_ca(certificate: x509.Certificate, path: Path, option: str) -> None:
    if not _is_ca(certificate):
        raise UsageError(
            f"{option} {path}: not a CA certificate (no basicConstraints CA:TRUE); pass the CA certificate registered"
            " with AWS IoT, the one that signed the device certificates (first in its file: a full chain file starts"
            " with a device or server certificate)"
        )


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False
