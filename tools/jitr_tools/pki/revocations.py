"""The development CA's revocations and its CRL, on disk beside it (`.dev-pki/`), for `jitr pki revoke | release | crl`
and the CRL `jitr serve` publishes.

- `revocations.json`: the certificates the CA revoked (serial, subject, RFC 5280 reason name, date), a change counter,
  and the number of the last CRL issued;
- `issuing-ca.crl`: the last CRL issued (DER). A new one is issued, with the next CRL number, only when the list
  changed since, the validity asked for differs, or half of its validity has passed; otherwise the same CRL is handed
  out again, so its number says whether anything changed (the revocation sync skips a number it has read).

Changes are made under a lock file and written whole (a temporary file renamed over the old one), so `jitr pki revoke`
may run while `jitr serve` reads the list. Nothing here is for production keys.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from jitr_tools import pki

REVOCATIONS_FILE = "revocations.json"
CRL_FILE = "issuing-ca.crl"
LOCK_FILE = "revocations.lock"
CRL_PORT = 8884  # `jitr serve --crl-port`'s default: device certificates made before serve starts point here
CRL_PATH = f"/{CRL_FILE}"
DEFAULT_NEXT_UPDATE_HOURS = 24.0
MAX_NEXT_UPDATE_HOURS = 24.0 * 366
HOLD = x509.ReasonFlags.certificate_hold.value
UNSPECIFIED = x509.ReasonFlags.unspecified.value
# RFC 5280's reason names (5.3.1); removeFromCRL belongs to delta CRLs only, which the development CA does not issue
REASONS: dict[str, x509.ReasonFlags] = {
    flag.value: flag for flag in x509.ReasonFlags if flag is not x509.ReasonFlags.remove_from_crl
}


def crl_url(port: int = CRL_PORT) -> str:
    """Where `jitr serve` publishes the development CA's CRL."""
    return f"http://127.0.0.1:{port}{CRL_PATH}"


class RevocationError(ValueError):
    """A revocation the development CA refuses (the message says why, in one line)."""


@dataclass(frozen=True)
class Revoked:
    serial: int
    subject: str
    reason: str  # an RFC 5280 reason name; `unspecified` is written with no reason code, as RFC 5280 asks
    revoked_at: dt.datetime

    def to_dict(self) -> dict[str, str]:
        return {
            "serial": f"{self.serial:x}",
            "subject": self.subject,
            "reason": self.reason,
            "revokedAt": self.revoked_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, item: dict[str, Any]) -> Revoked:
        return cls(
            int(item["serial"], 16),
            str(item["subject"]),
            str(item["reason"]),
            dt.datetime.fromisoformat(item["revokedAt"]),
        )


@dataclass(frozen=True)
class IssuedCrl:
    der: bytes
    number: int
    entries: int
    next_update: dt.datetime
    issued_now: bool


class Revocations:
    """The revocation list of the development CA in `folder` (which must exist: `pki.development_ca` makes it)."""

    def __init__(self, folder: Path = pki.DEVELOPMENT_PKI) -> None:
        self.folder = folder
        self.ca = pki.read_issued(folder, pki.ISSUING_STEM)

    # -- the list ------------------------------------------------------------------------------------------------

    def revoke(self, certificate: x509.Certificate, reason: str = UNSPECIFIED) -> Revoked:
        """List `certificate` as revoked for `reason`. A hold may become a permanent revocation; a permanent one is
        never changed. Returns the entry (the earlier one when it is already listed for that reason)."""
        if reason not in REASONS:
            raise RevocationError(f"unknown reason {reason!r}; RFC 5280 names: {', '.join(REASONS)}")
        self._check_issued(certificate)
        with self._locked() as state:
            listed: Revoked | None = state["revoked"].get(certificate.serial_number)
            if listed is not None and listed.reason == reason:
                return listed
            if listed is not None and listed.reason != HOLD:
                raise RevocationError(
                    f"serial {certificate.serial_number:x} is already revoked ({listed.reason},"
                    f" {listed.revoked_at:%Y-%m-%d}); a revocation is permanent"
                )
            entry = Revoked(certificate.serial_number, certificate.subject.rfc4514_string(), reason, pki.now())
            state["revoked"][entry.serial] = entry
            state["changes"] += 1
            return entry

    def release(self, certificate: x509.Certificate) -> Revoked:
        """Lift a certificateHold: the next CRL no longer lists the certificate. Returns the entry removed."""
        self._check_issued(certificate)
        with self._locked() as state:
            listed: Revoked | None = state["revoked"].get(certificate.serial_number)
            if listed is None:
                raise RevocationError(f"serial {certificate.serial_number:x} is not on the development CA's list")
            if listed.reason != HOLD:
                raise RevocationError(
                    f"serial {certificate.serial_number:x} is revoked ({listed.reason}), not on hold: only a"
                    " certificateHold is released; a revocation is permanent"
                )
            del state["revoked"][listed.serial]
            state["changes"] += 1
            return listed

    def listed(self) -> list[Revoked]:
        return sorted(self._read()["revoked"].values(), key=lambda r: r.revoked_at)

    def _check_issued(self, certificate: x509.Certificate) -> None:
        try:
            certificate.verify_directly_issued_by(self.ca.certificate)
        except (ValueError, TypeError, InvalidSignature):
            issuer = certificate.issuer.rfc4514_string()
            raise RevocationError(
                f"the certificate (issuer {issuer!r}) was not issued by the development CA in {self.folder}"
            ) from None

    # -- the CRL -------------------------------------------------------------------------------------------------

    def crl(self, next_update_hours: float = DEFAULT_NEXT_UPDATE_HOURS) -> IssuedCrl:
        """The CA's current CRL: the last one issued while it still says what the list says, else a new one with the
        next CRL number, valid for `next_update_hours`."""
        with self._locked() as state:
            last = self._last_crl(state, next_update_hours)
            if last is not None:
                return last
            start = pki.now()  # after every revocation it lists (the handler allows clocks a few minutes apart)
            number = state["crlNumber"] + 1
            entries = sorted(state["revoked"].values(), key=lambda r: r.serial)
            crl = pki.make_crl(
                self.ca,
                [(r.serial, None if r.reason == UNSPECIFIED else REASONS[r.reason]) for r in entries],
                this_update=start,
                next_update=start + dt.timedelta(hours=next_update_hours),
                number=number,
                revoked_at={r.serial: r.revoked_at for r in entries},
            )
            der = crl.public_bytes(serialization.Encoding.DER)
            _write_whole(self.folder / CRL_FILE, der)
            state["crlNumber"] = number
            state["issued"] = {"changes": state["changes"], "hours": next_update_hours}
            assert crl.next_update_utc is not None
            return IssuedCrl(der, number, len(entries), crl.next_update_utc, issued_now=True)

    def _last_crl(self, state: dict[str, Any], next_update_hours: float) -> IssuedCrl | None:
        path = self.folder / CRL_FILE
        if state.get("issued") != {"changes": state["changes"], "hours": next_update_hours} or not path.exists():
            return None
        der = path.read_bytes()
        try:
            crl = x509.load_der_x509_crl(der)
        except ValueError:
            return None
        last, next_update = crl.last_update_utc, crl.next_update_utc
        if next_update is None or pki.now() >= last + (next_update - last) / 2:
            return None
        return IssuedCrl(der, state["crlNumber"], len(crl), next_update, issued_now=False)

    # -- on disk -------------------------------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        path = self.folder / REVOCATIONS_FILE
        try:
            data = json.loads(path.read_bytes()) if path.exists() else {}
            revoked = [Revoked.from_dict(item) for item in data.get("revoked", [])]
            return {
                "revoked": {r.serial: r for r in revoked},
                "changes": int(data.get("changes", 0)),
                "crlNumber": int(data.get("crlNumber", 0)),
                "issued": data.get("issued"),
            }
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            raise RevocationError(f"{path}: not a revocation list jitr wrote ({type(exc).__name__})") from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The state, read and written back under the lock (written only when the block ends without raising)."""
        with (self.folder / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self._read()
                yield state
                revoked = sorted(state["revoked"].values(), key=lambda r: r.revoked_at)
                text = {
                    "changes": state["changes"],
                    "crlNumber": state["crlNumber"],
                    "issued": state["issued"],
                    "revoked": [r.to_dict() for r in revoked],
                }
                _write_whole(self.folder / REVOCATIONS_FILE, (json.dumps(text, indent=2) + "\n").encode())
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _write_whole(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
