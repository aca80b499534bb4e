"""Hostile device certificates: valid ones from a test CA, and their TBS mutated element by element, then signed again
by the CA (malformed inside, yet carrying the CA's valid signature), as a hostile certificate AWS returns would be."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from hypothesis import strategies as st

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
