"""The stack's configuration: read from cdk.json context (or the JSON file `jitr:configFile` names), checked at synth.

Every mistake is a `ConfigError` that names the setting and says how to fix it. Nothing here calls AWS: synth is a
function of the repository and its context values.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from jitr.certificates import PROFILES, certificate_id
from jitr.settings import REJECTION_ACTIONS
from jitr.templates import Template, TemplateError, parse_template
from jitr.templates.limits import TEMPLATE_NAME

CONTEXT_KEY = "jitr"
CONFIG_FILE_KEY = "jitr:configFile"
CERTIFICATE_MODES = ("DEFAULT", "SNI_ONLY")
PROVISIONING_MODES = ("jitr", "jitp")
REGISTRATION_CODE = re.compile(r"^[0-9a-f]{64}$")
# What JITP fills in from the device certificate; any other template parameter needs a Default in jitp mode.
JITP_PARAMETERS = frozenset(
    f"AWS::IoT::Certificate::{name}"
    for name in (
        "CommonName",
        "SerialNumber",
        "Country",
        "Organization",
        "OrganizationalUnit",
        "DistinguishedNameQualifier",
        "StateName",
        "Id",
    )
)
KNOWN_KEYS = frozenset(
    {
        "caCertificates",
        "certificateMode",
        "provisioningMode",
        "template",
        "templateName",
        "devicePolicyParameter",
        "deviceProfile",
        "cnPattern",
        "maxValidityDays",
        "trustRoot",
        "rejectionAction",
        "registerThingTps",
        "maxReceiveCount",
        "alarmEmail",
        "rejectionAlarmThreshold",
        "queueAgeAlarmSeconds",
        "logRetentionDays",
        "developmentPki",
    }
)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ConfigError(ValueError):
    """The configuration cannot be deployed; the message names the setting."""


@dataclass(frozen=True)
class CaCertificate:
    pem: str
    certificate_id: str
    subject: str
    verification_pem: str | None = None


@dataclass(frozen=True)
class JitrConfig:
    cas: tuple[CaCertificate, ...]
    certificate_mode: str
    provisioning_mode: str
    template: Template
    template_path: str
    template_name: str | None = None
    device_policy_parameter: str | None = "DevicePolicyName"
    device_profile: str = "strict"
    cn_pattern: str | None = None
    max_validity_days: int | None = None
    trust_root_pem: str | None = None
    rejection_action: str = "REVOKED"
    register_thing_tps: int = 10
    max_receive_count: int = 5
    alarm_email: str | None = None
    rejection_alarm_threshold: int = 20
    queue_age_alarm_seconds: int = 600
    log_retention_days: int = 30
    development_ca: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def validated(self) -> bool:
        """True when our handler decides (jitr); False when AWS provisions by itself (jitp)."""
        return self.provisioning_mode == "jitr"


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
        overlay = _json(path.read_text(), str(config_file))
        if not isinstance(overlay, dict):
            raise ConfigError(f"{config_file} must hold a JSON object")
        settings.update(overlay)
    return settings


def development_ca(folder: Path) -> tuple[str, bool]:
    """The development issuing CA's PEM (made under `folder` on first use) and whether it was made now."""
    from jitr_tools.pki import development_ca as make  # the development PKI is an operator tool, not infra

    ca, created = make(folder)
    return ca.pem, created


def load_config(
    settings: Mapping[str, Any],
    root: Path,
    *,
    development_ca: Callable[[Path], tuple[str, bool]] | None = development_ca,
    at: dt.datetime | None = None,
) -> JitrConfig:
    """Check `settings` and return a typed configuration. With no CA configured, `development_ca` makes one
    (`None` makes a CA required)."""
    unknown = sorted(set(settings) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_KEYS))}")
    at = at or dt.datetime.now(dt.UTC)
    notes: list[str] = []

    provisioning_mode = _choice(settings, "provisioningMode", PROVISIONING_MODES, "jitr")
    certificate_mode = _choice(settings, "certificateMode", CERTIFICATE_MODES, "SNI_ONLY")
    entries = settings.get("caCertificates") or []
    if not isinstance(entries, list):
        raise ConfigError("caCertificates must be a list of PEM file paths or {pem, verificationCertificate} objects")
    dev = False
    if not entries:
        if development_ca is None:
            raise ConfigError("caCertificates is empty: name the PEM file of the CA that signs your devices")
        folder = root / str(settings.get("developmentPki", ".dev-pki"))
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

    template_path = str(settings.get("template", "templates/jitr-device.json"))
    template = _template(root / template_path, template_path, provisioning_mode)
    template_name = settings.get("templateName")
    if template_name is not None and not TEMPLATE_NAME.fullmatch(str(template_name)):
        raise ConfigError(f"templateName {template_name!r} must match {TEMPLATE_NAME.pattern}")
    policy_parameter = settings.get("devicePolicyParameter", "DevicePolicyName")
    if policy_parameter is not None and policy_parameter not in template.parameters:
        notes.append(
            f"{template_path} declares no parameter {policy_parameter!r}: no device policy is created;"
            " the template must name or contain its own policy"
        )
        policy_parameter = None

    profile = _choice(settings, "deviceProfile", tuple(PROFILES), "strict")
    cn_pattern = settings.get("cnPattern")
    if cn_pattern is not None:
        try:
            re.compile(str(cn_pattern))
        except re.error as exc:
            raise ConfigError(f"cnPattern is not a regular expression: {exc}") from exc
    trust_root = settings.get("trustRoot")
    trust_root_pem = None
    if trust_root:
        trust_root_pem = _pem(str(trust_root), "trustRoot", root)
        _certificate(trust_root_pem, "trustRoot")
    if not validated_mode(provisioning_mode):
        for key in ("deviceProfile", "cnPattern", "maxValidityDays", "trustRoot", "rejectionAction"):
            if key in settings:
                notes.append(f"{key} has no effect in jitp mode: AWS provisions devices without jitr's checks")

    email = settings.get("alarmEmail")
    if email is not None and not EMAIL.match(str(email)):
        raise ConfigError(f"alarmEmail {email!r} is not an e-mail address")
    return JitrConfig(
        cas=cas,
        certificate_mode=certificate_mode,
        provisioning_mode=provisioning_mode,
        template=template,
        template_path=template_path,
        template_name=str(template_name) if template_name is not None else None,
        device_policy_parameter=policy_parameter,
        device_profile=profile,
        cn_pattern=str(cn_pattern) if cn_pattern is not None else None,
        max_validity_days=_integer(settings, "maxValidityDays", None, 1, 36500),
        trust_root_pem=trust_root_pem,
        rejection_action=_choice(settings, "rejectionAction", REJECTION_ACTIONS, "REVOKED"),
        register_thing_tps=_integer(settings, "registerThingTps", 10, 1, 10000) or 10,
        max_receive_count=_integer(settings, "maxReceiveCount", 5, 2, 1000) or 5,
        alarm_email=str(email) if email else None,
        rejection_alarm_threshold=_integer(settings, "rejectionAlarmThreshold", 20, 1, 10**6) or 20,
        queue_age_alarm_seconds=_integer(settings, "queueAgeAlarmSeconds", 600, 60, 14 * 24 * 3600) or 600,
        log_retention_days=_integer(settings, "logRetentionDays", 30, 1, 3653) or 30,
        development_ca=dev,
        notes=tuple(notes),
    )


def validated_mode(provisioning_mode: str) -> bool:
    return provisioning_mode == "jitr"


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not valid JSON: {exc}") from exc


def _choice(settings: Mapping[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
    value = settings.get(key, default)
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _integer(settings: Mapping[str, Any], key: str, default: int | None, low: int, high: int) -> int | None:
    value = settings.get(key, default)
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
    extra = set(entry) - {"pem", "verificationCertificate"}
    if extra:
        raise ConfigError(f"{key} has unknown key(s) {', '.join(sorted(extra))}")
    ca = _certificate(_pem(str(entry["pem"]), key, root), key)
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise ConfigError(f"{key} ({ca.subject.rfc4514_string()}) is not a CA certificate (basicConstraints CA:TRUE)")
    if ca.not_valid_after_utc <= at:
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
    return CaCertificate(only_ca, certificate_id(ca), ca.subject.rfc4514_string(), verification_pem)


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
