"""The closed vocabulary: every reason has exactly one outcome, and the documentation's blame table says the same."""

from __future__ import annotations

import re

from jitr.outcomes import NOT_THE_DEVICE, OUTCOME, Outcome, Reason, skipped_status
from tests.support import REPO


def test_every_reason_means_exactly_one_outcome() -> None:
    assert set(OUTCOME) == set(Reason)
    assert {OUTCOME[r] for r in NOT_THE_DEVICE} == {Outcome.REJECTED}


def test_statuses_jitr_does_not_provision_from_are_skipped_with_their_own_reason() -> None:
    assert skipped_status("REVOKED") == Reason.CERTIFICATE_REVOKED
    assert skipped_status("A_STATUS_AWS_ADDS_LATER") == Reason.CERTIFICATE_NOT_PENDING
    assert OUTCOME[skipped_status("INACTIVE")] == Outcome.SKIPPED


def test_the_documented_blame_table_matches_the_vocabulary() -> None:
    page = (REPO / "docs" / "decisions" / "index.md").read_text()
    table = page[page.index("## The blame rule") : page.index("## One thing, one owner")]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    documented: dict[str, str] = {}
    for row in rows:
        codes, _whose, certificate = (cell.strip() for cell in row.strip("|").split("|")[:3])
        for code in re.findall(r"`([A-Z0-9_]+)`", codes):
            if code not in {o.value for o in Outcome}:
                documented[code] = certificate
    decided = {r for r in Reason if OUTCOME[r] in (Outcome.REJECTED, Outcome.RETRY, Outcome.HELD)}
    assert set(documented) == {str(r) for r in decided}
    for reason in decided:
        if OUTCOME[reason] in (Outcome.RETRY, Outcome.HELD):
            assert "pending" in documented[reason], reason
        elif reason in NOT_THE_DEVICE:
            assert "left as it is" in documented[reason], reason
        else:
            assert documented[reason].startswith("revoked"), reason
