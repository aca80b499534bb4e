"""The Lambda context object, as far as the handler and Powertools read it: for local invocation and the tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LambdaContext:
    function_name: str = "jitr-registration"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:jitr-registration"
    aws_request_id: str = "5f0b3c52-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/jitr-registration"
    log_stream_name: str = "local"
    remaining_ms: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
