"""How a rehearsal counts a fleet's power-up: an attempt closed before the device's certificate was registered is
dropped and tried again, not refused; a good device is lost only if it is still trying, unconnected, at the deadline."""

from __future__ import annotations

import pytest

from jitr_tools.embedded import Connect
from jitr_tools.endpoint.devices import Closed, PowerUp, Tally, closed_as


@pytest.mark.parametrize(
    ("status", "last", "expected"),
    [
        (None, Connect.THROTTLED, Closed.DROPPED),  # over the CONNECT or auto-registration rate: nothing registered
        (None, None, Closed.DROPPED),  # the client gave up waiting before the endpoint decided
        (None, Connect.CLOSED, Closed.REFUSED),  # no registered CA signed it: never registered
        ("PENDING_ACTIVATION", Connect.REGISTERED, Closed.PENDING),
        ("PENDING_ACTIVATION", Connect.PENDING, Closed.PENDING),
        ("ACTIVE", Connect.CLOSED, Closed.PENDING),  # no policy, iot:Connect denied: the deployment's to fix
        ("REVOKED", Connect.CLOSED, Closed.REFUSED),
        ("INACTIVE", Connect.CLOSED, Closed.REFUSED),
    ],
)
def test_what_an_attempt_closed_without_connack_means(
    status: str | None, last: Connect | None, expected: Closed
) -> None:
    assert closed_as(status, last) == expected


def test_a_good_device_is_lost_only_if_still_trying_at_the_deadline_and_dropped_attempts_are_counted_apart() -> None:
    good = [
        PowerUp("connected", attempts=4, dropped=2),  # dropped twice before its registration, then connected
        PowerUp("connected", attempts=1),
        PowerUp("undecided", attempts=9, dropped=1),  # still trying at the deadline: lost
        PowerUp("refused", attempts=3),  # a good device refused: wrong, counted apart from lost
    ]
    bad = [PowerUp("refused", attempts=2, dropped=1), PowerUp("refused", attempts=1)]

    assert Tally.of(good, bad) == Tally(
        good=4, connected=2, refused=3, good_refused=1, lost=1, dropped_attempts=4, dropped_devices=3
    )
