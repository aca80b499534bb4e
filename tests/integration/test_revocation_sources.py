"""The issuer's CRL, fetched as a server in an AWS account must fetch a URL: only from allowed hosts and addresses,
no redirects, capped, timed out; from S3 with moto; kept until its nextUpdate; a failed source not asked again at
once. Every failure is UNKNOWN with its cause, never GOOD."""

from __future__ import annotations

import ipaddress
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from moto import mock_aws

from jitr.revocation import Status
from jitr.revocation_sources import CrlSources, address_refusal
from jitr.settings import RevocationSource
from jitr_tools import pki
from jitr_tools.pki.crl_server import CrlServer, Served


class TestServer(CrlServer):
    def url(self, path: str, host: str = "crl.test") -> str:
        return super().url(path, host)


@pytest.fixture
def server() -> Iterator[CrlServer]:
    with TestServer() as served:
        yield served


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.make_ca("sources test CA")


def der(crl: object) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)  # type: ignore[attr-defined, no-any-return]


def to_loopback(host: str, port: int) -> list[str]:
    """Every test host resolves to the test server's address (a rehearsal's 127.0.0.1)."""
    return ["127.0.0.1"]


def sources(**options: object) -> CrlSources:
    return CrlSources(loopback_ok=True, resolve=to_loopback, **options)  # type: ignore[arg-type]


def test_a_configured_crl_is_fetched_once_and_kept_until_its_next_update(server: CrlServer, ca: pki.Issued) -> None:
    device = pki.make_device(ca, "src-1")
    server.paths["/ca.crl"] = Served(body=der(pki.make_crl(ca, [(device.certificate, None)])))
    source = RevocationSource(crl=(server.url("/ca.crl"),))
    now = [time.time()]
    crls = sources(clock=lambda: now[0])
    assert crls.status(device.certificate, ca.certificate, source).status == Status.REVOKED
    assert crls.status(pki.make_device(ca, "src-2").certificate, ca.certificate, source).status == Status.GOOD
    assert server.hits["/ca.crl"] == 1  # kept
    assert server.hosts == [f"crl.test:{server.port}"]  # the name travels in the Host header, the address is pinned
    now[0] += 86_400 + 1  # past its nextUpdate (a day)
    crls.status(device.certificate, ca.certificate, source)
    assert server.hits["/ca.crl"] == 2


def test_a_certificates_own_distribution_point_is_read_only_on_an_allowed_host(
    server: CrlServer, ca: pki.Issued
) -> None:
    server.paths["/own.crl"] = Served(body=der(pki.make_crl(ca)))
    device = pki.make_device(ca, "src-3", crl_urls=[server.url("/own.crl", "crl.maker.example")])
    refused = sources().status(device.certificate, ca.certificate, RevocationSource())
    assert refused.status == Status.UNKNOWN
    assert server.hits == {}  # never asked
    allowed = RevocationSource(certificate_hosts=("crl.maker.example",))
    assert sources().status(device.certificate, ca.certificate, allowed).status == Status.GOOD


def test_a_second_source_answers_when_the_first_is_down(server: CrlServer, ca: pki.Issued) -> None:
    server.paths["/mirror.crl"] = Served(body=der(pki.make_crl(ca)))
    source = RevocationSource(crl=("http://crl.test:9/down.crl", server.url("/mirror.crl")))
    answer = sources().status(pki.make_device(ca, "src-4").certificate, ca.certificate, source)
    assert answer.status == Status.GOOD


@pytest.mark.parametrize(
    ("served", "cause"),
    [
        (Served(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}), "redirects are not followed"),
        (Served(500), "HTTP 500"),
        (Served(body=b"\x30" * 5000), "over the 4096-byte cap"),
        (Served(body=b"\x30" * 5000, headers={"Content-Length": "100"}), "cannot be decoded"),
        (Served(body=b"not a CRL"), "cannot be decoded"),
        (Served(body=b"x", delay_s=2.0), "did not answer"),
        (Served(body=b"x", headers={"Content-Encoding": "gzip"}), "encoded body"),
    ],
)
def test_a_source_that_gives_no_usable_crl_is_unknown_with_its_cause(
    server: CrlServer, ca: pki.Issued, served: Served, cause: str
) -> None:
    server.paths["/bad.crl"] = served
    source = RevocationSource(crl=(server.url("/bad.crl"),), max_bytes=4096, timeout_seconds=0.5)
    answer = sources().status(pki.make_device(ca, "src-5").certificate, ca.certificate, source)
    assert answer.status == Status.UNKNOWN
    assert cause in answer.detail


def test_a_crl_over_the_cap_is_refused_as_it_streams(server: CrlServer, ca: pki.Issued) -> None:
    big = der(pki.make_crl(ca, [(n, None) for n in range(1, 2000)]))
    server.paths["/big.crl"] = Served(body=big, headers={"Transfer-Encoding": "identity", "Content-Length": ""})
    source = RevocationSource(crl=(server.url("/big.crl"),), max_bytes=4096)
    answer = sources().status(pki.make_device(ca, "src-6").certificate, ca.certificate, source)
    assert (answer.status, "4096-byte cap" in answer.detail) == (Status.UNKNOWN, True)


def test_a_failed_source_is_not_asked_again_at_once(server: CrlServer, ca: pki.Issued) -> None:
    server.paths["/flaky.crl"] = Served(503)
    source = RevocationSource(crl=(server.url("/flaky.crl"),))
    now = [time.time()]
    crls = sources(clock=lambda: now[0])
    device = pki.make_device(ca, "src-7")
    for _ in range(3):
        assert crls.status(device.certificate, ca.certificate, source).status == Status.UNKNOWN
    assert server.hits["/flaky.crl"] == 1
    server.paths["/flaky.crl"] = Served(body=der(pki.make_crl(ca)))
    now[0] += 31
    assert crls.status(device.certificate, ca.certificate, source).status == Status.GOOD


def test_a_stale_or_forged_crl_is_unknown(server: CrlServer, ca: pki.Issued) -> None:
    start = pki.now() - pki.dt.timedelta(days=3)
    server.paths["/stale.crl"] = Served(body=der(pki.make_crl(ca, this_update=start)))
    server.paths["/forged.crl"] = Served(body=der(pki.make_crl(ca, signer=pki.new_key())))
    device = pki.make_device(ca, "src-8")
    for path, cause in (("/stale.crl", "stale"), ("/forged.crl", "signature")):
        answer = sources().status(device.certificate, ca.certificate, RevocationSource(crl=(server.url(path),)))
        assert answer.status == Status.UNKNOWN
        assert cause in answer.detail


def test_loopback_is_refused_outside_a_rehearsal(server: CrlServer, ca: pki.Issued) -> None:
    server.paths["/ca.crl"] = Served(body=der(pki.make_crl(ca)))
    source = RevocationSource(crl=(server.url("/ca.crl"),))
    answer = CrlSources(resolve=to_loopback).status(pki.make_device(ca, "src-9").certificate, ca.certificate, source)
    assert answer.status == Status.UNKNOWN
    assert "loopback" in answer.detail
    assert server.hits == {}


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # the instance metadata service
        "fd00:ec2::254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of it: `ipaddress` calls it global
        "::ffff:169.254.169.254",
        "169.254.170.2",  # container credentials
        "127.0.0.1",
        "::1",
        "0.0.0.0",  # noqa: S104
        "224.0.0.1",
        "100.64.0.1",
        "fe80::1",
    ],
)
def test_addresses_a_crl_is_never_fetched_from(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address), private_ok=True, loopback_ok=False) is not None


def test_private_addresses_only_for_a_configured_host() -> None:
    private = ipaddress.ip_address("10.0.4.5")
    assert address_refusal(private, private_ok=False, loopback_ok=False) is not None
    assert address_refusal(private, private_ok=True, loopback_ok=False) is None
    assert address_refusal(ipaddress.ip_address("93.184.216.34"), private_ok=False, loopback_ok=False) is None


def test_a_host_resolving_to_a_refused_address_is_never_connected_to(ca: pki.Issued) -> None:
    def metadata(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "169.254.169.254"]  # one good answer does not make a bad one safe

    source = RevocationSource(crl=("http://crl.rebinding.example/ca.crl",))
    answer = CrlSources(resolve=metadata).status(pki.make_device(ca, "src-10").certificate, ca.certificate, source)
    assert "169.254.169.254" in answer.detail


def test_only_http_https_and_s3(ca: pki.Issued) -> None:
    source = RevocationSource(crl=("file:///etc/passwd", "ftp://crl.test/ca.crl", "ldap://crl.test/ca"))
    answer = sources().status(pki.make_device(ca, "src-11").certificate, ca.certificate, source)
    assert answer.status == Status.UNKNOWN
    assert answer.detail.count("not an http(s) URL") == 3


# -- S3, as AWS Private CA publishes ---


@pytest.fixture
def s3() -> Iterator[object]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="pki-crls")
        yield client


def test_a_crl_in_s3_is_read_with_the_functions_role(s3: object, ca: pki.Issued) -> None:
    device = pki.make_device(ca, "src-12")
    s3.put_object(Bucket="pki-crls", Key="crl/ca.crl", Body=der(pki.make_crl(ca, [(device.certificate, None)])))  # type: ignore[attr-defined]
    crls = CrlSources(s3_client=lambda: s3)
    source = RevocationSource(crl=("s3://pki-crls/crl/ca.crl",))
    assert crls.status(device.certificate, ca.certificate, source).status == Status.REVOKED
    missing = RevocationSource(crl=("s3://pki-crls/crl/other.crl",))
    answer = crls.status(device.certificate, ca.certificate, missing)
    assert (answer.status, "NoSuchKey" in answer.detail) == (Status.UNKNOWN, True)
    s3.put_object(Bucket="pki-crls", Key="crl/big.crl", Body=der(pki.make_crl(ca, [(n, None) for n in range(1, 200)])))  # type: ignore[attr-defined]
    big = RevocationSource(crl=("s3://pki-crls/crl/big.crl",), max_bytes=1024)
    answer = CrlSources(s3_client=lambda: s3).status(device.certificate, ca.certificate, big)
    assert (answer.status, "cap" in answer.detail) == (Status.UNKNOWN, True)


def test_an_https_source_is_pinned_to_the_checked_address_and_verified_by_name(
    server: CrlServer, ca: pki.Issued, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an HTTPS CRL server for crl.test whose certificate a TLS CA trusted here issued
    tls_ca = pki.make_ca("CRL server TLS CA")
    tls = pki.make_device(tls_ca, "crl.test", san=["crl.test"], eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    (tmp_path / "server.pem").write_text(tls.pem + tls.key_pem)
    (tmp_path / "trusted.pem").write_text(tls_ca.pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "trusted.pem"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem")
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    server.paths["/ca.crl"] = Served(body=der(pki.make_crl(ca)))
    device = pki.make_device(ca, "src-13")
    # When it is fetched by name, then by a name its certificate does not carry
    good = RevocationSource(crl=(f"https://crl.test:{server.port}/ca.crl",))
    wrong = RevocationSource(crl=(f"https://crl.other.test:{server.port}/ca.crl",))
    # Then the first answers (TLS verified against the name, connected to the checked address), the second is refused
    assert sources().status(device.certificate, ca.certificate, good).status == Status.GOOD
    answer = sources().status(device.certificate, ca.certificate, wrong)
    assert answer.status == Status.UNKNOWN
    assert "crl.other.test" in answer.detail
