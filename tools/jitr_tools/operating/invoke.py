"""`jitr invoke`: run the handler as Lambda would, in a fresh process with the settings the stack gives it.

With `--asset DIR` the process sees only that folder and the standard library (`python -S`, no site-packages): the
built Lambda asset must hold everything the handler imports. Without it, the installed packages are used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Runs in the child: stdlib only until the asset (or site-packages) is on the path.
_RUNNER = r"""
import json, sys, time, uuid
asset = sys.argv[2]
if asset:
    sys.path.insert(0, asset)
else:
    import site
    site.main()
started = time.perf_counter()
from jitr_handlers.registration import handler
init_ms = (time.perf_counter() - started) * 1000

class Context:
    function_name = "jitr-invoke"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:jitr-invoke"
    aws_request_id = str(uuid.uuid4())
    log_group_name = "/aws/lambda/jitr-invoke"
    log_stream_name = "local"
    def get_remaining_time_in_millis(self):
        return 30000

event = json.load(open(sys.argv[1]))
try:
    response = handler(event, Context())
    result = {"response": response, "initMs": round(init_ms, 1)}
except Exception as exc:
    result = {"errorType": type(exc).__name__, "errorMessage": str(exc), "initMs": round(init_ms, 1)}
sys.stderr.flush()
print("\n" + json.dumps({"jitrInvokeResult": result}))
"""


class EventError(ValueError):
    """The event file is neither a registration event nor an SQS batch of them; the message says why."""


def check_event(event: Any) -> None:
    """An SQS batch (a non-empty `Records` list of messages with an id and a text body: the handler judges the bodies)
    or one registration event, checked with the handler's own model; raises `EventError`."""
    from pydantic import ValidationError

    from jitr.provisioning import RegistrationEvent

    if not isinstance(event, dict):
        raise EventError(f"a JSON object, got {type(event).__name__}")
    if "Records" in event:
        records = event["Records"]
        if not isinstance(records, list) or not records:
            raise EventError("Records must be a non-empty list of SQS messages")
        for i, record in enumerate(records):
            if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("messageId", "body")):
                raise EventError(f"Records[{i}] is not an SQS message with a text messageId and body")
        return
    try:
        RegistrationEvent.model_validate(event)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "event"
        raise EventError(f"not a registration event: {where}: {error['msg']}") from None


def stack_environment(
    *,
    template_name: str = "jitr-device",
    endpoint_url: str | None = None,
    region: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables `jitr_cdk.handler` gives the function (its defaults), plus the endpoint and region."""
    from jitr.settings import Settings

    environment = {
        "POWERTOOLS_SERVICE_NAME": "jitr",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon outside Lambda
        **Settings(template_name=template_name, endpoint_url=endpoint_url).to_environment(),
        "AWS_DEFAULT_REGION": region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    }
    if endpoint_url and not os.environ.get("AWS_ACCESS_KEY_ID") and not os.environ.get("AWS_PROFILE"):
        # a local endpoint (the embedded IoT) accepts any signature; boto3 still wants credentials to sign with
        environment.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"})
    environment.update(extra or {})
    return environment


def invoke(
    event_file: Path,
    environment: Mapping[str, str],
    *,
    asset: Path | None = None,
    timeout_s: float = 60.0,
) -> tuple[dict[str, Any], str]:
    """Run the handler once in a fresh interpreter. Returns (result, the handler's log output)."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("JITR_", "POWERTOOLS_", "PYTHON"))}
    child_env.update(environment)
    completed = subprocess.run(  # noqa: S603 (this interpreter, our own runner)
        [sys.executable, "-S", "-c", _RUNNER, str(event_file), str(asset.resolve()) if asset else ""],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    marker = '{"jitrInvokeResult": '
    lines = [line for line in completed.stdout.splitlines() if line.startswith(marker)]
    if not lines:
        raise RuntimeError(f"the handler process failed (exit {completed.returncode}):\n{completed.stderr[-4000:]}")
    logs = "\n".join(line for line in completed.stdout.splitlines() if not line.startswith(marker) and line.strip())
    return dict(json.loads(lines[-1])["jitrInvokeResult"]), logs + completed.stderr
