"""`jitr verify --crl FILE` / `--crl-url URL` / `--crl-from-certificate`: has the issuer revoked this certificate?
Asked of a verified chain, offline from CRL files or from sources fetched as the handler fetches them, and decided as
the handler decides it: revoked (any reason but certificateHold) is REJECTED REVOKED_BY_ISSUER, on hold is HELD
CERTIFICATE_ON_HOLD, a status no CRL could give is RETRY REVOCATION_UNKNOWN. Also the one line `jitr verify`,
`jitr explain` and `jitr doctor` print a revocation status in."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from pydantic import ValidationError

from jitr.outcomes import Outcome, Reason
from jitr.revocation import Revocation, Status, UnusableCrl, check, distribution_point_urls, parse_crl, read_crl
from jitr.revocation_sources import CrlSources
from jitr.settings import RevocationSource
from jitr_tools.arguments import UsageError, read_bytes

# what each certificate of a path is called, leaf first (the handler's words)
WHICH = ("the certificate", "its CA", "the CA above it")


def which(index: int) -> str:
    return WHICH[min(index, len(WHICH) - 1)]


def describe(revocation: Revocation) -> str:
    """A status in one line: what, from where, and the detail (for a listed certificate: the reason and the date)."""
    return f"{revocation.status} from {revocation.source or '(no source)'}: {revocation.detail}"


def crl_url(text: str) -> str:
    """A `--crl-url`: an http(s) or s3://bucket/key URL, as the configuration's `crl` takes."""
    parts = urlsplit(text)
    if parts.scheme in ("http", "https") and parts.hostname and not (parts.username or parts.password):
        return text
    if parts.scheme == "s3" and parts.netloc and parts.path.strip("/"):
        return text
    raise argparse.ArgumentTypeError(f"not an http(s):// or s3://bucket/key URL: {text!r}")


def crl_grace(text: str) -> int:
    """A `--crl-grace`: whole seconds, within what the configuration's `graceSeconds` takes."""
    try:
        seconds = int(text)
        RevocationSource(grace_seconds=seconds)
    except ValueError as exc:  # not a whole number, or out of the setting's bounds (pydantic's ValidationError)
        problem = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else "not a whole number of seconds"
        raise argparse.ArgumentTypeError(f"{problem}: {text!r}") from None
    return seconds


@dataclass(frozen=True)
class CrlFile:
    path: Path
    data: bytes
    issuer: x509.Name


def read_crl_file(path: Path) -> CrlFile:
    """A `--crl` file: a CRL, DER or PEM (whose issuer and signature are checked once the chain is known)."""
    data = read_bytes(path)
    try:
        return CrlFile(path, data, parse_crl(data).issuer)
    except UnusableCrl as exc:
        raise UsageError(f"--crl {path}: {exc}") from None
    except ValueError as exc:  # cryptography decodes the issuer on first access
        raise UsageError(f"--crl {path}: the CRL cannot be decoded ({exc})") from None


@dataclass(frozen=True)
class Answer:
    """One source's word on one certificate of the path (`index`: 0 the leaf, 1 its CA, ...)."""

    index: int
    revocation: Revocation

    def to_dict(self) -> dict[str, Any]:
        return {"of": which(self.index), **self.revocation.to_dict()}

    def line(self) -> str:
        return f"  revocation of {which(self.index)}: {describe(self.revocation)}"


def from_files(
    files: Sequence[CrlFile], chain: Sequence[x509.Certificate], at: datetime | None, grace: timedelta, skew: timedelta
) -> list[Answer]:
    """Each CRL asked about the certificate its issuer issued on the path; a CRL whose issuer issued none of them is
    read as the leaf's issuer's (and says whose it is instead)."""
    answers = []
    for crl_file in files:
        issuers = [i for i, certificate in enumerate(chain[1:], start=1) if certificate.subject == crl_file.issuer]
        position = issuers[0] if issuers else 1
        try:
            crl = read_crl(crl_file.data, chain[position], str(crl_file.path))
        except UnusableCrl as exc:
            answers.append(Answer(position - 1, Revocation(Status.UNKNOWN, str(crl_file.path), str(exc))))
            continue
        answers.append(Answer(position - 1, check(chain[position - 1], crl, at=at, grace=grace, skew=skew)))
    return answers


def certificate_source_urls(certificate: x509.Certificate, hosts: Sequence[str]) -> list[str]:
    """The certificate's own CRL distribution points on `hosts`; a UsageError saying which host to allow if none."""
    urls = distribution_point_urls(certificate)
    if not urls:
        raise UsageError("--crl-from-certificate: the certificate names no http(s) CRL distribution point")
    allowed = {host.lower() for host in hosts}
    usable = [url for url in urls if (urlsplit(url).hostname or "").lower() in allowed]
    if not usable:
        host = urlsplit(urls[0]).hostname
        raise UsageError(
            f"--crl-from-certificate: the certificate's CRL distribution point {urls[0]} is on host {host!r},"
            f" which jitr fetches only when allowed: add --allow-host {host}"
        )
    return usable


def from_sources(
    crls: CrlSources,
    source: RevocationSource,
    chain: Sequence[x509.Certificate],
    at: datetime | None,
    skew: timedelta,
) -> list[Answer]:
    """The leaf's issuer asked through `source`, as the handler asks a configured CA (every URL in order, the
    first answer kept)."""
    return [Answer(0, crls.status(chain[0], chain[1], source, at=at, skew=skew))]


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: Reason
    message: str


def verdict(answers: Sequence[Answer]) -> Verdict | None:
    """None when no source has a word against the path; else the handler's precedence: a certificate the issuer
    revoked is refused; else one on hold is held; else a status no source could give is retried. A certificate one
    source answers for is settled by it, as the handler takes the first answer of a CA's sources."""
    settled = {a.index for a in answers if a.revocation.status != Status.UNKNOWN}
    for status, outcome, reason in (
        (Status.REVOKED, Outcome.REJECTED, Reason.REVOKED_BY_ISSUER),
        (Status.ON_HOLD, Outcome.HELD, Reason.CERTIFICATE_ON_HOLD),
    ):
        for answer in answers:
            if answer.revocation.status == status:
                detail = f"{which(answer.index)}: {answer.revocation.detail} (from {answer.revocation.source})"
                return Verdict(outcome, reason, detail)
    unknown = [a for a in answers if a.revocation.status == Status.UNKNOWN and a.index not in settled]
    if unknown:
        causes = "; ".join(f"{which(a.index)}: {a.revocation.detail}" for a in unknown)
        return Verdict(
            Outcome.RETRY, Reason.REVOCATION_UNKNOWN, f"the issuer's revocation status could not be learned: {causes}"
        )
    return None
