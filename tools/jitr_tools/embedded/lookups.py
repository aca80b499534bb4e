"""Lookups by key. moto scans every thing, certificate or attachment for these, which makes a 10,000-device rehearsal
quadratic; moto files things under their ARN, certificates under their id, and attachments under (target, policy)."""

from __future__ import annotations

from moto.iot.models import FakeThing, IoTBackend
from moto.utilities.utils import get_partition


def thing_arn(backend: IoTBackend, thing_name: str) -> str:
    """The key moto files a thing under (its ARN)."""
    return f"arn:{get_partition(backend.region_name)}:iot:{backend.region_name}:{backend.account_id}:thing/{thing_name}"


def find_thing(backend: IoTBackend, thing_name: str) -> FakeThing | None:
    thing = backend.things.get(thing_arn(backend, thing_name))
    return thing if thing is not None and thing.thing_name == thing_name else None


def attached_policy_names(backend: IoTBackend, target_arn: str) -> set[str]:
    """Names of the policies attached to `target_arn` (moto keys attachments by (target, policy name))."""
    return {name for name in backend.policies if (target_arn, name) in backend.principal_policies}
