"""Hostile certificates through the handler: whatever AWS IoT returns, however malformed inside, ends in a decision
with a reason; none crashes the handler, and none is provisioned unless it is a sound certificate."""

from __future__ import annotations

import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitr.certificates import BadCertificate, certificate_id, load_certificate
from jitr.outcomes import Outcome
from jitr_handlers.registration import current
from tests.hostile import DEVICES, MUTATION, mutated
from tests.integration.support import Fleet

DECIDED = {Outcome.REJECTED, Outcome.PROVISIONED, Outcome.RETRY, Outcome.SKIPPED, Outcome.ALREADY_ACTIVE}


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.integers(0, len(DEVICES) - 1), st.lists(MUTATION, min_size=1, max_size=4), st.booleans())
def test_any_certificate_aws_returns_gets_a_decision(
    hostile_fleet: Fleet, device: int, mutations: list[tuple[int, str, bytes]], signed: bool
) -> None:
    text = mutated(device, mutations, signed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cryptography warns about negative serial numbers
        try:
            cert_id = certificate_id(load_certificate(text))
        except BadCertificate:
            return  # AWS IoT's TLS handshake never registers what does not even load
        if cert_id in hostile_fleet.account.iot.backend.certificates:
            return
        event = hostile_fleet.account.iot.register_pending(text, hostile_fleet.ca_id)
        payload = hostile_fleet.account.events[-1]
        assert payload["certificateId"] == event.certificate_id
        decision = current().handle_one(payload)
    assert decision.outcome in DECIDED
    assert decision.outcome == Outcome.PROVISIONED or decision.reason, decision
    if decision.outcome != Outcome.PROVISIONED:
        assert hostile_fleet.status(cert_id) != "ACTIVE"
