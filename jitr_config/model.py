"""The stack's configuration: read from cdk.json context (or the JSON file `jitr:configFile` names), checked at synth.

Every mistake is a `ConfigError` that names the setting and says how to fix it. Nothing here calls AWS: synth is a
function of the repository and its context values.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import ValidationError

from jitr.certificates import PROFILES, ca_problem, certificate_id
from jitr.enrollment import EnrollmentSettings
from jitr.hook import HookSettings
from jitr.pacing import AWS_DEFAULT_TPS, max_concurrency
from jitr.products import IMPLICIT, PRODUCT_NAME, RULES, SUBJECT_ATTRIBUTES, Product, extension_problem
from jitr.revocation_sources import address_refusal
from jitr.settings import EXISTING_THING_ACTIONS, REJECTION_ACTIONS, RevocationSource, Settings
from jitr.templates import Plan, Problem, Template, TemplateError, parse_template, render_template
from jitr.templates.fields import (
    AWS_FIELDS,
    EXTENSION_PREFIX,
    PREFIXES,
    certificate_fields,
    is_certificate_field,
    neutral_parameters,
)
from jitr.templates.intrinsics import referenced_parameters
from jitr.templates.limits import POLICY, TEMPLATE_NAME, THING

from . import selectors

CONTEXT_KEY = "jitr"
# templates/jitr-device.json of the repository, as the package carries it (used where a folder has no template)
SHIPPED_TEMPLATE = Path(__file__).resolve().parent / "templates" / "jitr-device.json"
CONFIG_FILE_KEY = "jitr:configFile"
CertificateMode = Literal["DEFAULT", "SNI_ONLY"]
ProvisioningMode = Literal["jitr", "jitp"]
CERTIFICATE_MODES: tuple[str, ...] = get_args(CertificateMode)
PROVISIONING_MODES: tuple[str, ...] = get_args(ProvisioningMode)
REGISTRATION_CODE = re.compile(r"^[0-9a-f]{64}$")
# What JITP fills in from the device certificate; any other template parameter needs a Default in jitp mode.
JITP_PARAMETERS = AWS_FIELDS
_HANDLER = Settings.model_fields
# Every setting's default, once. The handler's own settings take theirs from the handler's settings model.
DEFAULTS: dict[str, Any] = {
    "caCertificates": [],
    "certificateMode": "SNI_ONLY",
    "provisioningMode": "jitr",
    "template": "templates/jitr-device.json",
    "templateName": None,
    "devicePolicyParameter": "DevicePolicyName",
    "deviceProfile": _HANDLER["device_profile"].default,
    "cnPattern": None,
    "maxValidityDays": None,
    "trustRoot": None,
    "rejectionAction": _HANDLER["rejection_action"].default,
    "existingThing": _HANDLER["existing_thing"].default,
    "clockSkewSeconds": _HANDLER["clock_skew_seconds"].default,
    "decisionRetentionDays": _HANDLER["decision_retention_days"].default,
    "extraParameters": {},
    # extensions a template may read as Jitr::Certificate::Extension::<name>: name -> dotted OID (one set for the
    # stack today; each product will declare its own)
    "certificateExtensions": {},
    "existingResources": {},
    "registerThingTps": 10,
    "maxReceiveCount": 5,
    "alarmEmail": None,
    "rejectionAlarmThreshold": 20,
    "queueAgeAlarmSeconds": 600,
    "logRetentionDays": 30,
    "sweepIntervalMinutes": 15,
    "sweepMinAgeMinutes": 15,
    "sweepMaxPerRun": 500,
    # when and how fast the revocation sync runs (only deployed when a CA has `revocation`)
    "revocationSync": {"schedule": "rate(1 day)", "updateTps": 2},
    "developmentPki": ".dev-pki",
    # each final decision published to EventBridge: the account's default bus, or a bus's name or ARN
    "decisionEvents": {"enabled": True, "bus": "default"},
    # the product lines: name -> its caCertificates, select and any of the settings above a product may set
    "products": None,
}
KNOWN_KEYS = frozenset(DEFAULTS)
# A caCertificates entry written as an object: `pem` and, when not given, these
CA_CERTIFICATE_DEFAULTS: dict[str, Any] = {"verificationCertificate": None, "retired": False, "revocation": None}
CA_CERTIFICATE_KEYS = ("pem", *CA_CERTIFICATE_DEFAULTS)
TRUST_ROOT_KEYS = ("pem", "revocation")  # trustRoot written as an object
# What `existingResources` may list: resources a template names that the stack does not create.
EXISTING_RESOURCE_KINDS = {
    "policies": "policy",
    "thingTypes": "thing type",
    "thingGroups": "thing group",
    "billingGroups": "billing group",
}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ConfigError(ValueError):
    """The configuration cannot be deployed; the message names the setting."""


@dataclass(frozen=True)
class CaCertificate:
    pem: str
    certificate_id: str
    subject: str
    verification_pem: str | None = None
    retired: bool = False  # registered INACTIVE, auto-registration DISABLE: no new devices, provisioned ones unaffected
    revocation: RevocationSource | None = None  # where the CRL of the certificates it issued is read


@dataclass(frozen=True)
class ProductConfig:
    """One product line: its CAs, selector, template and rules, checked. A configuration without `products` has one,
    named "default", of every CA, with the stack's top-level settings."""

    name: str
    ca_certificate_ids: tuple[str, ...]
    select: dict[str, str]
    template: Template
    template_path: str
    template_name: str | None
    device_policy_parameter: str | None
    device_profile: str
    cn_pattern: str | None
    max_validity_days: int | None
    rejection_action: str
    existing_thing: str
    extra_parameters: dict[str, str]
    certificate_extensions: dict[str, str]
    enrollment: EnrollmentSettings | None = None
    hook: HookSettings | None = None
    implicit: bool = False  # the one product of a configuration that names none

    def handler_product(self, template_name: str) -> Product:
        """The product as the handler decides with it (its stored template named `template_name`)."""
        return Product(
            name=self.name,
            cas=self.ca_certificate_ids,
            select=self.select,
            template=template_name,
            enrollment=self.enrollment,
            hook=self.hook,
            **{rule: getattr(self, rule) for rule in RULES},
        )


@dataclass(frozen=True)
class RevocationSync:
    """When the revocation sync runs and how fast it may revoke."""

    schedule: str  # an EventBridge schedule expression: rate(...) or cron(...)
    update_tps: float  # its UpdateCertificate calls per second
    period_s: int  # the time between two runs (a cron schedule counts as a day)

    @property
    def alarm_period_s(self) -> int:
        """The window its alarms look at: one run, and at most a day (CloudWatch's longest alarm window)."""
        return min(self.period_s, SECONDS_PER_DAY)


@dataclass(frozen=True)
class JitrConfig:
    """The checked configuration. Every value comes from `load_config`; defaults live in DEFAULTS (and, for the
    handler's settings, in `jitr.settings.Settings`), nowhere else."""

    cas: tuple[CaCertificate, ...]
    certificate_mode: str
    provisioning_mode: str
    trust_root_pem: str | None
    register_thing_tps: int
    max_receive_count: int
    alarm_email: str | None
    rejection_alarm_threshold: int
    queue_age_alarm_seconds: int
    log_retention_days: int
    sweep_interval_minutes: int
    sweep_min_age_minutes: int
    sweep_max_per_run: int
    development_ca: bool
    existing_resources: dict[str, tuple[str, ...]]
    clock_skew_seconds: int
    decision_retention_days: int
    notes: tuple[str, ...] = field(default_factory=tuple)
    # issuer revocation: the sources of each CA (by certificate id: caCertificates' and the trust root's)
    revocation: dict[str, RevocationSource] = field(default_factory=dict)
    revocation_sync: RevocationSync | None = None  # set when `revocation` is
    event_bus: str | None = None  # where decisions are published (decisionEvents); None: not published
    products: tuple[ProductConfig, ...] = ()  # the product lines (one implicit product when none are configured)

    # The first product's template and rules below: the whole stack's when no products are configured.
    @property
    def template(self) -> Template:
        return self.products[0].template

    @property
    def template_path(self) -> str:
        return self.products[0].template_path

    @property
    def template_name(self) -> str | None:
        return self.products[0].template_name

    @property
    def device_policy_parameter(self) -> str | None:
        return self.products[0].device_policy_parameter

    @property
    def device_profile(self) -> str:
        return self.products[0].device_profile

    @property
    def cn_pattern(self) -> str | None:
        return self.products[0].cn_pattern

    @property
    def max_validity_days(self) -> int | None:
        return self.products[0].max_validity_days

    @property
    def rejection_action(self) -> str:
        return self.products[0].rejection_action

    @property
    def existing_thing(self) -> str:
        return self.products[0].existing_thing

    @property
    def extra_parameters(self) -> dict[str, str]:
        return self.products[0].extra_parameters

    @property
    def certificate_extensions(self) -> dict[str, str]:
        return self.products[0].certificate_extensions

    @property
    def enrollment(self) -> bool:
        """Whether some product requires enrollment (the stack then has an enrollment table)."""
        return any(p.enrollment for p in self.products)

    @property
    def hook_budget_seconds(self) -> float:
        """The longest any product's decision hook may take (0: no product has one)."""
        return max((p.hook.timeout_seconds for p in self.products if p.hook), default=0.0)

    @property
    def implicit_products(self) -> bool:
        """True when the configuration names no products: the handler decides every CA with its top-level settings."""
        return all(p.implicit for p in self.products)

    @property
    def revocation_ca_ids(self) -> tuple[str, ...]:
        """The registered CAs whose certificates the revocation sync checks: those with revocation configured, and
        every one when the trust root has (its CRL can revoke any of them)."""
        ids = tuple(ca.certificate_id for ca in self.cas)
        if any(ca_id not in ids for ca_id in self.revocation):
            return ids
        return tuple(ca_id for ca_id in ids if ca_id in self.revocation)

    @property
    def revocation_s3_objects(self) -> tuple[tuple[str, str], ...]:
        """(bucket, key) of every s3:// CRL source, in the order configured, each once."""
        urls = (url for source in self.revocation.values() for url in source.crl if url.startswith("s3://"))
        return tuple(dict.fromkeys(s3_object(url) for url in urls))

    @property
    def validated(self) -> bool:
        """True when our handler decides (jitr); False when AWS provisions by itself (jitp)."""
        return self.provisioning_mode == "jitr"

    def handler_settings(
        self, template_names: str | Mapping[str, str], decision_table: str, enrollment_table: str | None = None
    ) -> Settings:
        """The registration handler's settings as the stack gives them (and `jitr serve` runs it with).
        `template_names`: each product's stored template name (a text: the first product's)."""
        if isinstance(template_names, str):
            template_names = {self.products[0].name: template_names} if self.products else {}
        products = (
            () if self.implicit_products else tuple(p.handler_product(template_names[p.name]) for p in self.products)
        )
        return Settings(
            products=() if self.implicit_products else products,
            template_name=next(iter(template_names.values()), "jitr-device"),
            rejection_action=self.rejection_action,
            device_profile=self.device_profile,
            cn_pattern=self.cn_pattern,
            max_validity_days=self.max_validity_days,
            trust_root_pem=self.trust_root_pem,
            extra_parameters=self.extra_parameters,
            certificate_extensions=self.certificate_extensions,
            existing_thing=self.existing_thing,
            clock_skew_seconds=self.clock_skew_seconds,
            # each environment takes quota / concurrency RegisterThing calls per second: together, the quota
            register_thing_tps=self.register_thing_tps,
            max_concurrency=max_concurrency(self.register_thing_tps),
            decision_table=decision_table,
            decision_retention_days=self.decision_retention_days,
            revocation=self.revocation,
            # the sync's share of UpdateCertificate: the handlers pace themselves to the rest of the quota
            **({"sync_update_tps": self.revocation_sync.update_tps} if self.revocation_sync else {}),
            event_bus=self.event_bus,
            enrollment_table=enrollment_table,
        )


def raw_settings(context: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """The `jitr` context object, overlaid with the file `jitr:configFile` names (relative to the repository)."""
    settings = context.get(CONTEXT_KEY) or {}
    if isinstance(settings, str):  # `-c jitr='{...}'` arrives as text
        settings = _json(settings, f"context {CONTEXT_KEY!r}")
    if not isinstance(settings, dict):
        raise ConfigError(f"context {CONTEXT_KEY!r} must be a JSON object")
    settings = dict(settings)
    config_file = context.get(CONFIG_FILE_KEY)
    if config_file:
        path = root / str(config_file)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_FILE_KEY} names {config_file!r}, which does not exist")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{config_file} is not UTF-8 text (byte {exc.start})") from None
        overlay = _json(text, str(config_file))
        if not isinstance(overlay, dict):
            raise ConfigError(f"{config_file} must hold a JSON object")
        settings.update(overlay)
    return settings


def load_config(
    settings: Mapping[str, Any],
    root: Path,
    *,
    development_ca: Callable[[Path], tuple[str, bool]] | None = None,
    at: dt.datetime | None = None,
) -> JitrConfig:
    """Check `settings` and return a typed configuration. With no CA configured, `development_ca` makes one (app.py
    passes the development PKI's; `None` makes a CA required)."""
    unknown = sorted(set(settings) - KNOWN_KEYS)
    if unknown:
        named = ", ".join(repr(key) for key in unknown)
        raise ConfigError(f"unknown setting(s) {named}; known: {', '.join(sorted(KNOWN_KEYS))}")
    at = at or dt.datetime.now(dt.UTC)
    notes: list[str] = []

    provisioning_mode = _choice(settings, "provisioningMode", PROVISIONING_MODES)
    certificate_mode = _choice(settings, "certificateMode", CERTIFICATE_MODES)
    entries = settings.get("caCertificates") or []
    if not isinstance(entries, list):
        raise ConfigError("caCertificates must be a list of PEM file paths or {pem, verificationCertificate} objects")
    dev = False
    if not entries:
        if development_ca is None:
            raise ConfigError("caCertificates is empty: name the PEM file of the CA that signs your devices")
        folder = root / str(settings.get("developmentPki", DEFAULTS["developmentPki"]))
        pem, created = development_ca(folder)
        dev = True
        entries = [{"pem": pem}]
        notes.append(
            f"no caCertificates configured: using the development CA in {folder.name}/"
            f" ({'generated now' if created else 'generated earlier'}); deploying it needs"
            " --parameters DevelopmentCaOptIn=yes"
        )
        if certificate_mode == "DEFAULT":
            raise ConfigError(
                "certificateMode DEFAULT needs a verification certificate, which the development CA does not have;"
                " use SNI_ONLY with the development CA"
            )
    cas = tuple(_ca(entry, i, certificate_mode, root, at) for i, entry in enumerate(entries))
    ids = [ca.certificate_id for ca in cas]
    if len(set(ids)) != len(ids):
        raise ConfigError("caCertificates lists the same CA certificate twice")

    trust_root_pem, trust_root_revocation = _trust_root(settings.get("trustRoot"), root)
    existing = _existing_resources(settings)
    context = _ProductContext(cas, root, provisioning_mode, trust_root_pem, at, existing, notes)
    products = _products(settings, context)
    email = settings.get("alarmEmail")
    if email is not None and not EMAIL.match(str(email)):
        raise ConfigError(f"alarmEmail {email!r} is not an e-mail address")
    register_thing_tps = _whole(settings, "registerThingTps", 1, 10000)
    revocation = _revocation_by_ca(cas, trust_root_pem, trust_root_revocation, provisioning_mode)
    sync = _revocation_sync(settings, register_thing_tps, notes) if revocation else None
    if not revocation and "revocationSync" in settings:
        notes.append("revocationSync has no effect: no CA has revocation configured, so no sync is deployed")
    return JitrConfig(
        cas=cas,
        certificate_mode=certificate_mode,
        provisioning_mode=provisioning_mode,
        trust_root_pem=trust_root_pem,
        register_thing_tps=register_thing_tps,
        max_receive_count=_whole(settings, "maxReceiveCount", 2, 1000),
        alarm_email=str(email) if email else None,
        rejection_alarm_threshold=_whole(settings, "rejectionAlarmThreshold", 1, 10**6),
        queue_age_alarm_seconds=_whole(settings, "queueAgeAlarmSeconds", 60, 14 * 24 * 3600),
        log_retention_days=_whole(settings, "logRetentionDays", 1, 3653),
        sweep_interval_minutes=_whole(settings, "sweepIntervalMinutes", 5, 24 * 60),  # >= the sweeper's timeout
        sweep_min_age_minutes=_whole(settings, "sweepMinAgeMinutes", 1, 7 * 24 * 60),
        sweep_max_per_run=_whole(settings, "sweepMaxPerRun", 1, 100_000),
        development_ca=dev,
        existing_resources=existing,
        clock_skew_seconds=_whole(settings, "clockSkewSeconds", 0, 3600),
        decision_retention_days=_whole(settings, "decisionRetentionDays", 1, 3650),
        notes=tuple(notes),
        revocation=revocation,
        revocation_sync=sync,
        event_bus=_decision_events(settings, provisioning_mode, notes),
        products=products,
    )


@dataclass(frozen=True)
class _ProductContext:
    """What every product is checked against: the stack's CAs, mode, trust root and existing resources."""

    cas: tuple[CaCertificate, ...]
    root: Path
    provisioning_mode: str
    trust_root_pem: str | None
    at: dt.datetime
    existing: Mapping[str, tuple[str, ...]]
    notes: list[str]


def _product(
    name: str, settings: Mapping[str, Any], cas: tuple[CaCertificate, ...], context: _ProductContext
) -> ProductConfig:
    """One product's template and rules, checked as the stack's were before products: `settings` holds the product's
    own keys over the stack's. Its CAs are `cas`."""
    provisioning_mode, notes = context.provisioning_mode, context.notes
    template_path = str(settings.get("template", DEFAULTS["template"]))
    template_file = context.root / template_path
    if "template" not in settings and not template_file.is_file():
        template_file = SHIPPED_TEMPLATE  # outside a checkout (an installed jitr): the template jitr ships
    template = _template(template_file, template_path, provisioning_mode)
    template_name = settings.get("templateName")
    if template_name is not None and not TEMPLATE_NAME.fullmatch(str(template_name)):
        raise ConfigError(f"templateName {template_name!r} must match {TEMPLATE_NAME.pattern}")
    policy_parameter = settings.get("devicePolicyParameter", DEFAULTS["devicePolicyParameter"])
    if policy_parameter is not None and not isinstance(policy_parameter, str):
        raise ConfigError(
            f"devicePolicyParameter must be the name of a template parameter, or null, got {policy_parameter!r}"
        )
    if policy_parameter is not None and policy_parameter not in template.parameters:
        notes.append(
            f"{template_path} declares no parameter {policy_parameter!r}: no device policy is created;"
            " the template must name or contain its own policy"
        )
        policy_parameter = None

    profile = _choice(settings, "deviceProfile", tuple(PROFILES))
    cn_pattern = settings.get("cnPattern")
    if cn_pattern is not None:
        try:
            re.compile(str(cn_pattern))
        except re.error as exc:
            raise ConfigError(f"cnPattern is not a regular expression: {exc}") from exc
    if not validated_mode(provisioning_mode):
        for key in ("deviceProfile", "cnPattern", "maxValidityDays", "trustRoot", "rejectionAction", "existingThing"):
            if key in settings:
                notes.append(f"{key} has no effect in jitp mode: AWS provisions devices without jitr's checks")
    else:
        _check_cas_against_profile(cas, context.cas, profile, context.trust_root_pem, context.at)
    extra_parameters = _extra_parameters(settings, template, template_path, notes)
    extensions = _certificate_extensions(settings, template, template_path, provisioning_mode, notes)
    hook = _hook(settings.get("hook"), template, template_path)
    plan, render_problems = _neutral_plan(template, extra_parameters, extensions)
    if validated_mode(provisioning_mode):
        values = _Values(extra_parameters, extensions, policy_parameter)
        _check_parameters_have_values(template, template_path, values, render_problems)
    _check_named_resources(template, template_path, plan, policy_parameter, context.existing, notes)
    return ProductConfig(
        name=name,
        ca_certificate_ids=tuple(ca.certificate_id for ca in cas),
        select=_selector(settings.get("select")),
        template=template,
        template_path=template_path,
        template_name=str(template_name) if template_name is not None else None,
        device_policy_parameter=policy_parameter,
        device_profile=profile,
        cn_pattern=str(cn_pattern) if cn_pattern is not None else None,
        max_validity_days=_integer(settings, "maxValidityDays", 1, 36500),
        rejection_action=_choice(settings, "rejectionAction", REJECTION_ACTIONS),
        existing_thing=_choice(settings, "existingThing", EXISTING_THING_ACTIONS),
        extra_parameters=extra_parameters,
        certificate_extensions=extensions,
        enrollment=_enrollment(settings.get("enrollment")),
        hook=hook,
    )


def _enrollment(value: Any) -> EnrollmentSettings | None:
    """A product's `enrollment`: which identity its manifests list."""
    if value is None:
        return None
    try:
        return EnrollmentSettings.model_validate(value, strict=True)
    except ValidationError:
        raise ConfigError(
            'enrollment must be {"by": "serialNumber"}, {"by": "commonName"} or {"by": "publicKeySha256"}: the'
            " identity the product's manifests list"
        ) from None


def _hook(value: Any, template: Template, template_path: str) -> HookSettings | None:
    """A product's `hook`: its function, time budget and the template parameters it may set, each declared by the
    template and none in a policy (a policy stays the deployment's alone)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError('hook must be an object: {"function": <name or ARN>, "timeoutSeconds": 5, "parameters": []}')
    try:
        hook = HookSettings.model_validate_json(json.dumps(value), strict=True)
    except ValidationError as exc:
        problems = (f"hook{_location(error['loc'])}: {error['msg']}" for error in exc.errors())
        raise ConfigError("; ".join(problems)) from None
    in_policies = {
        name
        for resource in template.document.get("Resources", {}).values()
        if isinstance(resource, dict) and resource.get("Type") == POLICY
        for name in referenced_parameters(resource.get("Properties", {}))
    }
    for name in hook.parameters:
        if name not in template.parameters:
            raise ConfigError(f"hook.parameters names {name!r}, which template {template_path} does not declare")
        if name in in_policies:
            raise ConfigError(
                f"hook.parameters names {name!r}, which template {template_path} uses in a policy: a hook may set"
                " names and attributes, never what a device is allowed to do"
            )
    return hook


PRODUCT_KEYS = (
    "caCertificates",
    "select",
    "template",
    "templateName",
    "devicePolicyParameter",
    "deviceProfile",
    "cnPattern",
    "maxValidityDays",
    "rejectionAction",
    "existingThing",
    "extraParameters",
    "certificateExtensions",
    "enrollment",
    "hook",
)
# What a product takes from the top level when it does not set it (a fixed template name is one product's alone).
INHERITED_KEYS = tuple(
    k for k in PRODUCT_KEYS if k not in ("caCertificates", "select", "templateName", "enrollment", "hook")
)


def _products(settings: Mapping[str, Any], context: _ProductContext) -> tuple[ProductConfig, ...]:
    """`products`, each checked, then checked together: every active CA served, no certificate claimed twice. Without
    `products`, one implicit product of every CA with the top-level settings (today's configuration, unchanged)."""
    value = settings.get("products")
    if value is None:
        implicit = _product(IMPLICIT, settings, context.cas, context)
        return (replace(implicit, implicit=True),)
    if not isinstance(value, dict) or not value:
        raise ConfigError('products must be an object of product name -> its settings, e.g. {"sensor": {...}}')
    if not validated_mode(context.provisioning_mode):
        raise ConfigError(
            "products need provisioningMode jitr: in jitp mode AWS applies one template per CA with no selector"
        )
    inherited = {key: settings[key] for key in INHERITED_KEYS if key in settings}
    products = []
    for name, raw in value.items():
        where = f"products.{name}"
        if not isinstance(name, str) or not PRODUCT_NAME.match(name):
            raise ConfigError(
                f"{where}: a product name is a letter or digit, then letters, digits, _ or - (64 at most)"
            )
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be an object with any of {', '.join(PRODUCT_KEYS)}")
        unknown = sorted(set(raw) - set(PRODUCT_KEYS))
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {', '.join(unknown)}; known: {', '.join(PRODUCT_KEYS)}")
        cas = _product_cas(raw.get("caCertificates"), where, context)
        try:
            products.append(_product(name, {**inherited, **raw}, cas, context))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    named = [p.template_name for p in products if p.template_name]
    twice = sorted({name for name in named if named.count(name) > 1})
    if twice:
        raise ConfigError(f"products: templateName {twice[0]!r} is given to two products; each stores its own template")
    _check_claims(tuple(products), context)
    return tuple(products)


def _product_cas(value: Any, where: str, context: _ProductContext) -> tuple[CaCertificate, ...]:
    """A product's CAs: each a registered CA (caCertificates), named by its PEM (file or text) or certificate id."""
    if not isinstance(value, list) or not value:
        raise ConfigError(
            f"{where}.caCertificates must list the product's CAs: PEM files as in caCertificates, or certificate ids"
        )
    by_id = {ca.certificate_id: ca for ca in context.cas}
    cas: list[CaCertificate] = []
    for i, entry in enumerate(value):
        key = f"{where}.caCertificates[{i}]"
        if isinstance(entry, str) and re.fullmatch(r"[0-9a-f]{64}", entry):
            ca_id = entry
        elif isinstance(entry, str):
            ca_id = certificate_id(_certificate(_pem(entry, key, context.root), key))
        else:
            raise ConfigError(f"{key} must be a PEM file path, PEM text or a CA certificate id")
        if ca_id not in by_id:
            raise ConfigError(f"{key} is not one of caCertificates: register the CA there, then name it here")
        if by_id[ca_id] in cas:
            raise ConfigError(f"{key} names the same CA twice")
        cas.append(by_id[ca_id])
    return tuple(cas)


def _selector(value: Any) -> dict[str, str]:
    """A product's `select`: subject attribute -> regular expression matched in full."""
    if value is None:
        return {}
    known = ", ".join(SUBJECT_ATTRIBUTES)
    if not isinstance(value, dict) or not value or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"select must be an object of subject attribute ({known}) -> regular expression")
    for attribute, pattern in value.items():
        if attribute not in SUBJECT_ATTRIBUTES:
            raise ConfigError(f"select reads {attribute!r}, which is not a subject attribute jitr reads: {known}")
        try:
            re.compile(pattern)
            unreachable = selectors.matches_nothing(pattern)
        except re.error as exc:
            raise ConfigError(f"select.{attribute} is not a regular expression: {exc}") from exc
        except selectors.SelectorProblem as exc:
            raise ConfigError(f"select.{attribute}: {exc}") from None
        if unreachable:
            raise ConfigError(
                f"select.{attribute} {pattern!r} matches no value: no certificate could reach the product"
            )
    return dict(value)


def _check_claims(products: tuple[ProductConfig, ...], context: _ProductContext) -> None:
    """Every CA that registers new devices is served by some product; where products share a CA, each has a selector
    and no certificate can match two of them; a selector on CN must leave room for the product's cnPattern."""
    for i, ca in enumerate(context.cas):
        serving = [p for p in products if ca.certificate_id in p.ca_certificate_ids]
        if not serving and not ca.retired:
            raise ConfigError(
                f"caCertificates[{i}] ({ca.subject}) is served by no product: list it in a product's caCertificates"
                " (or retire it)"
            )
        if len(serving) > 1 and any(not p.select for p in serving):
            names = " and ".join(p.name for p in serving)
            raise ConfigError(
                f"caCertificates[{i}] ({ca.subject}) is claimed by products {names}: products that share a CA each"
                ' need a select (e.g. {"OU": "gateway"}) that tells their certificates apart'
            )
        for a, b in itertools.combinations(serving, 2):
            try:
                apart = selectors.separating_attribute(a.select, b.select)
            except selectors.SelectorProblem as exc:
                raise ConfigError(f"products.{a.name}.select or products.{b.name}.select: {exc}") from None
            if apart is None:
                raise ConfigError(
                    f"products.{a.name}.select and products.{b.name}.select overlap on caCertificates[{i}]: one"
                    " certificate could match both. Give both a select on one attribute (e.g. OU) with patterns no"
                    " value matches together"
                )
    for product in products:
        cn = product.select.get("CN")
        if cn is not None and product.cn_pattern is not None and _never_together(cn, product.cn_pattern):
            raise ConfigError(
                f"products.{product.name}.select.CN {cn!r} and its cnPattern {product.cn_pattern!r} have no common"
                " name in common: every certificate the selector chooses would be refused CN_MISMATCH"
            )


def _never_together(selector: str, cn_pattern: str) -> bool:
    """Whether no common name matches both (a cnPattern the checker cannot read is given the benefit of the doubt)."""
    try:
        return selectors.disjoint(selector, cn_pattern)
    except selectors.SelectorProblem:
        return False


def _check_cas_against_profile(
    cas: tuple[CaCertificate, ...],
    registered: tuple[CaCertificate, ...],
    profile: str,
    trust_root_pem: str | None,
    at: dt.datetime,
) -> None:
    """A CA the device profile can never accept would leave every device it signed pending (jitr retries what is
    not the device's fault): refuse it here, where it is the deployer's to fix. `cas` are the product's, named by
    their place in `registered` (caCertificates)."""
    root = _certificate(trust_root_pem, "trustRoot") if trust_root_pem else None
    for i, ca in enumerate(registered):
        if ca.retired or ca not in cas:
            continue  # no new device registers under it: nothing left for the profile to accept
        problem = ca_problem(_certificate(ca.pem, f"caCertificates[{i}]"), PROFILES[profile], at, root)
        if problem:
            settings = f"deviceProfile {profile!r}" + (" with trustRoot" if root is not None else "")
            raise ConfigError(f"caCertificates[{i}]: {settings} can never accept a device this CA signed: {problem}")


def _extra_parameters(
    settings: Mapping[str, Any], template: Template, template_path: str, notes: list[str]
) -> dict[str, str]:
    extras = settings.get("extraParameters") or {}
    if not isinstance(extras, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in extras.items()):
        raise ConfigError("extraParameters must be an object of template parameter name -> string value")
    for name in extras:
        if name.startswith(PREFIXES):
            raise ConfigError(f"extraParameters sets {name!r}, which only the device certificate may give")
        if name not in template.parameters:
            notes.append(f"extraParameters sets {name!r}, which {template_path} does not declare: it is ignored")
    return dict(extras)


def _certificate_extensions(
    settings: Mapping[str, Any], template: Template, template_path: str, provisioning_mode: str, notes: list[str]
) -> dict[str, str]:
    """certificateExtensions: the extensions a template may read (name -> dotted OID), each name once and each OID
    once. A template that reads an extension not declared here could never render: refused."""
    value = settings.get("certificateExtensions") or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(
            'certificateExtensions must be an object of name -> dotted OID, e.g. {"Batch": "1.3.6.1.4.1.55555.1"}'
        )
    for name, oid in value.items():
        if problem := extension_problem(name, oid):
            raise ConfigError(f"certificateExtensions: {problem}")
    if len(set(value.values())) != len(value):
        raise ConfigError("certificateExtensions names the same OID twice: give each extension one name")
    undeclared = [
        name
        for name in template.parameters
        if name.startswith(EXTENSION_PREFIX) and name.removeprefix(EXTENSION_PREFIX) not in value
    ]
    if undeclared and validated_mode(provisioning_mode):
        raise ConfigError(
            f"template {template_path} reads {', '.join(undeclared)}, which certificateExtensions does not declare:"
            " add each name with its OID to certificateExtensions"
        )
    if value and not validated_mode(provisioning_mode):
        notes.append("certificateExtensions has no effect in jitp mode: AWS passes its own parameters alone")
    return dict(value)


@dataclass(frozen=True)
class _Values:
    """Where the handler's template parameters come from, besides each one's Default."""

    extras: Mapping[str, str]  # extraParameters
    extensions: Mapping[str, str]  # certificateExtensions: the certificate fills these too
    policy_parameter: str | None  # the device policy the stack creates


def _check_parameters_have_values(
    template: Template, template_path: str, values: _Values, render_problems: list[Problem]
) -> None:
    """Every parameter the handler cannot fill from the certificate needs a Default or an extraParameters value;
    otherwise every device would wait in the dead-letter queue."""
    missing = [
        name
        for name, declaration in template.parameters.items()
        if "Default" not in declaration
        and not is_certificate_field(name, values.extensions)
        and name not in values.extras
        and name != values.policy_parameter
    ]
    if missing:
        raise ConfigError(
            f"template {template_path}: parameter(s) {', '.join(missing)} have no Default, are not certificate fields"
            f" ({', '.join(sorted(AWS_FIELDS))}, or jitr's Jitr::Certificate::*) and are not set in extraParameters;"
            " give each a Default or a value in extraParameters"
        )
    # The deployment's own values must render wherever they go. Certificate fields get a neutral sound value ("0"),
    # so a value that is not a valid name is the deployment's fault even where it mixes in a certificate field;
    # a structural failure (Fn::Select out of range) that involves a field may be the neutral value's, and waits.
    ours = [
        p for p in render_problems if not certificate_fields(p.parameters, values.extensions) or p.code in _VALUE_CODES
    ]
    if ours:
        raise ConfigError(
            f"template {template_path} does not render with the deployment's parameters (extraParameters and"
            " Defaults): " + "; ".join(f"{p.path}: {p.message}" for p in ours)
        )


_VALUE_CODES = frozenset({"INVALID_NAME", "INVALID_VALUE", "UNSAFE_POLICY_VALUE", "PARAMETER_TOO_LONG"})


def _neutral_plan(
    template: Template, extras: Mapping[str, str], extensions: Mapping[str, str]
) -> tuple[Plan | None, list[Problem]]:
    """The template rendered once, with the deployment's values and the handler's neutral, sound value for each
    certificate field it declares (a certificate id for Id): the plan, or the problems that stopped it."""
    try:
        return render_template(template, {**neutral_parameters(template.parameters, extensions), **extras}), []
    except TemplateError as exc:
        return None, list(exc.problems)


def _existing_resources(settings: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    value = settings.get("existingResources") or {}
    if not isinstance(value, dict):
        raise ConfigError(f"existingResources must be an object with any of {', '.join(EXISTING_RESOURCE_KINDS)}")
    unknown = sorted(set(value) - set(EXISTING_RESOURCE_KINDS))
    if unknown:
        raise ConfigError(
            f"existingResources has unknown key(s) {', '.join(unknown)}; known: {', '.join(EXISTING_RESOURCE_KINDS)}"
        )
    result: dict[str, tuple[str, ...]] = {}
    for kind, names in value.items():
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"existingResources.{kind} must be a list of names")
        result[kind] = tuple(names)
    return result


def _check_named_resources(
    template: Template,
    template_path: str,
    plan: Plan | None,
    policy_parameter: str | None,
    existing: Mapping[str, tuple[str, ...]],
    notes: list[str],
) -> None:
    """A template that names a policy, thing type, thing group or billing group the stack neither creates nor lists
    in existingResources would fail RegisterThing for every device: refuse it here."""
    resources = template.document.get("Resources", {})
    for logical_name, resource in resources.items():
        kind_and_names: list[tuple[str, str, Any, Any]] = []  # (existingResources key, property, expression, value)
        properties = resource.get("Properties", {})
        planned = next((r for r in plan.resources if r.logical_name == logical_name), None) if plan else None
        resolved = planned.properties if planned else {}
        if resource.get("Type") == POLICY and "PolicyName" in properties:
            if policy_parameter is not None and properties["PolicyName"] == {"Ref": policy_parameter}:
                continue  # the device policy the stack creates
            kind_and_names.append(("policies", "PolicyName", properties["PolicyName"], resolved.get("PolicyName")))
        if resource.get("Type") == THING:
            for key, prop in (("thingTypes", "ThingTypeName"), ("billingGroups", "BillingGroup")):
                if prop in properties:
                    kind_and_names.append((key, prop, properties[prop], resolved.get(prop)))
            if "ThingGroups" in properties:
                groups = resolved.get("ThingGroups")
                for group in groups if isinstance(groups, list) else [None]:
                    kind_and_names.append(("thingGroups", "ThingGroups", properties["ThingGroups"], group))
        for key, prop, expression, value in kind_and_names:
            where = f"$.Resources.{logical_name}.Properties.{prop}"
            from_certificate = any(name.startswith(PREFIXES) for name in referenced_parameters(expression))
            if from_certificate or not isinstance(value, str):
                notes.append(
                    f"{template_path} {where} is computed from the device certificate: every value it can take must"
                    f" exist as a {EXISTING_RESOURCE_KINDS[key]} before devices connect"
                )
                continue
            if value not in existing.get(key, ()):
                raise ConfigError(
                    f"template {template_path} {where} names {EXISTING_RESOURCE_KINDS[key]} {value!r}, which this"
                    f" stack does not create: create it, then list it in existingResources.{key}"
                )


def validated_mode(provisioning_mode: str) -> bool:
    return provisioning_mode == "jitr"


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise ConfigError(f"{where} is not readable JSON: nested too deeply") from None
    except ValueError as exc:  # not JSON, or a number too long to convert
        raise ConfigError(f"{where} is not valid JSON: {exc}") from exc


def _choice(settings: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = settings.get(key, DEFAULTS[key])
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _whole(settings: Mapping[str, Any], key: str, low: int, high: int) -> int:
    """A whole-number setting that always has a value (its default)."""
    value = _integer(settings, key, low, high)
    if value is None:  # given as null: these settings always have a value
        raise ConfigError(f"{key} must be a whole number from {low} to {high}, got None")
    return value


def _integer(settings: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
    value = settings.get(key, DEFAULTS[key])
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{key} must be a whole number from {low} to {high}, got {value!r}")
    return value


def _pem(value: str, key: str, root: Path) -> str:
    """Inline PEM text, or the file it names (relative to the repository)."""
    if value.lstrip().startswith("-----BEGIN"):
        return value
    path = root / value
    if not path.is_file():
        raise ConfigError(f"{key}: {value!r} is neither PEM text nor an existing file")
    return path.read_text()


def _certificate(pem: str, key: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificates(pem.encode())[0]
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"{key} is not a readable PEM certificate ({exc})") from exc


def _ca(entry: Any, index: int, certificate_mode: str, root: Path, at: dt.datetime) -> CaCertificate:
    key = f"caCertificates[{index}]"
    if isinstance(entry, str):
        entry = {"pem": entry}
    if not isinstance(entry, dict) or "pem" not in entry:
        raise ConfigError(f"{key} must be a PEM file path or an object with 'pem' (and 'verificationCertificate')")
    extra = set(entry) - set(CA_CERTIFICATE_KEYS)
    if extra:
        raise ConfigError(f"{key} has unknown key(s) {', '.join(sorted(extra))}")
    retired = entry.get("retired", CA_CERTIFICATE_DEFAULTS["retired"])
    if not isinstance(retired, bool):
        raise ConfigError(f"{key}.retired must be true or false")
    ca = _certificate(_pem(str(entry["pem"]), key, root), key)
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise ConfigError(f"{key} ({ca.subject.rfc4514_string()}) is not a CA certificate (basicConstraints CA:TRUE)")
    if ca.not_valid_after_utc <= at and not retired:  # an expired CA can still be kept, retired
        raise ConfigError(f"{key} ({ca.subject.rfc4514_string()}) expired on {ca.not_valid_after_utc:%Y-%m-%d}")
    public = ca.public_key()
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ConfigError(f"{key}: AWS IoT registers CAs with RSA or EC keys, not {type(public).__name__}")
    hash_name = ca.signature_hash_algorithm.name if ca.signature_hash_algorithm else "none"
    if hash_name not in ("sha256", "sha384", "sha512"):
        raise ConfigError(f"{key} is signed with {hash_name}; AWS IoT accepts SHA-256, SHA-384 or SHA-512 signatures")
    only_ca = ca.public_bytes(Encoding.PEM).decode()  # a bundle's first certificate is the one registered
    verification_pem = None
    if certificate_mode == "DEFAULT":
        if not entry.get("verificationCertificate"):
            raise ConfigError(
                f"{key}: certificateMode DEFAULT needs 'verificationCertificate', a certificate whose CN is this"
                " account's registration code, signed by the CA's key. Make it with: jitr pki verification --ca"
                " <ca.pem> --ca-key <ca.key> --registration-code $(aws iot get-registration-code --query"
                " registrationCode --output text). Or use certificateMode SNI_ONLY."
            )
        verification_pem = _pem(str(entry["verificationCertificate"]), f"{key}.verificationCertificate", root)
        _check_verification(_certificate(verification_pem, f"{key}.verificationCertificate"), ca, key)
    elif entry.get("verificationCertificate"):
        raise ConfigError(f"{key}: verificationCertificate is only used with certificateMode DEFAULT")
    revocation = _revocation(entry["revocation"], f"{key}.revocation") if entry.get("revocation") is not None else None
    return CaCertificate(
        only_ca, certificate_id(ca), ca.subject.rfc4514_string(), verification_pem, retired, revocation
    )


def _check_verification(verification: x509.Certificate, ca: x509.Certificate, key: str) -> None:
    try:
        verification.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ConfigError(f"{key}.verificationCertificate is not signed by this CA") from exc
    names = verification.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    code = str(names[0].value) if names else ""
    if not REGISTRATION_CODE.match(code):
        raise ConfigError(
            f"{key}.verificationCertificate has CN {code!r}; it must be the account's 64-hex registration code"
        )


def _template(path: Path, shown: str, provisioning_mode: str) -> Template:
    if not path.is_file():
        raise ConfigError(f"template {shown!r} does not exist")
    try:
        template = parse_template(path.read_text(), for_jitr=validated_mode(provisioning_mode))
    except TemplateError as exc:
        problems = "\n".join(f"  {problem}" for problem in exc.problems)
        raise ConfigError(f"template {shown} is not usable:\n{problems}") from exc
    if provisioning_mode == "jitp":
        missing = [
            name
            for name, declaration in template.parameters.items()
            if name not in JITP_PARAMETERS and "Default" not in declaration
        ]
        if missing:
            raise ConfigError(
                f"template {shown}: in jitp mode AWS passes only AWS::IoT::Certificate::* parameters, so"
                f" {', '.join(missing)} need a Default"
            )
    return template


# -- issuer revocation -------------------------------------------------------------------------------------------------

SECONDS_PER_DAY = 86_400
REVOCATION_KEYS = tuple(str(f.alias or name) for name, f in RevocationSource.model_fields.items())
REVOCATION_SYNC_KEYS = tuple(DEFAULTS["revocationSync"])
SYNC_TIMEOUT_MINUTES = 15  # the revocation sync's timeout (Lambda's longest); its schedule is never shorter
# names of this machine, which no CRL source may be (the Lambda runtime API listens on loopback)
LOCAL_HOST_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
HOST_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")  # a last label resolvers read as an IPv4 address
S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
RATE = re.compile(r"^rate\(([1-9][0-9]*) (minute|hour|day)(s?)\)$")
CRON = re.compile(r"^cron\([0-9]+( \S+){5}\)$")  # at most hourly: the minutes field is one number
UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": SECONDS_PER_DAY}


def s3_object(url: str) -> tuple[str, str]:
    """The (bucket, key) of an `s3://bucket/key` source, as the handler reads it."""
    parts = urlsplit(url)
    return parts.netloc, parts.path.lstrip("/")


def _trust_root(value: Any, root: Path) -> tuple[str | None, RevocationSource | None]:
    """trustRoot: PEM text or a file, or an object with `pem` and the `revocation` of the CAs it issued."""
    if not value:
        return None, None
    revocation = None
    if isinstance(value, dict):
        if "pem" not in value or set(value) - set(TRUST_ROOT_KEYS):
            raise ConfigError("trustRoot must be PEM text, a PEM file path, or an object with 'pem' and 'revocation'")
        if value.get("revocation") is not None:
            revocation = _revocation(value["revocation"], "trustRoot.revocation")
        value = value["pem"]
    pem = _pem(str(value), "trustRoot", root)
    _certificate(pem, "trustRoot")
    return pem, revocation


def _revocation_by_ca(
    cas: tuple[CaCertificate, ...],
    trust_root_pem: str | None,
    trust_root_revocation: RevocationSource | None,
    provisioning_mode: str,
) -> dict[str, RevocationSource]:
    """The handler's `Settings.revocation`: each configured source under its CA's certificate id."""
    by_ca = {ca.certificate_id: ca.revocation for ca in cas if ca.revocation is not None}
    if trust_root_pem and trust_root_revocation is not None:
        root_id = certificate_id(_certificate(trust_root_pem, "trustRoot"))
        if root_id in by_ca:
            raise ConfigError("trustRoot.revocation: the trust root is also in caCertificates; configure it once")
        by_ca[root_id] = trust_root_revocation
    if by_ca and not validated_mode(provisioning_mode):
        raise ConfigError(
            "revocation needs provisioningMode jitr: in jitp mode AWS provisions devices by itself and no CRL is"
            " read; remove the revocation objects or use jitr mode"
        )
    return by_ca


def _revocation(value: Any, where: str) -> RevocationSource:
    """One CA's revocation object, checked by the handler's own model, then its sources by the rules the handler
    fetches by (`jitr.revocation_sources`), so a source it would refuse at every event is refused here."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object with any of {', '.join(REVOCATION_KEYS)}")
    unknown = sorted(set(value) - set(REVOCATION_KEYS))
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {', '.join(unknown)}; known: {', '.join(REVOCATION_KEYS)}")
    try:
        source = RevocationSource.model_validate_json(json.dumps(value), strict=True)
    except ValidationError as exc:
        problems = (f"{where}{_location(error['loc'])}: {error['msg']}" for error in exc.errors())
        raise ConfigError("; ".join(problems)) from None
    if not source.crl and not source.certificate_hosts and not source.ocsp:
        raise ConfigError(
            f"{where} names no source: give crl (the CA's CRL as https://, http:// or s3://bucket/key URLs), ocsp"
            " (its OCSP responders) or certificateHosts (hosts a certificate's own CRL distribution point or OCSP"
            " responder may name)"
        )
    for i, url in enumerate(source.crl):
        problem = _crl_url_problem(url)
        if problem:
            raise ConfigError(f"{where}.crl[{i}] {url!r}: {problem}")
    for i, url in enumerate(source.ocsp):
        problem = _crl_url_problem(url)
        if problem:
            raise ConfigError(f"{where}.ocsp[{i}] {url!r}: {problem}")
    for i, host in enumerate(source.certificate_hosts):
        problem = _host_problem(host, private_ok=False)
        if problem:
            raise ConfigError(f"{where}.certificateHosts[{i}] {host!r} {problem}")
    return source


def _location(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def _crl_url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https", "s3") or any(c.isspace() for c in url):
        return "only http://, https:// and s3://bucket/key URLs are read"
    if parts.username is not None or parts.password is not None:
        return "a URL with a user name or password is refused (a CRL is public and signed by its CA)"
    if parts.scheme != "s3":
        problem = _host_problem(parts.hostname or "", private_ok=True)
        return f"its host {problem}" if problem else None
    bucket, key = s3_object(url)
    if port is not None or parts.query or parts.fragment or not S3_BUCKET.match(bucket) or not key:
        return "an S3 source is s3://bucket/key: a bucket name, then the object's key, nothing else"
    if set(key) & set("*?$"):
        return "the object's key holds *, ? or $, which IAM would read as a wildcard or a variable"
    return None


def _host_problem(host: str, *, private_ok: bool) -> str | None:
    """Why a configured host is refused, or None. A configured URL's host may be private (a CRL server in the VPC);
    a host a certificate's own distribution point may name may not."""
    if not host:
        return "is empty"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        refusal = address_refusal(address, private_ok=private_ok, loopback_ok=False)
        return f"is {refusal}" if refusal else None
    name = host.lower()
    if name in LOCAL_HOST_NAMES or name.endswith(".localhost"):
        return "is this machine (the Lambda runtime API listens on loopback)"
    if not HOST_NAME.match(name) or NUMERIC_LABEL.match(name.rsplit(".", 1)[-1]):
        return "is not a plain host name (letters, digits, hyphens and dots; no scheme, port, path or final dot)"
    return None


def _revocation_sync(settings: Mapping[str, Any], register_thing_tps: int, notes: list[str]) -> RevocationSync:
    value = settings.get("revocationSync")
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise ConfigError(f"revocationSync must be an object with any of {', '.join(REVOCATION_SYNC_KEYS)}")
    unknown = sorted(set(value) - set(REVOCATION_SYNC_KEYS))
    if unknown:
        raise ConfigError(
            f"revocationSync has unknown key(s) {', '.join(unknown)}; known: {', '.join(REVOCATION_SYNC_KEYS)}"
        )
    merged = {**DEFAULTS["revocationSync"], **value}
    schedule = merged["schedule"]
    period_s = _schedule_period(schedule)
    # the account's UpdateCertificate quota as the handler takes it (AWS's default, scaled as registerThingTps is)
    quota = AWS_DEFAULT_TPS["UpdateCertificate"] * register_thing_tps / AWS_DEFAULT_TPS["RegisterThing"]
    tps = merged["updateTps"]
    if isinstance(tps, bool) or not isinstance(tps, int | float) or not 0 < tps <= quota:
        raise ConfigError(
            f"revocationSync.updateTps must be a number above 0 and at most {quota:g}, the UpdateCertificate quota"
            f" the stack assumes for registerThingTps {register_thing_tps} (the handler shares it), got {tps!r}"
        )
    if tps > quota / 2:
        notes.append(
            f"revocationSync.updateTps {tps:g} is over half the UpdateCertificate quota ({quota:g}/s) the handler"
            " shares: rejections may be throttled while the sync revokes"
        )
    return RevocationSync(schedule=str(schedule), update_tps=float(tps), period_s=period_s)


def _schedule_period(schedule: Any) -> int:
    """The seconds between two runs of an EventBridge schedule expression (a cron expression counts as a day)."""
    text = schedule if isinstance(schedule, str) else ""
    if CRON.match(text):
        return SECONDS_PER_DAY
    rate = RATE.match(text)
    if not rate:
        raise ConfigError(
            "revocationSync.schedule must be an EventBridge schedule expression, rate(1 day), rate(12 hours) or"
            f" cron(0 3 * * ? *) (a cron runs at most hourly: its minutes field is one number), got {schedule!r}"
        )
    count, unit, plural = int(rate.group(1)), rate.group(2), rate.group(3)
    if (count == 1) == bool(plural):
        raise ConfigError(f"revocationSync.schedule {schedule!r}: EventBridge writes rate(1 {unit}), rate(2 {unit}s)")
    seconds = count * UNIT_SECONDS[unit]
    if seconds < SYNC_TIMEOUT_MINUTES * 60:
        raise ConfigError(
            f"revocationSync.schedule {schedule!r} is shorter than the sync's longest run"
            f" ({SYNC_TIMEOUT_MINUTES} minutes): runs would overlap"
        )
    return seconds


# -- decision events --------------------------------------------------------------------------------------------------

DECISION_EVENTS_KEYS = tuple(DEFAULTS["decisionEvents"])
BUS_NAME = re.compile(r"^[A-Za-z0-9._/-]{1,256}$")  # EventBridge's event bus name
BUS_ARN = re.compile(r"^arn:aws[a-z-]*:events:[a-z0-9-]+:[0-9]{12}:event-bus/[A-Za-z0-9._/-]{1,256}$")


def _decision_events(settings: Mapping[str, Any], provisioning_mode: str, notes: list[str]) -> str | None:
    """The bus decisions are published to (None: disabled), from `decisionEvents`."""
    value = settings.get("decisionEvents")
    value = {} if value is None else value
    if not isinstance(value, dict) or set(value) - set(DECISION_EVENTS_KEYS):
        raise ConfigError(
            'decisionEvents must be an object with "enabled" (true or false) and "bus" (an EventBridge bus name or'
            ' ARN; "default" is the account\'s default bus)'
        )
    merged = {**DEFAULTS["decisionEvents"], **value}
    enabled, bus = merged["enabled"], merged["bus"]
    if not isinstance(enabled, bool):
        raise ConfigError(f"decisionEvents.enabled must be true or false, got {enabled!r}")
    if not isinstance(bus, str) or not (BUS_NAME.match(bus) or BUS_ARN.match(bus)) or bus.startswith("aws."):
        raise ConfigError(
            f"decisionEvents.bus must be an event bus name ({BUS_NAME.pattern}, not a partner bus aws.*) or an"
            f" event bus ARN (arn:aws:events:<region>:<account>:event-bus/<name>), got {bus!r}"
        )
    if not enabled:
        return None
    if not validated_mode(provisioning_mode):
        if "decisionEvents" in settings:
            notes.append("decisionEvents has no effect in jitp mode: AWS provisions devices and decides nothing")
        return None
    return bus
