"""Hostile certificates get a decision, never a crash: the DER of valid device certificates, mutated (hypothesis),
through the validator and `certificate_parameters`; and the three shapes cryptography parses lazily."""

from __future__ import annotations

import base64
import warnings
from dataclasses import dataclass

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

CA = pki.make_ca("hostile test CA")
DEVICES = (
    pki.make_device(CA, "sensor-1", san=["sensor-1.example"], eku=pki.CLIENT_AUTH),
    pki.make_device(CA, "sensor-2", key="rsa2048", organization="acme", country="DE", serial_number="SN-2"),
)
# A mutation: (which element of the TBS, what to do to it, bytes to use). Elements are the TBS's DER elements in
# document order, nested ones included (also inside extension values), so a mutated certificate stays well-formed
# DER outside the mutated element and gets past the outer parse, as a hostile certificate AWS returns would.
MUTATION = st.tuples(
    st.integers(0, 10_000), st.sampled_from(("content", "tag", "duplicate", "drop")), st.binary(max_size=6)
)


def pem(der: bytes) -> str:
    return "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der).decode() + "-----END CERTIFICATE-----\n"


@dataclass
class _Node:
    tag: int
    content: bytes
    children: list[_Node] | None = None  # parsed content (constructed, or an OCTET STRING that holds DER)

    def encode(self) -> bytes:
        if self.children is not None:
            return pki.der_element(self.tag, b"".join(child.encode() for child in self.children))
        return pki.der_element(self.tag, self.content)


def _parse(data: bytes) -> list[_Node] | None:
    """The DER elements in `data`, nested ones parsed too; None if `data` is not a run of DER elements."""
    nodes: list[_Node] = []
    at = 0
    while at < len(data):
        if at + 2 > len(data):
            return None
        tag, start, end = pki.der_read(data, at)
        if end > len(data):
            return None
        node = _Node(tag, data[start:end])
        if (tag & 0x20 or tag == 0x04) and node.content:
            node.children = _parse(node.content)
            if tag & 0x20 and node.children is None:
                return None
        nodes.append(node)
        at = end
    return nodes


def _places(nodes: list[_Node]) -> list[tuple[list[_Node], int]]:
    """Every element as (the list holding it, its index), in document order."""
    found: list[tuple[list[_Node], int]] = []
    for i, node in enumerate(nodes):
        found.append((nodes, i))
        if node.children:
            found += _places(node.children)
    return found


def mutated(device: int, mutations: list[tuple[int, str, bytes]], signed: bool) -> str:
    """A device certificate with elements of its TBS mutated, then (if `signed`) signed again by the CA: malformed
    inside, yet carrying the CA's valid signature."""
    parsed = _parse(DEVICES[device].certificate.tbs_certificate_bytes)
    assert parsed is not None
    (tbs,) = parsed
    for which, operation, data in mutations:
        places = _places([tbs])[1:]  # never the TBS itself
        parent, i = places[which % len(places)]
        node = parent[i]
        if operation == "content":
            parent[i] = _Node(node.tag, data)
        elif operation == "tag":
            parent[i] = _Node(data[0] if data else 0x05, node.content, node.children)
        elif operation == "duplicate":
            parent.insert(i, node)
        elif len(parent) > 1:
            del parent[i]
    der = tbs.encode()
    return pem(pki.sign_tbs(der, CA.key) if signed else der)


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
