"""ListCertificatesByCA in pages, as AWS answers it: at most `pageSize` certificates (1 to 250) ordered by creation
date, newest first unless `ascendingOrder`, and a `nextMarker` while more remain (moto returns every certificate of
the CA in one answer and ignores all three).

Where AWS is silent, jitr assumes: a marker names the last certificate returned (its creation date and id), so it
stays valid however long it is kept and certificates created meanwhile do not shift the pages after it; the default
page size is 25, as AWS's other List operations document; a marker that is not one of these is
InvalidRequestException. The order is kept in an index per CA, rebuilt only when the account's certificates change.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import datetime

from moto.iot.models import FakeCertificate

from .errors import InvalidRequestException

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 250

SortKey = tuple[datetime, str]  # (creation date, certificate id): AWS's order, ties broken by id


@dataclass
class CertificatesByCa:
    """The certificate ids of each CA in creation order. moto's certificates live in one insertion-ordered dict and
    are only added or deleted, so its size and last key tell whether the index is still current."""

    fingerprint: tuple[int, str | None] = (0, None)
    keys: dict[str, list[SortKey]] = field(default_factory=dict)

    def of(self, certificates: dict[str, FakeCertificate], ca_certificate_id: str) -> list[SortKey]:
        fingerprint = (len(certificates), next(reversed(certificates), None))
        if fingerprint != self.fingerprint:
            keys: dict[str, list[SortKey]] = {}
            for certificate in certificates.values():
                if certificate.ca_certificate_id:
                    keys.setdefault(certificate.ca_certificate_id, []).append(_sort_key(certificate))
            for ordered in keys.values():
                ordered.sort()
            self.keys, self.fingerprint = keys, fingerprint
        return self.keys.get(ca_certificate_id, [])


def page(
    keys: list[SortKey], page_size: int | None, marker: str | None, ascending: bool
) -> tuple[list[str], str | None]:
    """The certificate ids of one page after `marker`, and the marker of the next page (None: this was the last)."""
    size = DEFAULT_PAGE_SIZE if page_size is None else page_size
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidRequestException(f"pageSize must be between 1 and {MAX_PAGE_SIZE}, got {size}")
    after = _decode(marker) if marker else None
    if ascending:
        start = 0 if after is None else bisect_right(keys, after)
        chosen, more = keys[start : start + size], start + size < len(keys)
    else:
        end = len(keys) if after is None else bisect_left(keys, after)
        chosen, more = keys[max(0, end - size) : end][::-1], end - size > 0
    return [certificate_id for _, certificate_id in chosen], (_encode(chosen[-1]) if more and chosen else None)


def _sort_key(certificate: FakeCertificate) -> SortKey:
    return certificate.creation_date, certificate.certificate_id


def _encode(key: SortKey) -> str:
    created, certificate_id = key
    return base64.b64encode(f"{created.isoformat()}|{certificate_id}".encode()).decode()


def _decode(marker: str) -> SortKey:
    try:
        created, certificate_id = base64.b64decode(marker, validate=True).decode().split("|")
        return datetime.fromisoformat(created), certificate_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestException(f"marker {marker[:40]!r} is not a marker this operation returned") from exc
