"""What the demo, `jitr simulate` and the artifact test share: the account `cdk deploy` leaves behind, on the
embedded IoT, and the real handler run in-process with the settings the stack gives it."""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Callable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any
from unittest import mock

from jitr.enrollment import PARTITION_KEY, SORT_KEY
from jitr.policy import account_arn, device_policy_document
from jitr.products import IMPLICIT
from jitr_config.model import SHIPPED_TEMPLATE
from jitr_tools import pki
from jitr_tools.rehearsing.lambda_context import LambdaContext

if TYPE_CHECKING:
    from jitr.settings import RevocationSource, Settings
    from jitr_config.model import JitrConfig
    from jitr_handlers.registration import DecisionHook

TEMPLATE = SHIPPED_TEMPLATE
TEMPLATE_NAME = "jitr-device"
DEVICE_POLICY = "jitr-device"  # the template's DevicePolicyName default


DECISION_TABLE = "jitr-decisions"
ENROLLMENT_TABLE = "jitr-enrollment"


def create_decision_table(dynamodb: Any, name: str = DECISION_TABLE) -> str:
    """The decision table as the stack makes it (its partition key and TTL attribute), on moto's DynamoDB."""
    from jitr_handlers.once import EXPIRY_ATTRIBUTE, KEY_ATTRIBUTE

    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": EXPIRY_ATTRIBUTE}
    )
    return name


def create_enrollment_table(dynamodb: Any, name: str = ENROLLMENT_TABLE) -> str:
    """The enrollment table as the stack makes it (infra/jitr_cdk/enrollment.py: partition key the product, sort key
    `<by>#<value>`), on moto's DynamoDB."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": SORT_KEY, "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def template_names(config: JitrConfig) -> dict[str, str]:
    """Each product's stored template, by product: its `templateName`, else (CloudFormation would generate one)
    `jitr-device` for a configuration without products, as before products, and `jitr-<product>` for a named one."""
    return {
        product.name: product.template_name
        or (TEMPLATE_NAME if product.implicit or product.name == IMPLICIT else f"jitr-{product.name}")
        for product in config.products
    }


def deploy_products(client: Any, config: JitrConfig, account_id: str) -> dict[str, str]:
    """What `cdk deploy` leaves in the account for the configuration's products (jitr mode): the device policy (one
    for every product: the stack makes one per product, all of the same document) and one stored template per
    product, its policy parameter defaulting to that policy. Returns each product's template name. The CAs are
    registered before, the tables after."""
    names = template_names(config)
    role = f"arn:aws:iam::{account_id}:role/jitr-provisioning"
    if any(product.device_policy_parameter for product in config.products):
        policy = device_policy_document(account_arn(client.meta.region_name, account_id))
        client.create_policy(policyName=DEVICE_POLICY, policyDocument=json.dumps(policy))
    for product in config.products:
        document = copy.deepcopy(product.template.document)
        if product.device_policy_parameter:
            document["Parameters"][product.device_policy_parameter]["Default"] = DEVICE_POLICY
        client.create_provisioning_template(
            templateName=names[product.name], templateBody=json.dumps(document), provisioningRoleArn=role
        )
    return names


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
    policy = device_policy_document(account_arn(client.meta.region_name, account_id))
    client.create_policy(policyName=DEVICE_POLICY, policyDocument=json.dumps(policy))
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
    log_stream: IO[str],
    *,
    function_name: str,
    quota: float | None = None,
    concurrency: int = 1,
    on_decision: DecisionHook | None = None,
    decision_table: str | None = None,
    settings: Settings | None = None,
    revocation: Mapping[str, RevocationSource] | None = None,
    event_bus: str | None = None,
) -> Iterator[Callable[[], Callable[[dict[str, Any]], Any]]]:
    """The real handler with the settings the stack gives it (pacing only when `quota` is given). Yields
    `new_environment()`: each call is one execution environment (its own Registration: adapter, template cache and
    share of the quota) and returns its Lambda handler. Log lines go to `log_stream`; X-Ray and EMF output are off
    (no daemon here); `on_decision` sees every decision; `revocation` gives CAs their CRL sources (served on
    127.0.0.1, so loopback is allowed); `event_bus` is where decisions are published. `settings` replaces those (a
    stack's, for `jitr serve`). Everything is put back on exit."""
    from jitr.settings import Settings
    from jitr_handlers.observability import logger
    from jitr_handlers.registration import Registration, entry_point

    settings = settings or Settings(
        template_name=TEMPLATE_NAME,
        rejection_action="REVOKED",
        register_thing_tps=quota or None,  # as the stack sets them: each environment paces its share
        max_concurrency=concurrency,
        decision_table=decision_table,
        revocation=dict(revocation or {}),
        revocation_allow_loopback=bool(revocation),
        event_bus=event_bus,
    )
    values = {
        "AWS_DEFAULT_REGION": region,
        "POWERTOOLS_SERVICE_NAME": function_name,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    context = LambdaContext(function_name=function_name)

    def new_environment() -> Callable[[dict[str, Any]], Any]:
        registration = Registration(settings, on_decision=on_decision)
        handler = entry_point(lambda: registration)
        return lambda event: handler(event, context)  # type: ignore[arg-type]

    # (the stream is swapped directly: setStream would flush the old one, which may be closed)
    with mock.patch.dict(os.environ, values), mock.patch.object(logger.registered_handler, "stream", log_stream):
        yield new_environment
