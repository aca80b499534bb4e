"""`jitr doctor`: is a deployed stack healthy? Read-only checks against the account, from the stack's outputs (the
stack by name, or `cdk-outputs.json`), one finding per line with what to do.

Checked: every configured CA (ACTIVE with auto-registration ENABLE, and in jitr mode no registrationConfig, the
trap that makes AWS provision without jitr's checks); the stored template (present, passing the `--jitr` checks); the
device policy and every policy, thing type, thing group and billing group the template names; with products
(JITR_PRODUCTS), each product's own: its stored template the one the stack stored for it (output ProductTemplates),
rendering with the product's extraParameters, and what it names; the enrollment table, when a product requires
enrollment (the stack's, readable, some device of each such product enrolled); each product's decision hook function
(a DryRun Invoke: it exists and may be invoked, and does not run); each topic rule
(enabled, on its CA's registered topic, delivering to the intake queue); the event source mapping (enabled); the
dead-letter queue (empty); certificates of each CA pending longer than a threshold; each CA's revocation sources in the
function's settings (JITR_REVOCATION: each CRL reachable, signed by the CA, current with the grace) and, with a
decision table, what its last revocation sync did.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509

from jitr.certificates import (
    BadCertificate,
    certificate_id,
    load_certificate,
)
from jitr.enrollment import Enrollments, EnrollmentUnavailable
from jitr.enrollment import Status as Enrolled
from jitr.revocation import IndexedCrl, UnusableCrl
from jitr.revocation_index import SYNC_PREFIX
from jitr.revocation_sources import CrlSources, SourceUnavailable
from jitr.settings import RevocationSource, Settings, SettingsError
from jitr.templates import Plan, TemplateError, check_template, render_template
from jitr.templates.fields import AWS_FIELDS, PREFIXES, neutral_parameters
from jitr.templates.intrinsics import referenced_parameters
from jitr_tools.iot.topics import REGISTERED_TOPIC, RuleSqlError, rule_topic, topic_matches
from jitr_tools.operating.explain import read_sync_state

# The stack outputs the checks read (the construct, infra/jitr_cdk/construct.py, writes them; a test holds the two
# together).
OUTPUT_KEYS = (
    "CaCertificateIds",
    "TemplateName",
    "DevicePolicyName",
    "FunctionName",
    "QueueUrl",
    "DeadLetterQueueUrl",
    "RuleNames",
    "EventSourceMappingId",
)


class Level(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    level: Level
    subject: str
    detail: str
    action: str = ""

    def line(self) -> str:
        return f"{self.level:<4} {self.subject}: {self.detail}" + (f" -> {self.action}" if self.action else "")


class StackOutputs(dict[str, str]):
    """The stack's outputs, by output key."""

    def list(self, key: str) -> list[str]:
        return [item for item in self.get(key, "").split(",") if item]


class OutputsError(ValueError):
    """The outputs file is not what `cdk deploy --outputs-file` writes; the message says what is wrong."""


def outputs_from_file(data: Any, stack: str | None) -> StackOutputs:
    """cdk-outputs.json, parsed: {"<stack>": {"<key>": "<value>", ...}}; `stack` picks one when it holds several."""
    if not isinstance(data, dict) or not data:
        raise OutputsError("not the outputs file `cdk deploy --outputs-file` writes (a JSON object of stacks)")
    if stack is None:
        if len(data) != 1:
            raise OutputsError(f"it holds several stacks ({', '.join(map(repr, sorted(data)))}): name one with --stack")
        stack = next(iter(data))
    if stack not in data:
        raise OutputsError(f"it holds no stack {stack!r} (it holds {', '.join(map(repr, sorted(data)))})")
    outputs = data[stack]
    if not isinstance(outputs, dict) or not all(isinstance(v, str) for v in outputs.values()):
        raise OutputsError(f"stack {stack!r} is not an object of output name -> text value")
    return StackOutputs(outputs)


def outputs_from_stack(cloudformation: Any, stack: str) -> StackOutputs:
    (description,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    return StackOutputs({o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])})


Clients = Mapping[str, Any]
_T = TypeVar("_T")  # "iot", "sqs", "lambda"


def diagnose(
    outputs: StackOutputs, clients: Clients, *, pending_after: timedelta, now: datetime | None = None
) -> list[Finding]:
    jitr_mode = bool(outputs.get("FunctionName"))
    findings: list[Finding] = []
    for check in (_cas, _template, _enrollment, _hooks, _rules, _mapping, _dead_letters, _pending, _revocation):
        try:
            findings += check(outputs, clients, jitr_mode, pending_after, now or datetime.now(UTC))
        except (ClientError, BotoCoreError) as exc:
            findings.append(Finding(Level.FAIL, check.__name__.strip("_"), f"could not be read: {exc}", "check access"))
    return findings


def _found(call: Callable[[], _T], missing: tuple[str, ...] = ("ResourceNotFoundException",)) -> _T | None:
    """`call()`, or None when AWS answers that the resource does not exist; any other error is raised."""
    try:
        return call()
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) not in missing:
            raise
        return None


def _cas(outputs: StackOutputs, clients: Clients, jitr_mode: bool, _: timedelta, __: datetime) -> list[Finding]:
    findings = []
    for ca_id in outputs.list("CaCertificateIds"):
        subject = f"CA {ca_id[:12]}"
        ca = _found(partial(clients["iot"].describe_ca_certificate, certificateId=ca_id))
        if ca is None:
            findings.append(Finding(Level.FAIL, subject, "not registered in this account", "deploy the stack again"))
            continue
        description = ca["certificateDescription"]
        status, auto = description.get("status"), description.get("autoRegistrationStatus")
        config = ca.get("registrationConfig") or {}
        if jitr_mode and (config.get("templateBody") or config.get("templateName")):
            findings.append(
                Finding(
                    Level.FAIL,
                    subject,
                    "has a registrationConfig: AWS provisions its devices by itself (JITP) and jitr never decides",
                    "register the CA without a registrationConfig: deploy the stack in jitr mode",
                )
            )
        if status == "ACTIVE" and auto == "ENABLE":
            findings.append(Finding(Level.OK, subject, "ACTIVE, auto-registration ENABLE"))
        elif status == "INACTIVE" and auto == "DISABLE":
            findings.append(
                Finding(Level.WARN, subject, "INACTIVE, auto-registration DISABLE: retired, no new device registers")
            )
        else:
            findings.append(
                Finding(
                    Level.FAIL,
                    subject,
                    f"{status}, auto-registration {auto}: devices it signed cannot register",
                    "set it ACTIVE with auto-registration ENABLE (or mark it retired in the configuration)",
                )
            )
    if not outputs.list("CaCertificateIds"):
        findings.append(Finding(Level.FAIL, "CAs", "the outputs name no CA", "is this a jitr stack's outputs?"))
    return findings


def _template(outputs: StackOutputs, clients: Clients, jitr_mode: bool, _: timedelta, __: datetime) -> list[Finding]:
    """The stored template and what it names; with products, each product's (`_products`)."""
    settings = _function_settings(outputs, clients)
    if isinstance(settings, Settings) and (settings.products or _product_templates(outputs)):
        return _products(settings, outputs, clients)
    name = outputs.get("TemplateName", "")
    deployed: Deployed | Finding = _deployed_parameters(settings)
    if not isinstance(deployed, Finding):
        given = (
            f"the function's extraParameters ({', '.join(sorted(deployed.parameters)) or 'none'})"
            if jitr_mode
            else "the certificate's fields alone (jitp)"
        )
        deployed = Deployed(deployed.parameters, deployed.extensions, given)
    findings, names = _stored_template(name, f"template {name}", deployed, jitr_mode, clients)
    return findings + _named_resources(names, outputs, clients)


@dataclass(frozen=True)
class Deployed:
    """What the function renders a template with besides the certificate's fields: its extraParameters, the
    extensions the certificate fills too, and how a finding names them."""

    parameters: dict[str, str]
    extensions: dict[str, str]
    given: str = ""


def _stored_template(
    name: str, subject: str, deployed: Deployed | Finding, jitr_mode: bool, clients: Clients
) -> tuple[list[Finding], list[tuple[str, str]]]:
    """The stored template `name`: present, passing the checks, rendering with what the function gives it; and the
    (kind, name) of each policy, thing type and group it names (none when it cannot be rendered)."""
    template = _found(partial(clients["iot"].describe_provisioning_template, templateName=name))
    if template is None:
        return [Finding(Level.FAIL, subject, "not found", "deploy the stack again")], []
    body = template["templateBody"]
    errors = [p for p in check_template(body, for_jitr=jitr_mode) if p.severity == "error"]
    if errors:
        return [Finding(Level.FAIL, subject, str(p), "fix the template, then deploy") for p in errors], []
    checks = "present, passes the " + ("--jitr " if jitr_mode else "") + "checks"
    if isinstance(deployed, Finding):
        return [Finding(Level.OK, subject, checks), deployed], []
    declared = json.loads(body).get("Parameters", {})
    # in jitp mode AWS gives its own fields alone; jitr's take their Defaults
    certificate = neutral_parameters(declared if jitr_mode else AWS_FIELDS & declared.keys(), deployed.extensions)
    try:
        plan = render_template(body, {**deployed.parameters, **certificate})
    except TemplateError as exc:
        problems = "; ".join(p.message for p in exc.problems)
        unrendered = Finding(
            Level.FAIL,
            subject,
            f"does not render with {deployed.given}: {problems}: RegisterThing fails for every device",
            "fix the template or extraParameters, then deploy",
        )
        return [unrendered], []
    return [Finding(Level.OK, subject, f"{checks}, renders with {deployed.given}")], _names_in(body, plan)


# -- products: each product's template, its enrollment table, its decision hook ---


def _product_templates(outputs: StackOutputs) -> dict[str, str]:
    """The stack's ProductTemplates output (product -> stored template name); empty without products."""
    try:
        names = json.loads(outputs.get("ProductTemplates") or "{}")
    except json.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {}


def _products(settings: Settings, outputs: StackOutputs, clients: Clients) -> list[Finding]:
    """Each product the function decides with (JITR_PRODUCTS) is one the stack stored a template for, that template;
    each template present, passing the --jitr checks and rendering with the product's extraParameters; and every
    policy, thing type and group they name present."""
    findings = _products_agree(settings, _product_templates(outputs))
    names: dict[tuple[str, str], list[str]] = {}
    for product in settings.products:
        given = f"product {product.name}'s extraParameters ({', '.join(sorted(product.extra_parameters)) or 'none'})"
        deployed = Deployed(dict(product.extra_parameters), dict(product.certificate_extensions), given)
        subject = f"template {product.template} of product {product.name}"
        found, named = _stored_template(product.template, subject, deployed, True, clients)
        findings += found
        for kind_name in named:
            names.setdefault(kind_name, []).append(product.name)
    return findings + _named_resources(list(names), outputs, clients, names)


def _products_agree(settings: Settings, stored: Mapping[str, str]) -> list[Finding]:
    """The function's products and their templates are the ones the stack stored (its ProductTemplates output)."""
    deciding = {p.name: p.template for p in settings.products}
    findings = []
    for name in sorted(stored.keys() | deciding.keys()):
        subject = f"product {name}"
        if name not in deciding:
            detail = (
                f"the stack stored template {stored[name]} for it, but the function's JITR_PRODUCTS has no such"
                " product: its devices are held NO_PRODUCT"
            )
        elif stored and name not in stored:
            detail = f"the function decides it with template {deciding[name]}, which the stack's outputs do not name"
        elif stored and stored[name] != deciding[name]:
            detail = f"the function decides it with template {deciding[name]}, the stack stored {stored[name]}"
        else:
            continue
        findings.append(Finding(Level.FAIL, subject, detail, "deploy the stack again"))
    return findings


def _enrollment(outputs: StackOutputs, clients: Clients, _: bool, __: timedelta, ___: datetime) -> list[Finding]:
    """The enrollment table, when a product requires enrollment: the one the stack made, readable, and listing some
    device of each such product (else every device of it is held NOT_ENROLLED)."""
    settings = _function_settings(outputs, clients)
    if not isinstance(settings, Settings):
        return []
    requiring = [p for p in settings.products if p.enrollment is not None]
    if not requiring:
        return []
    names = ", ".join(p.name for p in requiring)
    table, stack_table = settings.enrollment_table, outputs.get("EnrollmentTableName")
    if not table:
        detail = f"products {names} require enrollment but the function has no JITR_ENROLLMENT_TABLE"
        return [
            Finding(Level.FAIL, "enrollment table", f"{detail}: their devices are retried", "deploy the stack again")
        ]
    subject = f"enrollment table {table}"
    if stack_table and stack_table != table:
        detail = f"the function reads it, but the stack's enrollment table is {stack_table}"
        return [Finding(Level.FAIL, subject, detail, "deploy the stack again")]
    enrollments = Enrollments(table, clients["dynamodb"])
    findings = []
    for product in requiring:
        try:
            imported = next((e for e in enrollments.list(product.name) if e.status != Enrolled.NOT_ENROLLED), None)
        except EnrollmentUnavailable as exc:
            consequence = f"devices of products {names} are retried (RETRY ENROLLMENT_UNAVAILABLE)"
            return [Finding(Level.FAIL, subject, f"not readable: {exc}: {consequence}", "deploy the stack again")]
        if imported is None:
            findings.append(
                Finding(
                    Level.WARN,
                    f"enrollment of product {product.name}",
                    f"no device enrolled in {table}: every device of {product.name} is held NOT_ENROLLED",
                    f"import its manifests: jitr enroll import MANIFEST --product {product.name}",
                )
            )
        else:
            findings.append(Finding(Level.OK, f"enrollment of product {product.name}", f"readable in {table}"))
    return findings


def _hooks(outputs: StackOutputs, clients: Clients, _: bool, __: timedelta, ___: datetime) -> list[Finding]:
    """Each product's decision hook function exists and may be invoked: a DryRun Invoke, which runs nothing."""
    settings = _function_settings(outputs, clients)
    if not isinstance(settings, Settings):
        return []
    findings = []
    for product in settings.products:
        if product.hook is None:
            continue
        function, subject = product.hook.function, f"hook of product {product.name}"
        try:
            clients["lambda"].invoke(FunctionName=function, InvocationType="DryRun", Payload=b"{}")
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
            consequence = f"every device of {product.name} is retried (RETRY HOOK_FAILED)"
            if code == "ResourceNotFoundException":
                detail, action = f"its function {function} does not exist: {consequence}", "deploy the function"
            else:
                detail, action = f"its function {function} cannot be invoked ({code}): {consequence}", "check it"
            findings.append(Finding(Level.FAIL, subject, detail, f"{action}, or fix the product's hook.function"))
            continue
        findings.append(Finding(Level.OK, subject, f"function {function} reachable (a DryRun Invoke)"))
    return findings


def _deployed_parameters(settings: Settings | Finding | None) -> Deployed | Finding:
    """The parameters the deployed function renders the template with besides the certificate's fields, and the
    extensions the certificate fills too: the extraParameters and certificateExtensions the stack wrote into its
    environment (`Settings.to_environment`). In jitp mode (no function) AWS renders the template with the
    certificate's fields alone. A finding when the function or its settings cannot be read: then the template cannot
    be checked as the function renders it."""
    if settings is None:
        return Deployed({}, {})
    if isinstance(settings, Finding):
        return settings
    return Deployed(dict(settings.extra_parameters), dict(settings.certificate_extensions))


def _function_settings(outputs: StackOutputs, clients: Clients) -> Settings | Finding | None:
    """The deployed function's settings, read back from its environment; None in jitp mode (no function); a finding
    when the function or its settings cannot be read."""
    name = outputs.get("FunctionName")
    if not name:
        return None
    subject = f"function {name}"
    configuration = _found(partial(clients["lambda"].get_function_configuration, FunctionName=name))
    if configuration is None:
        return Finding(Level.FAIL, subject, "not found: nothing decides the registrations", "deploy the stack again")
    variables = (configuration.get("Environment") or {}).get("Variables") or {}
    try:
        return Settings.from_environment(variables)
    except SettingsError as exc:
        return Finding(Level.FAIL, subject, f"{exc}: it fails on every event", "deploy the stack again")


def _names_in(body: str, plan: Plan) -> list[tuple[str, str]]:
    """(kind, name) of every policy, thing type, billing group and thing group the rendered template names, except
    names computed from the certificate's fields (they differ per device and cannot be checked here)."""
    document = json.loads(body)
    names = []
    for resource in plan.resources:
        raw = document.get("Resources", {}).get(resource.logical_name, {}).get("Properties", {})
        for prop, kind in (
            ("PolicyName", "policy"),
            ("ThingTypeName", "thing type"),
            ("BillingGroup", "billing group"),
            ("ThingGroups", "thing group"),
        ):
            from_certificate = any(name.startswith(PREFIXES) for name in referenced_parameters(raw.get(prop)))
            if prop not in resource.properties or from_certificate:
                continue
            values = resource.properties[prop]
            names += [(kind, v) for v in (values if isinstance(values, list) else [values]) if isinstance(v, str)]
    return names


def _named_resources(
    names: list[tuple[str, str]],
    outputs: StackOutputs,
    clients: Clients,
    products: Mapping[tuple[str, str], list[str]] | None = None,
) -> list[Finding]:
    """The device policy, and every policy, thing type and group the template names, must exist. `products`: the
    products whose templates name each (with products)."""
    iot = clients["iot"]
    lookups: dict[str, Callable[[str], Any]] = {
        "policy": lambda n: iot.get_policy(policyName=n),
        "thing type": lambda n: iot.describe_thing_type(thingTypeName=n),
        "thing group": lambda n: iot.describe_thing_group(thingGroupName=n),
        "billing group": lambda n: iot.describe_billing_group(billingGroupName=n),
    }
    wanted: list[tuple[str, str]] = []
    for kind, name in [("policy", outputs.get("DevicePolicyName", "")), *names]:
        if name and (kind, name) not in wanted:
            wanted.append((kind, name))
    findings = []
    for kind, name in wanted:
        if _found(partial(lookups[kind], name)) is None:
            naming = (products or {}).get((kind, name))
            devices = f"every device of {', '.join(naming)}" if naming else "every device"
            detail = f"missing: RegisterThing fails for {devices}"
            findings.append(Finding(Level.FAIL, f"{kind} {name}", detail, f"create the {kind}"))
            continue
        findings.append(Finding(Level.OK, f"{kind} {name}", "present"))
    return findings


def _rules(outputs: StackOutputs, clients: Clients, jitr_mode: bool, _: timedelta, __: datetime) -> list[Finding]:
    """Each rule enabled, on a configured CA's registered topic (its SQL's FROM clause, with MQTT wildcards as AWS
    matches them) and delivering to the intake queue; and every configured CA on some rule's topic."""
    if not jitr_mode:
        return []
    topics = {ca_id: REGISTERED_TOPIC.format(ca_id=ca_id) for ca_id in outputs.list("CaCertificateIds")}
    uncovered = set(topics)
    findings = []
    for name in outputs.list("RuleNames"):
        # AWS IoT answers a rule that does not exist with UnauthorizedException
        missing = ("ResourceNotFoundException", "UnauthorizedException")
        found = _found(partial(clients["iot"].get_topic_rule, ruleName=name), missing)
        if found is None:
            findings.append(Finding(Level.FAIL, f"rule {name}", "not found", "deploy the stack again"))
            continue
        covered, finding = _rule(name, found["rule"], topics, outputs.get("QueueUrl", ""))
        uncovered -= covered
        findings.append(finding)
    findings += [
        Finding(
            Level.FAIL,
            f"CA {ca_id[:12]}",
            f"no rule reads its registered topic {topics[ca_id]}: its devices stay pending",
            "deploy the stack again",
        )
        for ca_id in sorted(uncovered)
    ]
    return findings


def _rule(name: str, rule: Mapping[str, Any], topics: Mapping[str, str], queue_url: str) -> tuple[set[str], Finding]:
    """The CAs whose registered topic the rule reads, and the rule's finding."""
    problems, covered = [], set()
    if rule.get("ruleDisabled"):
        problems.append("disabled")
    sql = str(rule.get("sql", ""))
    try:
        topic_filter = rule_topic(sql)
    except RuleSqlError as exc:
        problems.append(f"its SQL reads no topic ({exc}): {sql!r}")
    else:
        covered = {ca_id for ca_id, topic in topics.items() if topic_matches(topic_filter, topic)}
        if not covered:
            problems.append(f"reads {topic_filter!r}, not a configured CA's registered topic")
    if not any((a.get("sqs") or {}).get("queueUrl") == queue_url for a in rule.get("actions", [])):
        problems.append("does not deliver to the intake queue")
    if problems:
        return covered, Finding(Level.FAIL, f"rule {name}", "; ".join(problems), "deploy the stack again")
    return covered, Finding(Level.OK, f"rule {name}", "enabled, on its CA's topic, delivering to the intake queue")


def _mapping(outputs: StackOutputs, clients: Clients, jitr_mode: bool, _: timedelta, __: datetime) -> list[Finding]:
    uuid = outputs.get("EventSourceMappingId")
    if not jitr_mode or not uuid:
        return []
    state = clients["lambda"].get_event_source_mapping(UUID=uuid).get("State")
    if state == "Enabled":
        return [Finding(Level.OK, "event source mapping", "Enabled")]
    return [
        Finding(
            Level.FAIL,
            "event source mapping",
            f"{state}: events wait in the queue, nobody decides them",
            f"aws lambda update-event-source-mapping --uuid {uuid} --enabled",
        )
    ]


def _dead_letters(
    outputs: StackOutputs, clients: Clients, jitr_mode: bool, _: timedelta, __: datetime
) -> list[Finding]:
    url = outputs.get("DeadLetterQueueUrl")
    if not jitr_mode or not url:
        return []
    attributes = clients["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    depth = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    if depth == 0:
        return [Finding(Level.OK, "dead-letter queue", "empty")]
    return [
        Finding(
            Level.FAIL,
            "dead-letter queue",
            f"{depth} event(s) failed every delivery",
            "read the handler's log for their RETRY reasons, fix the cause, then redrive"
            " (docs/operating/index.md: Redriving)",
        )
    ]


def _pending(
    outputs: StackOutputs, clients: Clients, _: bool, pending_after: timedelta, now: datetime
) -> list[Finding]:
    findings = []
    older_than = now - pending_after
    for ca_id in outputs.list("CaCertificateIds"):
        stale: list[str] = []
        paginator = clients["iot"].get_paginator("list_certificates_by_ca")
        for page in paginator.paginate(caCertificateId=ca_id, PaginationConfig={"PageSize": 250}):
            for certificate in page.get("certificates", []):
                created = certificate["creationDate"]
                created = created if created.tzinfo else created.replace(tzinfo=UTC)
                if certificate["status"] == "PENDING_ACTIVATION" and created <= older_than:
                    stale.append(certificate["certificateId"])
        subject = f"pending under CA {ca_id[:12]}"
        minutes = int(pending_after.total_seconds() // 60)
        if stale:
            findings.append(
                Finding(
                    Level.WARN,
                    subject,
                    f"{len(stale)} certificate(s) pending for over {minutes} min, e.g. {stale[0]}",
                    f"jitr explain {stale[0]} says what jitr would decide and what it decided; the sweeper"
                    " re-delivers their events",
                )
            )
        else:
            findings.append(Finding(Level.OK, subject, f"none for over {minutes} min"))
    return findings


def _revocation(outputs: StackOutputs, clients: Clients, _: bool, __: timedelta, now: datetime) -> list[Finding]:
    """Each CA's revocation sources, as the deployed function reads them (loopback only where its settings allow
    it, as a rehearsal's do), and what the CA's last revocation sync did."""
    settings = _function_settings(outputs, clients)
    if not isinstance(settings, Settings):  # jitp mode, or already reported by the template's check
        return []
    crls = CrlSources(loopback_ok=settings.revocation_allow_loopback, s3_client=lambda: clients["s3"])
    findings = []
    for ca_id, source in settings.revocation.items():
        issuer = _revocation_issuer(ca_id, settings, clients)
        if issuer is None:
            findings.append(
                Finding(
                    Level.FAIL,
                    f"revocation of CA {ca_id[:12]}",
                    "JITR_REVOCATION names a CA that is neither registered in this account nor the trust root: its"
                    " CRL cannot be checked",
                    "key JITR_REVOCATION by the CA certificate's id, then deploy",
                )
            )
            continue
        findings += _crl_sources(ca_id, issuer, source, settings, crls, now)
        if settings.decision_table:
            findings.append(_sync_state(ca_id, settings.decision_table, clients))
    return findings


def _revocation_issuer(ca_id: str, settings: Settings, clients: Clients) -> x509.Certificate | None:
    """The certificate of the CA whose CRL `JITR_REVOCATION` configures: a registered CA, or the trust root."""
    try:
        if settings.trust_root_pem:
            root = load_certificate(settings.trust_root_pem)
            if certificate_id(root) == ca_id:
                return root
        ca = _found(partial(clients["iot"].describe_ca_certificate, certificateId=ca_id))
        return load_certificate(ca["certificateDescription"]["certificatePem"]) if ca else None
    except BadCertificate:
        return None


def _crl_sources(
    ca_id: str, issuer: x509.Certificate, source: RevocationSource, settings: Settings, crls: CrlSources, now: datetime
) -> list[Finding]:
    """One finding per configured CRL. One the CA's other sources stand in for is a warning; when none answers, the
    CA's devices are retried (or, with onUnknown: accept, provisioned unchecked)."""
    subject = f"CRL of CA {ca_id[:12]}"
    grace, skew = timedelta(seconds=source.grace_seconds), timedelta(seconds=settings.clock_skew_seconds)
    results: list[tuple[str, IndexedCrl | None, str | None]] = []
    for url in source.crl:
        try:
            crl = crls.crl(url, issuer, source)
        except SourceUnavailable as exc:
            results.append((url, None, f"unreachable: {exc}"))
        except UnusableCrl as exc:
            results.append((url, None, f"unusable: {exc}"))
        else:
            results.append((url, crl, _not_current(crl, now, grace, skew)))
    if not results:
        hosts = ", ".join(source.certificate_hosts) or "none"
        return [
            Finding(
                Level.WARN,
                subject,
                f"no CRL URL is configured, only certificates' own distribution points (on {hosts}): the revocation"
                " sync has no CRL to read",
                "add the CA's CRL to its revocation source's crl",
            )
        ]
    answering = any(found is not None and problem is None for _, found, problem in results)
    failing = Level.WARN if source.on_unknown == "accept" else Level.FAIL
    if source.on_unknown == "accept":
        consequence = "its devices are provisioned unchecked (onUnknown: accept) and the sync revokes nothing"
    else:
        consequence = "its devices stay pending (RETRY REVOCATION_UNKNOWN) and the sync revokes nothing"
    findings = []
    for url, found, problem in results:
        if found is not None and problem is None:
            findings.append(Finding(Level.OK, subject, f"{url}: {_crl_summary(found, grace)}"))
        elif answering:
            findings.append(Finding(Level.WARN, subject, f"{url}: {problem}", "the CA's other CRL source answers"))
        else:
            findings.append(Finding(failing, subject, f"{url}: {problem}", f"fix the source: until then {consequence}"))
    return findings


def _not_current(crl: IndexedCrl, now: datetime, grace: timedelta, skew: timedelta) -> str | None:
    if crl.this_update > now + skew:
        return f"not yet current: its thisUpdate ({crl.this_update:%Y-%m-%d %H:%M}Z) is in the future"
    if crl.next_update is None:
        return "unusable: it has no nextUpdate, so jitr cannot tell whether it is current"
    if crl.next_update + grace < now:
        seconds = int(grace.total_seconds())
        return f"stale: its nextUpdate ({crl.next_update:%Y-%m-%d %H:%M}Z) plus the {seconds} s grace has passed"
    return None


def _crl_summary(crl: IndexedCrl, grace: timedelta) -> str:
    number = f", CRL number {crl.number}" if crl.number is not None else ""
    next_update = f"{crl.next_update:%Y-%m-%d %H:%M}Z" if crl.next_update else "none"
    return (
        f"reachable, signed by the CA, current (thisUpdate {crl.this_update:%Y-%m-%d %H:%M}Z, nextUpdate"
        f" {next_update}, grace {int(grace.total_seconds())} s), {len(crl)} entries{number}"
    )


def _sync_state(ca_id: str, table: str, clients: Clients) -> Finding:
    subject = f"revocation sync of CA {ca_id[:12]}"
    try:
        state = read_sync_state(clients["dynamodb"], table, ca_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        return Finding(Level.FAIL, subject, f"the decision table {table} does not exist", "deploy the stack again")
    if state is None:
        return Finding(
            Level.WARN,
            subject,
            f"no sync has run yet (no {SYNC_PREFIX}{ca_id} item in {table}): devices revoked after they were"
            " provisioned keep connecting",
            "run `jitr revocation sync`, or wait for its schedule",
        )
    last = f"last sync at {state.get('lastSyncAt')}"
    if state.get("lastError"):
        return Finding(
            Level.FAIL,
            subject,
            f"{last} failed: {state['lastError']}",
            "read the sync function's log; until a sync succeeds, new revocations do not reach AWS IoT",
        )
    held = len(state.get("heldSerials") or [])
    return Finding(
        Level.OK,
        subject,
        f"{last} from {state.get('lastSource')}: CRL number {state.get('crlNumber')} of {state.get('crlThisUpdate')}"
        f" ({state.get('listed')} listed), revoked {state.get('revokedLastRun', 0)} then,"
        f" {state.get('revokedTotal', 0)} in all, {held} held",
    )


def report(findings: list[Finding]) -> dict[str, Any]:
    return {
        "healthy": not any(f.level == Level.FAIL for f in findings),
        "findings": [{**asdict(f), "level": str(f.level)} for f in findings],
    }
