"""Hostile certificates get a decision, never a crash: the DER of valid device certificates, mutated (hypothesis),
through the validator and `certificate_parameters`; and the three shapes cryptography parses lazily."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitr.certificates import (
    BadCertificate,
    CertificateRejected,
    Undecided,
    certificate_parameters,
    load_certificate,
    verify_device_certificate,
)
from jitr_tools import pki
from tests.hostile import CA, DEVICES, MUTATION, mutated, pem


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(DEVICES) - 1), st.lists(MUTATION, min_size=1, max_size=4), st.booleans())
def test_any_mutation_gets_a_verdict_from_the_validator(
    device: int, mutations: list[tuple[int, str, bytes]], signed: bool
) -> None:
    text = mutated(device, mutations, signed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cryptography warns about negative serial numbers
        refusal: CertificateRejected | None = None
        try:
            verify_device_certificate(text, CA.pem)
        except CertificateRejected as exc:
            refusal = exc
        except Undecided as exc:  # pragma: no cover - the CA is sound, so this would be a wrong verdict
            pytest.fail(f"a mutated device certificate blamed the CA: {exc}")
        if refusal is not None:
            assert refusal.reason
            assert refusal.message
        try:
            parameters = certificate_parameters(load_certificate(text))
        except BadCertificate:
            return
    assert all(isinstance(v, str) for v in parameters.values())


def _tbs_with(replace_at: int, element: bytes) -> bytes:
    children = pki.der_children(DEVICES[0].certificate.tbs_certificate_bytes)
    children[replace_at] = element
    return pki.der_element(0x30, b"".join(children))


def _extensions() -> list[bytes]:
    wrapper = pki.der_children(DEVICES[0].certificate.tbs_certificate_bytes)[-1]  # [3] { SEQUENCE OF Extension }
    return pki.der_children(pki.der_children(wrapper)[0])


def _with_extensions(extensions: list[bytes]) -> bytes:
    return _tbs_with(-1, pki.der_element(0xA3, pki.der_element(0x30, b"".join(extensions))))


def _undecodable_key_usage() -> bytes:
    extensions = []
    for extension in _extensions():
        if b"\x06\x03\x55\x1d\x0f" in extension:  # keyUsage: its value becomes a SEQUENCE where a BIT STRING goes
            oid_and_critical = pki.der_children(extension)[:-1]
            extension = pki.der_element(0x30, b"".join([*oid_and_critical, pki.der_element(0x04, b"\x30\x00")]))
        extensions.append(extension)
    return _with_extensions(extensions)


def _not_utf8_subject() -> bytes:
    common_name = pki.der_element(0x06, bytes.fromhex("550403")) + pki.der_element(0x0C, b"\xff\xfesensor")
    return _tbs_with(5, pki.der_element(0x30, pki.der_element(0x31, pki.der_element(0x30, common_name))))


@pytest.mark.parametrize(
    "tbs",
    [
        pytest.param(lambda: _with_extensions([*_extensions(), _extensions()[0]]), id="duplicate-extension"),
        pytest.param(_undecodable_key_usage, id="undecodable-extension-value"),
        pytest.param(_not_utf8_subject, id="subject-not-utf8"),
    ],
)
def test_signed_but_malformed_inside_is_refused_as_malformed(tbs: object) -> None:
    text = pem(pki.sign_tbs(tbs(), CA.key))  # type: ignore[operator]
    load_certificate(text)  # the outer structure loads: cryptography decodes the rest lazily
    with pytest.raises(CertificateRejected) as caught:
        verify_device_certificate(text, CA.pem)
    assert caught.value.reason == "MALFORMED_CERTIFICATE"
