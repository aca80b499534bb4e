"""What the demo, `jitr simulate` and the artifact test share: the account `cdk deploy` leaves behind, on the
embedded IoT, and the real handler run in-process with the settings the stack gives it."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO
from unittest import mock

from . import pki
from .lambda_context import LambdaContext

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "jitr-device.json"
TEMPLATE_NAME = "jitr-device"
DEVICE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/${iot:ClientId}"}],
}


def prepare_account(client: Any, ca: pki.Issued, account_id: str) -> str:
    """What `cdk deploy` leaves in an account, on the embedded IoT: the CA ACTIVE with auto-registration and no
    registrationConfig, the device policy, and the stored template. Returns the CA's id."""
    code = client.get_registration_code()["registrationCode"]
    ca_id = client.register_ca_certificate(
        caCertificate=ca.pem,
        verificationCertificate=pki.make_verification_certificate(ca, code).pem,
        setAsActive=True,
        allowAutoRegistration=True,
    )["certificateId"]
    client.create_policy(policyName="jitr-device", policyDocument=json.dumps(DEVICE_POLICY))
    client.create_provisioning_template(
        templateName=TEMPLATE_NAME,
        templateBody=TEMPLATE.read_text(),
        provisioningRoleArn=f"arn:aws:iam::{account_id}:role/jitr-provisioning",
        enabled=False,
    )
    return str(ca_id)


@contextlib.contextmanager
def handler_environment(
    region: str,
    log_stream: TextIO,
    *,
    function_name: str,
    quota: float | None = None,
    concurrency: int = 1,
) -> Iterator[Callable[[dict[str, Any]], Any]]:
    """The real handler, with the settings the stack gives it (pacing only when `quota` is given), its JSON log lines
    written to `log_stream`; X-Ray and EMF output off (no daemon here). Everything is put back on exit."""
    values = {
        "JITR_TEMPLATE_NAME": TEMPLATE_NAME,
        "AWS_DEFAULT_REGION": region,
        "POWERTOOLS_SERVICE_NAME": function_name,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "JITR_REJECTION_ACTION": "REVOKED",
        "JITR_REGISTER_THING_TPS": str(quota or ""),  # as the stack sets them: each environment paces its share
        "JITR_MAX_CONCURRENCY": str(concurrency),
    }
    from jitr import settings as jitr_settings
    from jitr_handlers import registration

    context = LambdaContext(function_name=function_name)
    log_handler = registration.logger.registered_handler
    with mock.patch.dict(os.environ, values), mock.patch.object(log_handler, "stream", log_stream):
        # (the stream is swapped directly: setStream would flush the old one, which may be closed)
        jitr_settings.current.cache_clear()
        registration._iot.cache_clear()
        try:
            yield lambda event: registration.handler(event, context)  # type: ignore[arg-type]
        finally:
            jitr_settings.current.cache_clear()
            registration._iot.cache_clear()
