"""`jitr serve` runs the handler behind the stack's intake: the same batch size, visibility timeout and settings."""

from __future__ import annotations

from jitr_cdk import handler, intake
from jitr_tools.endpoint import serve


def test_serve_wires_the_handler_as_the_stack_does() -> None:
    assert serve.BATCH_SIZE == intake.BATCH_SIZE
    assert serve.HANDLER_TIMEOUT_S == handler.TIMEOUT_S
    assert serve.VISIBILITY_TIMEOUT_S == handler.TIMEOUT_S * intake.VISIBILITY_FACTOR
