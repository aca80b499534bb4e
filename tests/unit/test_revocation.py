"""The issuer's CRL, read and checked as RFC 5280 6.3 asks: a CRL is trusted only when its issuer signed it, may sign
CRLs, it is current and covers the certificate; whatever jitr cannot process is UNKNOWN, never GOOD."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from jitr.revocation import MAX_CRL_BYTES, Status, UnusableCrl, check, distribution_point_urls, read_crl
from jitr_tools import pki

URL = "http://127.0.0.1:8080/crl/dev.crl"


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.make_ca("revocation test CA")


@pytest.fixture(scope="module")
def device(ca: pki.Issued) -> pki.Issued:
    return pki.make_device(ca, "rev-1", crl_urls=[URL])


def der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def status_of(device: pki.Issued, ca: pki.Issued, crl: x509.CertificateRevocationList, **options: object) -> Status:
    return check(device.certificate, read_crl(der(crl), ca.certificate, URL), **options).status  # type: ignore[arg-type]


# -- the answers ---


def test_a_certificate_the_crl_does_not_list_is_good(ca: pki.Issued, device: pki.Issued) -> None:
    other = pki.make_device(ca, "rev-2")
    answer = check(
        device.certificate, read_crl(der(pki.make_crl(ca, [(other.certificate, None)])), ca.certificate, URL)
    )
    assert (answer.status, answer.source) == (Status.GOOD, URL)


@pytest.mark.parametrize(
    ("reason", "name"),
    [
        (x509.ReasonFlags.key_compromise, "keyCompromise"),
        (x509.ReasonFlags.cessation_of_operation, "cessationOfOperation"),
        (None, "unspecified"),
    ],
)
def test_a_listed_certificate_is_revoked_with_the_crls_reason_and_date(
    ca: pki.Issued, device: pki.Issued, reason: x509.ReasonFlags | None, name: str
) -> None:
    crl = pki.make_crl(ca, [(device.certificate, reason)])
    answer = check(device.certificate, read_crl(der(crl), ca.certificate, URL))
    assert (answer.status, answer.reason) == (Status.REVOKED, name)
    assert answer.revoked_at == crl[0].revocation_date_utc
    assert name in answer.detail


def test_a_certificate_on_hold_is_not_revoked(ca: pki.Issued, device: pki.Issued) -> None:
    crl = pki.make_crl(ca, [(device.certificate, x509.ReasonFlags.certificate_hold)])
    answer = check(device.certificate, read_crl(der(crl), ca.certificate, URL))
    assert (answer.status, answer.reason) == (Status.ON_HOLD, "certificateHold")


def test_a_pem_crl_is_read_too(ca: pki.Issued, device: pki.Issued) -> None:
    crl = pki.make_crl(ca, [(device.certificate, None)])
    pem = crl.public_bytes(serialization.Encoding.PEM)
    assert check(device.certificate, read_crl(pem, ca.certificate, URL)).status == Status.REVOKED


def test_a_hundred_thousand_entry_crl_is_indexed_by_serial(ca: pki.Issued, device: pki.Issued) -> None:
    serials: list[pki.RevokedEntry] = [(n, x509.ReasonFlags.superseded) for n in range(1, 100_001)]
    crl = read_crl(der(pki.make_crl(ca, [*serials, (device.certificate, None)])), ca.certificate, URL)
    assert len(crl) == 100_001
    assert check(device.certificate, crl).status == Status.REVOKED
    assert check(pki.make_device(ca, "rev-3").certificate, crl).status == Status.GOOD


# -- a CRL that is not the issuer's word ---


def test_a_crl_signed_by_another_key_is_unusable(ca: pki.Issued) -> None:
    forged = pki.make_crl(ca, signer=pki.new_key())
    with pytest.raises(UnusableCrl, match="signature is not the issuer's"):
        read_crl(der(forged), ca.certificate, URL)


def test_another_cas_crl_is_unusable(ca: pki.Issued) -> None:
    other = pki.make_ca("another CA")
    with pytest.raises(UnusableCrl, match="not by"):
        read_crl(der(pki.make_crl(other)), ca.certificate, URL)


def test_a_crl_from_an_issuer_whose_key_may_not_sign_crls_is_unusable() -> None:
    no_crl_sign = pki.make_ca("no cRLSign", key_usage=False)
    # keyUsage present without cRLSign: rebuild the CA with one
    key = no_crl_sign.key
    usage = x509.KeyUsage(True, False, False, False, False, True, False, False, False)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(no_crl_sign.certificate.subject)
        .issuer_name(no_crl_sign.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(no_crl_sign.certificate.not_valid_before_utc)
        .not_valid_after(no_crl_sign.certificate.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, pki.hashes.SHA256())  # type: ignore[arg-type]
    )
    issuer = pki.Issued(certificate, key)
    with pytest.raises(UnusableCrl, match="cRLSign"):
        read_crl(der(pki.make_crl(issuer)), certificate, URL)


@pytest.mark.parametrize("cut", [1, 10, 100])
def test_a_truncated_crl_is_unusable(ca: pki.Issued, cut: int) -> None:
    data = der(pki.make_crl(ca, [(n, None) for n in range(1, 20)]))
    with pytest.raises(UnusableCrl, match="cannot be decoded"):
        read_crl(data[:-cut], ca.certificate, URL)


def test_an_oversized_crl_is_refused_before_it_is_parsed(ca: pki.Issued) -> None:
    with pytest.raises(UnusableCrl, match="over the 1000-byte cap"):
        read_crl(b"\x30" + b"\x00" * 1000, ca.certificate, URL, max_bytes=1000)
    assert MAX_CRL_BYTES >= 8 * 1024 * 1024  # a 100,000-entry CRL fits the default


_FUZZ_CA = pki.make_ca("fuzzed CRLs' CA")
_FUZZ_DEVICE = pki.make_device(_FUZZ_CA, "fuzz-1", crl_urls=[URL])
_FUZZ_CRL = der(pki.make_crl(_FUZZ_CA, [(_FUZZ_DEVICE.certificate, x509.ReasonFlags.key_compromise), (7, None)]))


@given(st.lists(st.tuples(st.integers(0, len(_FUZZ_CRL) - 1), st.integers(0, 255)), min_size=1, max_size=4))
def test_a_damaged_crl_is_unusable_or_answers_never_a_crash(changes: list[tuple[int, int]]) -> None:
    data = bytearray(_FUZZ_CRL)
    for at, value in changes:
        data[at] = value
    try:
        crl = read_crl(bytes(data), _FUZZ_CA.certificate, URL)
    except UnusableCrl:
        return
    assert check(_FUZZ_DEVICE.certificate, crl).status in Status


# -- current: thisUpdate, nextUpdate and the grace, one second either side ---


@pytest.mark.parametrize(("past_next_update_s", "expected"), [(-1, Status.GOOD), (0, Status.GOOD), (1, Status.UNKNOWN)])
def test_a_crl_is_current_until_its_next_update_plus_the_grace(
    ca: pki.Issued, device: pki.Issued, past_next_update_s: int, expected: Status
) -> None:
    start = pki.now() - dt.timedelta(days=3)
    crl = pki.make_crl(ca, this_update=start, next_update=start + dt.timedelta(days=1))
    grace = dt.timedelta(hours=6)
    at = start + dt.timedelta(days=1) + grace + dt.timedelta(seconds=past_next_update_s)
    assert status_of(device, ca, crl, at=at, grace=grace) == expected


def test_a_stale_crl_says_so(ca: pki.Issued, device: pki.Issued) -> None:
    start = pki.now() - dt.timedelta(days=3)
    crl = read_crl(der(pki.make_crl(ca, this_update=start)), ca.certificate, URL)
    assert "stale" in check(device.certificate, crl).detail


def test_a_crl_from_the_future_is_unknown(ca: pki.Issued, device: pki.Issued) -> None:
    future = pki.make_crl(ca, this_update=pki.now() + dt.timedelta(hours=1))
    assert status_of(device, ca, future) == Status.UNKNOWN


# -- what jitr cannot process makes the status unknown, never good ---


def _idp(**fields: object) -> x509.IssuingDistributionPoint:
    base: dict[str, object] = {
        "full_name": None,
        "relative_name": None,
        "only_contains_user_certs": False,
        "only_contains_ca_certs": False,
        "only_some_reasons": None,
        "indirect_crl": False,
        "only_contains_attribute_certs": False,
    }
    return x509.IssuingDistributionPoint(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("extension", "critical", "message"),
    [
        (x509.DeltaCRLIndicator(1), True, "delta CRL"),
        (_idp(indirect_crl=True), True, "indirect CRL"),
        (_idp(only_some_reasons=frozenset({x509.ReasonFlags.key_compromise})), True, "only some"),
        (_idp(only_contains_attribute_certs=True), True, "attribute"),
        (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"), True, "critical"),
    ],
)
def test_a_crl_jitr_cannot_process_is_unusable(
    ca: pki.Issued, extension: x509.ExtensionType, critical: bool, message: str
) -> None:
    with pytest.raises(UnusableCrl, match=message):
        read_crl(der(pki.make_crl(ca, extensions=[(extension, critical)])), ca.certificate, URL)


def test_an_unknown_non_critical_extension_is_ignored(ca: pki.Issued, device: pki.Issued) -> None:
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.2"), b"\x05\x00")
    assert status_of(device, ca, pki.make_crl(ca, extensions=[(unknown, False)])) == Status.GOOD


def test_a_base_crl_naming_a_delta_cannot_say_good_but_can_say_revoked(ca: pki.Issued, device: pki.Issued) -> None:
    freshest = x509.FreshestCRL(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(URL + ".delta")], None, None, None)]
    )
    assert status_of(device, ca, pki.make_crl(ca, extensions=[(freshest, False)])) == Status.UNKNOWN
    listed = pki.make_crl(ca, [(device.certificate, x509.ReasonFlags.key_compromise)], extensions=[(freshest, False)])
    assert status_of(device, ca, listed) == Status.REVOKED


def test_the_crls_scope_must_cover_the_certificate(ca: pki.Issued, device: pki.Issued) -> None:
    ours = _idp(full_name=[x509.UniformResourceIdentifier(URL)], only_contains_user_certs=True)
    assert status_of(device, ca, pki.make_crl(ca, extensions=[(ours, True)])) == Status.GOOD
    partition = _idp(full_name=[x509.UniformResourceIdentifier(URL + ".2")])
    assert status_of(device, ca, pki.make_crl(ca, extensions=[(partition, True)])) == Status.UNKNOWN
    only_cas = _idp(only_contains_ca_certs=True)
    assert status_of(device, ca, pki.make_crl(ca, extensions=[(only_cas, True)])) == Status.UNKNOWN
    intermediate = pki.make_ca("an intermediate", issuer=ca)
    only_users = pki.make_crl(ca, extensions=[(_idp(only_contains_user_certs=True), True)])
    assert status_of(intermediate, ca, only_users) == Status.UNKNOWN


def _entry(serial: int, extension: x509.ExtensionType, critical: bool) -> x509.RevokedCertificate:
    return (
        x509.RevokedCertificateBuilder()
        .serial_number(serial)
        .revocation_date(pki.now() - dt.timedelta(minutes=1))
        .add_extension(extension, critical=critical)
        .build()
    )


def _crl_with(ca: pki.Issued, *entries: x509.RevokedCertificate) -> bytes:
    start = pki.now() - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(start)
        .next_update(start + dt.timedelta(days=1))
    )
    for entry in entries:
        builder = builder.add_revoked_certificate(entry)
    return der(builder.sign(ca.key, pki.hashes.SHA256()))  # type: ignore[arg-type]


def test_an_entry_with_an_unknown_critical_extension_is_unknown(ca: pki.Issued, device: pki.Issued) -> None:
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.3"), b"\x05\x00")
    crl = read_crl(_crl_with(ca, _entry(device.certificate.serial_number, odd, True)), ca.certificate, URL)
    assert check(device.certificate, crl).status == Status.UNKNOWN
    assert check(pki.make_device(ca, "rev-4").certificate, crl).status == Status.GOOD


def test_remove_from_crl_in_a_complete_crl_is_unknown(ca: pki.Issued, device: pki.Issued) -> None:
    removed = x509.CRLReason(x509.ReasonFlags.remove_from_crl)
    crl = read_crl(_crl_with(ca, _entry(device.certificate.serial_number, removed, False)), ca.certificate, URL)
    assert check(device.certificate, crl).status == Status.UNKNOWN


def test_an_entry_naming_another_issuer_makes_the_crl_indirect(ca: pki.Issued, device: pki.Issued) -> None:
    issuer = x509.CertificateIssuer([x509.DirectoryName(pki.make_ca("elsewhere").certificate.subject)])
    with pytest.raises(UnusableCrl, match="indirect"):
        read_crl(_crl_with(ca, _entry(device.certificate.serial_number, issuer, True)), ca.certificate, URL)


def test_a_crl_does_not_answer_for_another_issuers_certificate(ca: pki.Issued) -> None:
    stranger = pki.make_device(pki.make_ca("a stranger CA"), "stranger")
    crl = read_crl(der(pki.make_crl(ca)), ca.certificate, URL)
    assert check(stranger.certificate, crl).status == Status.UNKNOWN


def test_the_certificates_distribution_points_are_read_in_order(ca: pki.Issued) -> None:
    urls = ["https://crl.example/b.crl", "http://crl.example/a.crl", "ldap://crl.example/c"]
    assert distribution_point_urls(pki.make_device(ca, "rev-5", crl_urls=urls).certificate) == urls[:2]


def test_a_crl_naming_another_key_of_the_issuer_is_unusable(ca: pki.Issued) -> None:
    start = pki.now() - dt.timedelta(minutes=5)
    other_key = pki.new_key()
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(start)
        .next_update(start + dt.timedelta(days=1))
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(other_key.public_key()), critical=False)
        .sign(ca.key, pki.hashes.SHA256())  # type: ignore[arg-type]
    )
    with pytest.raises(UnusableCrl, match="another key"):
        read_crl(der(crl), ca.certificate, URL)


def test_a_certificate_whose_distribution_point_is_split_by_reason_is_unknown(ca: pki.Issued) -> None:
    split = x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                [x509.UniformResourceIdentifier(URL)], None, frozenset({x509.ReasonFlags.key_compromise}), None
            )
        ]
    )
    device = pki.make_device(ca, "rev-6")
    rebuilt = (
        x509.CertificateBuilder()
        .subject_name(device.certificate.subject)
        .issuer_name(ca.certificate.subject)
        .public_key(device.key.public_key())
        .serial_number(device.certificate.serial_number)
        .not_valid_before(device.certificate.not_valid_before_utc)
        .not_valid_after(device.certificate.not_valid_after_utc)
        .add_extension(split, critical=False)
        .sign(ca.key, pki.hashes.SHA256())  # type: ignore[arg-type]
    )
    crl = read_crl(der(pki.make_crl(ca)), ca.certificate, URL)
    assert check(rebuilt, crl).status == Status.UNKNOWN


def test_a_crl_issued_within_the_clock_skew_answers(ca: pki.Issued, device: pki.Issued) -> None:
    ahead = pki.make_crl(ca, this_update=pki.now() + dt.timedelta(seconds=30))
    assert status_of(device, ca, ahead) == Status.UNKNOWN
    assert status_of(device, ca, ahead, skew=dt.timedelta(seconds=60)) == Status.GOOD
