"""Where the issuer's word comes from: its OCSP responder (asked first, where the configuration names one) and its
CRL, fetched from the sources the configuration names, and cached per execution environment.

Fetching URLs named inside certificates from inside an account is a server-side request forgery risk, so:
- only `http`, `https` and `s3` sources; a certificate's own CRL distribution point (or OCSP responder, with
  `ocspFromCertificate`) only when its host is one the configuration lists (`certificateHosts`), and a configured
  URL's host is allowed by being configured; an OCSP request is POSTed through the same fetcher as a CRL is read;
- the host is resolved once, every address it resolves to is checked, and the connection goes to a checked address
  (keeping the name for TLS and the Host header): loopback (the Lambda runtime API listens there), link-local (the
  instance metadata service), multicast, reserved, shared and unspecified addresses are refused, IPv4 addresses
  inside IPv6 ones are unwrapped first; private ranges only for a configured host (a CRL server in the VPC);
- no redirects, a size cap read as the body streams, a connect and read timeout and a deadline for the whole body;
- an `s3://bucket/key` object is read with the function's role, which may read that object only.

Each CRL, and each OCSP answer (per responder, issuer and serial), is kept until its nextUpdate, and at most
`cacheSeconds`; a source that failed is not asked again for `FAILURE_CACHE_SECONDS`, so a fleet connecting during an
outage does not wait on it event after event. An OCSP answer that is UNKNOWN falls back to the CRLs.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import urllib3
from cryptography import x509

from . import ocsp
from .revocation import Facts, IndexedCrl, Revocation, Status, UnusableCrl, check, read_crl
from .settings import RevocationSource

FAILURE_CACHE_SECONDS = 30.0
MAX_OCSP_ANSWERS = 10_000  # OCSP answers kept per environment (one per certificate asked about)
_METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: neither global nor private to `ipaddress`
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class SourceUnavailable(Exception):
    """A source gave no CRL: the message says why (the status it leads to is UNKNOWN)."""


def _resolve(host: str, port: int) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def _unwrapped(address: Address) -> Address:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4, Teredo), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour:
            return address.sixtofour
        if address.teredo:
            return address.teredo[1]
    return address


def address_refusal(address: Address, *, private_ok: bool, loopback_ok: bool) -> str | None:
    """Why jitr will not connect to `address`, or None."""
    inner = _unwrapped(address)
    if address in _METADATA or inner in _METADATA:
        return "the instance metadata service"
    if inner.is_loopback:
        return None if loopback_ok else "a loopback address (the Lambda runtime API listens there)"
    for kind, refused in (
        ("link-local", inner.is_link_local),
        ("multicast", inner.is_multicast),
        ("unspecified", inner.is_unspecified),
        ("reserved", inner.is_reserved),
        ("shared (100.64.0.0/10)", isinstance(inner, ipaddress.IPv4Address) and inner in _SHARED),
    ):
        if refused:
            return f"a {kind} address"
    if inner.is_global:
        return None
    return None if private_ok else "a private address (configure the host itself to reach a CRL server in the VPC)"


@dataclass(frozen=True)
class HttpPolicy:
    hosts: frozenset[str]  # hosts this source may fetch from
    private_hosts: frozenset[str]  # configured hosts: they may resolve to private addresses
    max_bytes: int
    timeout_s: float
    loopback_ok: bool = False
    what: str = "the CRL"  # what the body is, for the causes given


def fetch_http(
    url: str,
    policy: HttpPolicy,
    resolve: Resolver = _resolve,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """`method` (GET, or POST with `body` and `headers`) `url` under `policy`: the body of its 200 answer. Raises
    SourceUnavailable with the cause."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme not in ("http", "https") or parts.username or parts.password or not host:
        raise SourceUnavailable(f"{url!r} is not an http(s) URL jitr may fetch")
    if host not in policy.hosts:
        raise SourceUnavailable(f"host {host!r} is not one the configuration allows")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolve(host, port)]
    except (OSError, ValueError) as exc:
        raise SourceUnavailable(f"{host} cannot be resolved ({exc})") from None
    if not addresses:
        raise SourceUnavailable(f"{host} resolves to no address")
    for address in addresses:  # any refused answer refuses the host: DNS answers may change between look-ups
        refusal = address_refusal(address, private_ok=host in policy.private_hosts, loopback_ok=policy.loopback_ok)
        if refusal:
            raise SourceUnavailable(f"{host} resolves to {address}, {refusal}")
    request = _Request(method, body, {**(headers or {}), "Accept-Encoding": "identity"})
    return _send(request, parts.scheme, host, port, str(addresses[0]), parts, policy)


@dataclass(frozen=True)
class _Request:
    method: str
    body: bytes | None
    headers: dict[str, str]


def _send(request: _Request, scheme: str, host: str, port: int, address: str, parts: Any, policy: HttpPolicy) -> bytes:
    timeout = urllib3.Timeout(connect=policy.timeout_s, read=policy.timeout_s)
    pool: urllib3.HTTPConnectionPool = (
        urllib3.HTTPSConnectionPool(
            address, port, server_hostname=host, assert_hostname=host, timeout=timeout, retries=False, maxsize=1
        )
        if scheme == "https"
        else urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=1)
    )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        response = pool.urlopen(
            request.method,
            target,
            body=request.body,
            headers={**request.headers, "Host": host if parts.port is None else f"{host}:{port}"},
            redirect=False,
            preload_content=False,
            decode_content=False,
        )
    except urllib3.exceptions.HTTPError as exc:
        pool.close()
        raise SourceUnavailable(f"{host} did not answer ({type(exc).__name__}: {exc})") from None
    try:
        return _body(response, host, policy)
    finally:
        response.release_conn()
        pool.close()


def _body(response: Any, host: str, policy: HttpPolicy) -> bytes:
    if response.status != 200:
        redirect = " (redirects are not followed)" if 300 <= response.status < 400 else ""
        raise SourceUnavailable(f"{host} answered HTTP {response.status}{redirect}")
    if response.headers.get("Content-Encoding", "identity") != "identity":
        raise SourceUnavailable(f"{host} sent an encoded body")
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > policy.max_bytes:
        raise SourceUnavailable(f"{policy.what} is {declared} bytes, over the {policy.max_bytes}-byte cap")
    deadline = time.monotonic() + policy.timeout_s * 4
    body = bytearray()
    try:
        for chunk in response.stream(64 * 1024):
            body += chunk
            if len(body) > policy.max_bytes:
                raise SourceUnavailable(f"{policy.what} is over the {policy.max_bytes}-byte cap")
            if time.monotonic() > deadline:
                raise SourceUnavailable(f"{host} is too slow (the body took over {policy.timeout_s * 4:.0f} s)")
    except urllib3.exceptions.HTTPError as exc:
        raise SourceUnavailable(f"{host} broke off ({type(exc).__name__})") from None
    return bytes(body)


def fetch_s3(url: str, client: Any, max_bytes: int) -> bytes:
    """GetObject of `s3://bucket/key`; raises SourceUnavailable with the cause."""
    parts = urlsplit(url)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not bucket or not key:
        raise SourceUnavailable(f"{url!r} is not an s3://bucket/key URL")
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client.get_object(Bucket=bucket, Key=key)
        if int(response.get("ContentLength") or 0) > max_bytes:
            raise SourceUnavailable(f"the CRL is {response['ContentLength']} bytes, over the {max_bytes}-byte cap")
        body: bytes = response["Body"].read(max_bytes + 1)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        raise SourceUnavailable(f"S3 refused {url}: {code}") from None
    except BotoCoreError as exc:
        raise SourceUnavailable(f"S3 did not answer for {url} ({exc})") from None
    if len(body) > max_bytes:
        raise SourceUnavailable(f"the CRL is over the {max_bytes}-byte cap")
    return body


class CrlSources:
    """The CRLs of the configured sources, fetched on first need and kept per execution environment (one per
    handler; safe to share between threads)."""

    def __init__(
        self,
        *,
        loopback_ok: bool = False,
        s3_client: Callable[[], Any] | None = None,
        resolve: Resolver = _resolve,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.loopback_ok = loopback_ok
        self._s3_factory = s3_client
        self._s3: Any = None
        self.resolve = resolve
        self.clock = clock
        self._crls: dict[str, tuple[float, IndexedCrl]] = {}
        self._failures: dict[str, tuple[float, str]] = {}
        self._answers: dict[tuple[str, x509.Certificate, int], tuple[float, Revocation]] = {}  # OCSP, by certificate
        self._lock = threading.Lock()

    def urls(self, certificate: x509.Certificate, source: RevocationSource, facts: Facts | None = None) -> list[str]:
        """The configured CRLs, then the certificate's own distribution points on an allowed host."""
        if not source.certificate_hosts:
            return list(source.crl)
        allowed = {h.lower() for h in source.certificate_hosts}
        points = (facts or Facts.of(certificate)).urls
        own = [u for u in points if (urlsplit(u).hostname or "").lower() in allowed]
        return list(dict.fromkeys([*source.crl, *own]))

    def responders(self, source: RevocationSource, facts: Facts) -> list[str]:
        """The configured OCSP responders, then the certificate's own (ocspFromCertificate) on an allowed host."""
        own: list[str] = []
        if source.ocsp_from_certificate:
            allowed = {h.lower() for h in source.certificate_hosts}
            own = [u for u in facts.responders if (urlsplit(u).hostname or "").lower() in allowed]
        return list(dict.fromkeys([*source.ocsp, *own]))

    def status(
        self,
        certificate: x509.Certificate,
        issuer: x509.Certificate,
        source: RevocationSource,
        *,
        at: datetime | None = None,
        skew: timedelta = timedelta(0),
    ) -> Revocation:
        """The first answer a source gives (GOOD, REVOKED or ON_HOLD), the OCSP responders asked before the CRLs,
        else UNKNOWN with every source's cause."""
        facts = Facts.of(certificate)
        responders, urls = self.responders(source, facts), self.urls(certificate, source, facts)
        if not responders and not urls:
            return Revocation(
                Status.UNKNOWN, "", "no OCSP responder or CRL source is configured for this CA, and none it may read"
            )
        causes: list[str] = []
        for url in responders:
            answer = self.ocsp(url, certificate, issuer, source, at=at, skew=skew)
            if answer.status != Status.UNKNOWN:
                return answer
            causes.append(f"{url}: {answer.detail}")
        grace = timedelta(seconds=source.grace_seconds)
        for url in urls:
            try:
                crl = self.crl(url, issuer, source)
            except (SourceUnavailable, UnusableCrl) as exc:
                causes.append(f"{url}: {exc}")
                continue
            answer = check(certificate, crl, at=at, grace=grace, skew=skew, facts=facts)
            if answer.status != Status.UNKNOWN:
                return answer
            causes.append(f"{url}: {answer.detail}")
        return Revocation(Status.UNKNOWN, [*responders, *urls][0], "; ".join(causes))

    def ocsp(
        self,
        url: str,
        certificate: x509.Certificate,
        issuer: x509.Certificate,
        source: RevocationSource,
        *,
        at: datetime | None = None,
        skew: timedelta = timedelta(0),
    ) -> Revocation:
        """The answer of the responder at `url` about `certificate`, from this environment's cache while it is
        current (its nextUpdate, at most `cacheSeconds`); a responder that failed is not asked again at once."""
        now = self.clock()
        key = (url, issuer, certificate.serial_number)
        with self._lock:
            kept = self._answers.get(key)
            if kept and now < kept[0]:
                return kept[1]
            failed = self._failures.get(url)
            if failed and now < failed[0]:
                return Revocation(
                    Status.UNKNOWN, url, f"OCSP: {failed[1]} (not asked again for {FAILURE_CACHE_SECONDS:.0f} s)"
                )
        briefly = now + min(FAILURE_CACHE_SECONDS, source.cache_seconds)
        freshness = ocsp.Freshness(
            at=at or datetime.fromtimestamp(now, UTC),
            grace=timedelta(seconds=source.grace_seconds),
            skew=skew,
            max_age=timedelta(seconds=source.ocsp_max_age_seconds),
        )
        try:
            answer = ocsp.ask(url, certificate, issuer, self._poster(source), freshness)
        except SourceUnavailable as exc:
            with self._lock:
                self._failures[url] = (briefly, str(exc))
            return Revocation(Status.UNKNOWN, url, f"OCSP: {exc}")
        until = briefly
        if answer.fresh_until is not None:
            until = min(now + source.cache_seconds, answer.fresh_until.timestamp())
        with self._lock:
            if len(self._answers) >= MAX_OCSP_ANSWERS:  # the oldest kept answer makes room
                del self._answers[next(iter(self._answers))]
            self._answers[key] = (until, answer.revocation)
            self._failures.pop(url, None)
        return answer.revocation

    def crl(self, url: str, issuer: x509.Certificate, source: RevocationSource) -> IndexedCrl:
        """The CRL at `url`, from this environment's cache while it is current, else fetched and read again."""
        now = self.clock()
        with self._lock:
            kept = self._crls.get(url)
            if kept and now < kept[0]:
                return kept[1]
            failed = self._failures.get(url)
            if failed and now < failed[0]:
                raise SourceUnavailable(f"{failed[1]} (not asked again for {FAILURE_CACHE_SECONDS:.0f} s)")
        try:
            crl = read_crl(self._fetch(url, source), issuer, url, max_bytes=source.max_bytes)
        except (SourceUnavailable, UnusableCrl) as exc:
            with self._lock:
                self._failures[url] = (now + min(FAILURE_CACHE_SECONDS, source.cache_seconds), str(exc))
            raise
        until = now + source.cache_seconds
        if crl.next_update is not None:
            until = min(until, crl.next_update.timestamp())
        with self._lock:
            self._crls[url] = (until, crl)
            self._failures.pop(url, None)
        return crl

    def _fetch(self, url: str, source: RevocationSource) -> bytes:
        if url.startswith("s3://"):
            return fetch_s3(url, self._s3_client(), source.max_bytes)
        return fetch_http(url, self._policy(source, source.max_bytes, "the CRL"), self.resolve)

    def _poster(self, source: RevocationSource) -> Callable[[str, bytes], bytes]:
        """POSTs an OCSP request through the same fetcher, under the same policy, with the OCSP size cap."""
        policy = self._policy(source, min(source.max_bytes, ocsp.MAX_OCSP_BYTES), "the OCSP response")
        headers = {"Content-Type": ocsp.CONTENT_TYPE, "Accept": ocsp.ACCEPT}

        def post(url: str, body: bytes) -> bytes:
            return fetch_http(url, policy, self.resolve, method="POST", body=body, headers=headers)

        return post

    def _policy(self, source: RevocationSource, max_bytes: int, what: str) -> HttpPolicy:
        """Configured hosts (CRLs and OCSP responders) may resolve to private addresses; hosts a certificate may
        name (`certificateHosts`) only to global ones."""
        urls = [u for u in (*source.crl, *source.ocsp) if not u.startswith("s3://")]
        configured = {(urlsplit(u).hostname or "").lower() for u in urls}
        return HttpPolicy(
            hosts=frozenset(configured | {h.lower() for h in source.certificate_hosts}),
            private_hosts=frozenset(configured),
            max_bytes=max_bytes,
            timeout_s=source.timeout_seconds,
            loopback_ok=self.loopback_ok,
            what=what,
        )

    def _s3_client(self) -> Any:
        if self._s3 is None:
            if self._s3_factory is None:
                raise SourceUnavailable("no S3 client is configured")
            self._s3 = self._s3_factory()
        return self._s3


def now_utc() -> datetime:
    return datetime.now(UTC)
