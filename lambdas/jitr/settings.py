"""The handler's settings: one typed model holding each setting's name, type, default and the environment variable
it travels in (its alias). The stack writes the function's environment with `to_environment()`, the handler reads it
back with `from_environment()`; the rehearsal and `jitr invoke` use the same two calls."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .certificates import PROFILES, DeviceProfile
from .pacing import AWS_DEFAULT_TPS, share
from .products import (
    IMPLICIT,
    RULES,
    ExistingThing,
    Product,
    ProfileName,
    RejectionAction,
    extensions,
    regular_expression,
)

REJECTION_ACTIONS: tuple[str, ...] = RejectionAction.__args__  # type: ignore[attr-defined]
# What a new certificate does to a thing that already has another ACTIVE certificate: refuse it (one thing, one
# owner), or replace the thing's certificates from the same CA (fleets that re-issue certificates).
EXISTING_THING_ACTIONS: tuple[str, ...] = ExistingThing.__args__  # type: ignore[attr-defined]
CLOCK_SKEW_SECONDS = 300  # a notBefore at most this far ahead is retried, not refused (device and CA clocks drift)


OnUnknown = Literal["retry", "accept"]
DEFAULT_CRL_GRACE_SECONDS = 3600  # a CRL past its nextUpdate by at most this much is still taken as current
DEFAULT_CRL_CACHE_SECONDS = 86_400  # a CRL is kept until its nextUpdate, and at most this long
DEFAULT_CRL_MAX_BYTES = 20 * 1024 * 1024  # a 100,000-entry CRL is about 2-4 MB
DEFAULT_SOURCE_TIMEOUT_SECONDS = 5.0
DEFAULT_OCSP_MAX_AGE_SECONDS = 3600  # an OCSP answer without nextUpdate is taken as current this long after thisUpdate


class RevocationSource(BaseModel):
    """Where the revocation status of the certificates one CA issued is learned, and what to do when it cannot be.
    Keyed by that CA's certificate id in `Settings.revocation`."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    crl: tuple[str, ...] = ()  # the CA's CRL: http://, https:// or s3://bucket/key URLs, tried in order
    # hosts a certificate's own CRL distribution point may name (read only when its host is listed here)
    certificate_hosts: tuple[str, ...] = Field((), alias="certificateHosts")
    grace_seconds: int = Field(DEFAULT_CRL_GRACE_SECONDS, alias="graceSeconds", ge=0, le=7 * 86_400)
    cache_seconds: int = Field(DEFAULT_CRL_CACHE_SECONDS, alias="cacheSeconds", ge=0, le=7 * 86_400)
    max_bytes: int = Field(DEFAULT_CRL_MAX_BYTES, alias="maxBytes", ge=1024, le=200 * 1024 * 1024)
    timeout_seconds: float = Field(DEFAULT_SOURCE_TIMEOUT_SECONDS, alias="timeoutSeconds", gt=0, le=30)
    on_unknown: OnUnknown = Field("retry", alias="onUnknown")  # accept: provision when the status cannot be learned
    # the CA's OCSP responders (http:// or https:// URLs), asked before the CRLs, in order
    ocsp: tuple[str, ...] = ()
    # also ask the responder the certificate names (authorityInfoAccess), when its host is in `certificateHosts`
    ocsp_from_certificate: bool = Field(False, alias="ocspFromCertificate")
    ocsp_max_age_seconds: int = Field(DEFAULT_OCSP_MAX_AGE_SECONDS, alias="ocspMaxAgeSeconds", ge=0, le=7 * 86_400)

    @field_validator("ocsp")
    @classmethod
    def _responder_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url!r} is not an http:// or https:// OCSP responder URL")
        return urls


_PRODUCT = Product.model_fields  # the rules a product may set take their defaults from the product's model


class SettingsError(ValueError):
    """The function is misconfigured; the message names the variable."""


class Settings(BaseModel):
    """Everything the handler is configured with. Field names are the Python names; aliases the variables."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    template_name: str = Field(alias="JITR_TEMPLATE_NAME", min_length=1)
    rejection_action: RejectionAction = Field(_PRODUCT["rejection_action"].default, alias="JITR_REJECTION_ACTION")
    device_profile: ProfileName = Field(_PRODUCT["device_profile"].default, alias="JITR_DEVICE_PROFILE")
    cn_pattern: str | None = Field(None, alias="JITR_CN_PATTERN")
    max_validity_days: int | None = Field(None, alias="JITR_MAX_VALIDITY_DAYS", ge=1)
    trust_root_pem: str | None = Field(None, alias="JITR_TRUST_ROOT_PEM")
    extra_parameters: dict[str, str] = Field(default_factory=dict, alias="JITR_EXTRA_PARAMETERS")
    # extensions a template may read, as Jitr::Certificate::Extension::<name>: name -> dotted OID
    certificate_extensions: dict[str, str] = Field(default_factory=dict, alias="JITR_CERTIFICATE_EXTENSIONS")
    existing_thing: ExistingThing = Field(_PRODUCT["existing_thing"].default, alias="JITR_EXISTING_THING")
    clock_skew_seconds: int = Field(CLOCK_SKEW_SECONDS, alias="JITR_CLOCK_SKEW_SECONDS", ge=0, le=86400)
    template_cache_seconds: float = Field(300.0, alias="JITR_TEMPLATE_CACHE_SECONDS", ge=0)
    ca_cache_seconds: float = Field(60.0, alias="JITR_CA_CACHE_SECONDS", ge=0)  # a deactivated CA counts within it
    max_attempts: int = Field(5, alias="JITR_MAX_ATTEMPTS", ge=1, le=20)
    endpoint_url: str | None = Field(None, alias="JITR_IOT_ENDPOINT_URL")
    decision_table: str | None = Field(None, alias="JITR_DECISION_TABLE")  # one decision per certificate id
    decision_retention_days: int = Field(30, alias="JITR_DECISION_RETENTION_DAYS", ge=1, le=3650)
    register_thing_tps: float | None = Field(None, alias="JITR_REGISTER_THING_TPS", gt=0)  # the account's quota
    # the account's quotas of the other calls the handler makes (default: AWS's, scaled as register_thing_tps is)
    iot_quotas: dict[str, float] = Field(default_factory=dict, alias="JITR_IOT_QUOTAS")
    max_concurrency: int | None = Field(None, alias="JITR_MAX_CONCURRENCY", ge=1)  # the event source mapping's
    # issuer revocation: the CRL sources of each CA (by its certificate id) whose certificates are checked
    revocation: dict[str, RevocationSource] = Field(default_factory=dict, alias="JITR_REVOCATION")
    # the revocation sync's share of the UpdateCertificate quota, in calls per second (the handler uses the rest)
    sync_update_tps: float = Field(2.0, alias="JITR_SYNC_UPDATE_TPS", gt=0, le=100)
    # the EventBridge bus (name or ARN) each final decision is published to; unset: none is (needs decision_table)
    event_bus: str | None = Field(None, alias="JITR_EVENT_BUS", min_length=1, max_length=1600)
    # the product lines, each with its CAs, selector, template and rules; unset: one product of every CA, decided with
    # the settings above
    products: tuple[Product, ...] = Field((), alias="JITR_PRODUCTS")
    # the stack's enrollment table (when a product requires enrollment)
    enrollment_table: str | None = Field(None, alias="JITR_ENROLLMENT_TABLE", min_length=1)
    # only for a rehearsal on one machine (a CRL served on 127.0.0.1): the stack never sets it
    revocation_allow_loopback: bool = Field(False, alias="JITR_REVOCATION_ALLOW_LOOPBACK")

    @field_validator(
        "extra_parameters", "certificate_extensions", "iot_quotas", "revocation", "products", mode="before"
    )
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc.msg}") from None

    _extensions = field_validator("certificate_extensions")(classmethod(lambda cls, v: extensions(v)))
    _cn_pattern = field_validator("cn_pattern")(classmethod(lambda cls, v: regular_expression(v)))

    @property
    def profile(self) -> DeviceProfile:
        return PROFILES[self.device_profile].with_options(self.cn_pattern, self.max_validity_days)

    @property
    def product_lines(self) -> tuple[Product, ...]:
        """The products a certificate is chosen among: those configured, else one of every CA with these settings."""
        if self.products:
            return self.products
        rules = {rule: getattr(self, rule) for rule in RULES}
        return (Product(name=IMPLICIT, template=self.template_name, **rules),)

    def for_product(self, product: Product) -> Settings:
        """These settings with the product's rules in place of the stack's."""
        rules = {rule: getattr(product, rule) for rule in RULES}
        return self.model_copy(update={"template_name": product.template, **rules})

    @property
    def register_rate_per_s(self) -> float | None:
        """This environment's share of the quota (None: unpaced)."""
        return share(self.register_thing_tps, self.max_concurrency)

    @property
    def rates_per_s(self) -> dict[str, float]:
        """This environment's share of every quota-bound call's quota: the configured quotas, else AWS's defaults
        scaled by the RegisterThing quota's ratio to AWS's default (unpaced when no RegisterThing quota is set)."""
        if not self.register_thing_tps:
            return {}
        factor = self.register_thing_tps / AWS_DEFAULT_TPS["RegisterThing"]
        # RegisterThing's own quota is `register_thing_tps`, whatever `iot_quotas` says
        quotas = {operation: tps * factor for operation, tps in AWS_DEFAULT_TPS.items()} | self.iot_quotas
        quotas["RegisterThing"] = self.register_thing_tps
        if self.revocation:  # the revocation sync takes its share of UpdateCertificate; the handlers share the rest
            quotas["UpdateCertificate"] = max(quotas["UpdateCertificate"] - self.sync_update_tps, 1.0)
        return {operation: share(tps, self.max_concurrency) or 0.0 for operation, tps in quotas.items()}

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable `field` travels in."""
        alias = cls.model_fields[field].alias
        assert alias is not None
        return alias

    def _travels(self, name: str) -> bool:
        """Whether a set setting goes into the environment: the revocation settings only where revocation is on (a
        stack without it keeps the environment it had)."""
        if name == "revocation_allow_loopback":
            return self.revocation_allow_loopback
        if name == "sync_update_tps":
            return bool(self.revocation)
        return True

    def to_environment(self) -> dict[str, str]:
        """The variables that carry these settings (unset ones are left out)."""
        environment: dict[str, str] = {}
        dumped = self.model_dump(mode="json", by_alias=True)
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None or value in ({}, ()) or not self._travels(name):
                continue
            if name == "revocation":  # each CA's settings without their defaults: Lambda's environment is 4 KB
                sources = {
                    ca: source.model_dump(mode="json", by_alias=True, exclude_defaults=True)
                    for ca, source in value.items()
                }
                text = json.dumps(sources, separators=(",", ":"))
            elif name == "products":  # each product without the defaults it keeps: Lambda's environment is 4 KB
                products = [p.model_dump(mode="json", by_alias=True, exclude_defaults=True) for p in value]
                text = json.dumps(products, separators=(",", ":"))
            elif isinstance(value, dict):
                text = json.dumps(dumped[self.variable(name)], separators=(",", ":"))
            elif isinstance(value, float) and value.is_integer():
                text = str(int(value))
            else:
                text = str(value)
            environment[self.variable(name)] = text
        return environment

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings back; raises `SettingsError` naming every variable that is wrong."""
        env = os.environ if env is None else env
        variables = [cls.variable(name) for name in cls.model_fields]
        values = {variable: env[variable] for variable in variables if env.get(variable)}
        try:
            return cls.model_validate(values)
        except (ValidationError, json.JSONDecodeError) as exc:
            raise SettingsError(_explain(exc)) from exc


def _explain(exc: ValidationError | json.JSONDecodeError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{Settings.variable('extra_parameters')} is not a JSON object: {exc.msg}"
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        problems.append(f"{where}: {error['msg']}")
    return "the function's settings are not valid: " + "; ".join(problems)
