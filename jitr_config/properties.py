"""Typed properties for `JustInTimeRegistration`: one field per configuration key, as a team composing constructs in
Python writes them (snake_case; the cdk.json camelCase names are aliases).

The model checks types only. `to_settings()` gives the mapping the `jitr` context would hold, with the keys that were
set and nothing else, and `load_config` checks it: every check and message is synth's. Every default shown here is
read from `jitr_config.model` (`DEFAULTS`), where synth reads it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jitr.enrollment import EnrollmentSettings
from jitr.hook import HookSettings
from jitr.products import ExistingThing, ProfileName, RejectionAction
from jitr.settings import RevocationSource

from .model import CA_CERTIFICATE_DEFAULTS, DEFAULTS, CertificateMode, ProvisioningMode


def _key(key: str, description: str, defaults: dict[str, Any] = DEFAULTS) -> Any:
    """A field for configuration key `key`: its default from `defaults` (a copy for each model), its camelCase alias."""
    default = defaults[key]
    if isinstance(default, list | dict):
        return Field(
            default_factory=lambda: type(default)(default),
            validation_alias=key,
            serialization_alias=key,
            description=description,
        )
    return Field(default, validation_alias=key, serialization_alias=key, description=description)


def _nested(key: str, model: type[BaseModel], description: str) -> Any:
    """A field for an object key whose default is `model` with every field at its own default."""
    return Field(default_factory=model, validation_alias=key, serialization_alias=key, description=description)


def _product_key(key: str, description: str) -> Any:
    """A product's field: unset, the product takes the top-level value (or none, for a product's own keys)."""
    return Field(None, validation_alias=key, serialization_alias=key, description=description)


class Properties(BaseModel):
    """A typed part of the configuration."""

    # strict: a value is never converted (synth sees the type it was given); by name in Python, by key from a mapping
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, strict=True)

    def to_settings(self) -> dict[str, Any]:
        """The configuration mapping these properties mean: the keys that were set, as cdk.json would hold them."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class CaCertificate(Properties):
    """A CA that signs devices, written as an object (a plain PEM file path or PEM text is one too)."""

    pem: str = Field(description="the CA's PEM file (relative to the root) or PEM text")
    verification_certificate: str | None = _key(
        "verificationCertificate",
        "certificateMode DEFAULT: the certificate whose CN is the account's registration code, signed by the CA",
        CA_CERTIFICATE_DEFAULTS,
    )
    retired: bool = _key(
        "retired", "registered INACTIVE: no new devices, provisioned ones unaffected", CA_CERTIFICATE_DEFAULTS
    )
    revocation: RevocationSource | None = _key(
        "revocation", "where the revocation status of the certificates it issued is read", CA_CERTIFICATE_DEFAULTS
    )


class TrustRoot(Properties):
    """The trust root with the revocation sources of the CAs it issued."""

    pem: str = Field(description="the root's PEM file (relative to the root) or PEM text")
    revocation: RevocationSource | None = Field(
        None, description="where the revocation status of the CAs it issued is read"
    )


class ExistingResources(Properties):
    """Resources a template names that the stack does not create (each a list of names)."""

    policies: list[str] = Field(default_factory=list, description="IoT policies")
    thing_types: list[str] = Field(
        default_factory=list, validation_alias="thingTypes", serialization_alias="thingTypes", description="thing types"
    )
    thing_groups: list[str] = Field(
        default_factory=list,
        validation_alias="thingGroups",
        serialization_alias="thingGroups",
        description="thing groups",
    )
    billing_groups: list[str] = Field(
        default_factory=list,
        validation_alias="billingGroups",
        serialization_alias="billingGroups",
        description="billing groups",
    )


_SYNC = DEFAULTS["revocationSync"]
_EVENTS = DEFAULTS["decisionEvents"]


class RevocationSync(Properties):
    """When the revocation sync runs and how fast it may revoke (deployed only when a CA has revocation)."""

    schedule: str = _key("schedule", "an EventBridge schedule expression: rate(...) or cron(...)", _SYNC)
    update_tps: float = _key("updateTps", "its UpdateCertificate calls per second", _SYNC)


class DecisionEvents(Properties):
    """Each final decision published to EventBridge."""

    enabled: bool = _key("enabled", "whether decisions are published", _EVENTS)
    bus: str = _key("bus", "the event bus's name or ARN (\"default\": the account's default bus)", _EVENTS)


class Product(Properties):
    """One product line: its CAs and selector, and the settings of the top level it sets for itself."""

    ca_certificates: list[str] = Field(
        validation_alias="caCertificates",
        serialization_alias="caCertificates",
        description="its CAs: PEM files or text as in caCertificates, or certificate ids",
    )
    select: dict[str, str] | None = _product_key("select", "subject attribute -> regular expression matched in full")
    template: str | None = _product_key("template", "its provisioning template's file")
    template_name: str | None = _product_key("templateName", "its stored template's name (none: generated)")
    device_policy_parameter: str | None = _product_key(
        "devicePolicyParameter", "the template parameter set to the device policy's name"
    )
    device_profile: ProfileName | None = _product_key("deviceProfile", "the rules a device certificate must meet")
    cn_pattern: str | None = _product_key("cnPattern", "a regular expression every device's common name matches")
    max_validity_days: int | None = _product_key("maxValidityDays", "the longest validity a device certificate has")
    rejection_action: RejectionAction | None = _product_key("rejectionAction", "what a refused certificate becomes")
    existing_thing: ExistingThing | None = _product_key(
        "existingThing", "a thing of the same name, owned by another certificate: refuse or replace"
    )
    extra_parameters: dict[str, str] | None = _product_key(
        "extraParameters", "template parameter -> the value the deployment gives it"
    )
    certificate_extensions: dict[str, str] | None = _product_key(
        "certificateExtensions", "name -> dotted OID of an extension the template reads"
    )
    enrollment: EnrollmentSettings | None = _product_key("enrollment", "which identity its enrollment manifests list")
    hook: HookSettings | None = _product_key("hook", "the function consulted before a device is provisioned")


class JitrProperties(Properties):
    """Everything `JustInTimeRegistration` deploys, as typed properties (the `jitr` context of cdk.json)."""

    ca_certificates: list[str | CaCertificate] = _key(
        "caCertificates", "the CAs that sign your devices: PEM files (relative to the root), PEM text or objects"
    )
    certificate_mode: CertificateMode = _key("certificateMode", "SNI_ONLY (devices send SNI) or DEFAULT")
    provisioning_mode: ProvisioningMode = _key(
        "provisioningMode", "jitr: the handler checks every device; jitp: AWS provisions without jitr's checks"
    )
    template: str = _key("template", "the provisioning template's file (relative to the root)")
    template_name: str | None = _key("templateName", "the stored template's name (none: generated)")
    device_policy_parameter: str | None = _key(
        "devicePolicyParameter", "the template parameter set to the device policy's name (none: no device policy)"
    )
    device_profile: ProfileName = _key("deviceProfile", "the rules a device certificate must meet")
    cn_pattern: str | None = _key("cnPattern", "a regular expression every device's common name matches")
    max_validity_days: int | None = _key("maxValidityDays", "the longest validity a device certificate may have")
    trust_root: str | TrustRoot | None = _key(
        "trustRoot", "the root the CAs chain to: PEM file or text, or with the revocation of the CAs it issued"
    )
    rejection_action: RejectionAction = _key("rejectionAction", "what a refused certificate becomes")
    existing_thing: ExistingThing = _key(
        "existingThing", "a thing of the same name, owned by another certificate: refuse or replace"
    )
    clock_skew_seconds: int = _key(
        "clockSkewSeconds", "a notBefore at most this far in the future is retried, not refused"
    )
    decision_retention_days: int = _key("decisionRetentionDays", "how long decisions are kept")
    extra_parameters: dict[str, str] = _key(
        "extraParameters", "template parameter -> the value the deployment gives it"
    )
    certificate_extensions: dict[str, str] = _key(
        "certificateExtensions", "name -> dotted OID of an extension a template reads"
    )
    existing_resources: ExistingResources = _nested(
        "existingResources", ExistingResources, "resources a template names that the stack does not create"
    )
    register_thing_tps: int = _key("registerThingTps", "the account's RegisterThing quota, calls per second")
    max_receive_count: int = _key("maxReceiveCount", "deliveries of an event before it goes to the dead letters")
    alarm_email: str | None = _key("alarmEmail", "the address the alarms' topic mails (none: no subscription)")
    rejection_alarm_threshold: int = _key("rejectionAlarmThreshold", "rejections in 5 minutes that raise an alarm")
    queue_age_alarm_seconds: int = _key("queueAgeAlarmSeconds", "the oldest event's age that raises an alarm")
    log_retention_days: int = _key("logRetentionDays", "how long the functions' logs are kept")
    sweep_interval_minutes: int = _key("sweepIntervalMinutes", "how often the sweeper looks for missed devices")
    sweep_min_age_minutes: int = _key("sweepMinAgeMinutes", "how old a pending certificate is before it is swept")
    sweep_max_per_run: int = _key("sweepMaxPerRun", "the most certificates one sweep queues")
    revocation_sync: RevocationSync = _nested(
        "revocationSync", RevocationSync, "when and how fast the revocation sync runs"
    )
    development_pki: str = _key("developmentPki", "the development CA's folder (used when no CA is configured)")
    decision_events: DecisionEvents = _nested(
        "decisionEvents", DecisionEvents, "each final decision published to EventBridge"
    )
    products: dict[str, Product] | None = _key(
        "products", "the product lines: name -> its CAs, selector and settings (none: one product of every CA)"
    )
