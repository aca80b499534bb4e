"""Lookups by key. moto scans every thing, certificate or attachment for these, which makes a 10,000-device rehearsal
quadratic; moto files things under their ARN, certificates under their id, and attachments under (target, policy)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from moto.iot.models import FakeCertificate, FakeThing, IoTBackend
from moto.utilities.utils import get_partition

from jitr.certificates import certificate_parameters, load_certificate
from jitr_tools.iot.authorization import Connection, Thing


def thing_arn(backend: IoTBackend, thing_name: str) -> str:
    """The key moto files a thing under (its ARN)."""
    return f"arn:{get_partition(backend.region_name)}:iot:{backend.region_name}:{backend.account_id}:thing/{thing_name}"


def find_thing(backend: IoTBackend, thing_name: str) -> FakeThing | None:
    thing = backend.things.get(thing_arn(backend, thing_name))
    return thing if thing is not None and thing.thing_name == thing_name else None


def attached_policy_names(backend: IoTBackend, target_arn: str) -> set[str]:
    """Names of the policies attached to `target_arn` (moto keys attachments by (target, policy name))."""
    return {name for name in backend.policies if (target_arn, name) in backend.principal_policies}


def policies_of(
    backend: IoTBackend, target_arn: str, names: set[str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The (name, document) of each policy attached to `target_arn` (or of `names`), in name order."""
    chosen = attached_policy_names(backend, target_arn) if names is None else names
    return [(name, _document(backend.policies[name].document)) for name in sorted(chosen) if name in backend.policies]


def connection_of(
    backend: IoTBackend,
    certificate: FakeCertificate,
    client_id: str,
    fields: Mapping[str, str] | None = None,
    *,
    source_ip: str | None = None,
    domain_name: str | None = None,
) -> Connection:
    """What the policy variables resolve from for a device presenting `certificate` as `client_id`: the thing of the
    client id's name (its type and attributes) when it is attached to the certificate, the certificate (its subject
    fields as the caller decoded them, or from its PEM; the rest of it is decoded from the PEM only when a policy asks),
    and, when the caller knows them, the device's IP address and the domain name it connected to."""
    attached = certificate.arn in backend.extension.thing_principals.get(client_id, set())  # type: ignore[attr-defined]
    if fields is None:
        fields = certificate_parameters(load_certificate(certificate.certificate_pem))
    found = find_thing(backend, client_id) if attached else None
    thing = None
    if found is not None:
        type_name = found.thing_type.thing_type_name if found.thing_type is not None else None
        thing = Thing(client_id, type_name, {str(k): str(v) for k, v in (found.attributes or {}).items()})
    return Connection(
        client_id,
        client_id if attached else None,
        fields,
        thing=thing,
        certificate_pem=certificate.certificate_pem,
        source_ip=source_ip,
        domain_name=domain_name,
    )


def _document(document: str | dict[str, Any]) -> dict[str, Any]:
    """moto keeps a policy's document as the text it was given (typed as a dict)."""
    return json.loads(document) if isinstance(document, str) else dict(document)
