"""moto's AWS IoT, completed and corrected where this project depends on it.

moto dispatches a request to the `IoTResponse` method named after the operation (snake case), which calls the
`IoTBackend`. `install()` gives both classes the operations moto lacks (RegisterThing, provisioning templates) and
replaces the ones it gets wrong for JITR (see AWS-NOTES: certificate ids, CA registration, DescribeCertificate,
UpdateCertificate transitions, CreateThing, the registration code). It is idempotent and process-wide.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import botocore.session
from botocore import xform_name
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.iot.models import FakeCaCertificate, FakeCertificate, FakeThing, IoTBackend
from moto.iot.responses import IoTResponse

from jitr.certificates import BadCertificate, certificate_id, load_certificate
from jitr.templates import TemplateError, parse_template
from jitr.templates.limits import TEMPLATE_NAME

from .errors import (
    CertificateStateException,
    CertificateValidationException,
    InvalidRequestException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
from .lookups import find_thing
from .register_thing import register_thing
from .state import ProvisioningTemplateRecord, extension

_installed = False
_install_lock = threading.Lock()
_original_create_thing = IoTBackend.create_thing

SETTABLE_STATUSES = ("ACTIVE", "INACTIVE", "REVOKED")


def install() -> None:
    """Complete moto's IoT in this process (safe to call more than once)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _patch_models()
        for name, method in _BACKEND_METHODS.items():
            setattr(IoTBackend, name, method)
        for name, method in _RESPONSE_METHODS.items():
            setattr(IoTResponse, name, method)
        _admit_every_operation()
        _installed = True


# Operations whose latency is taken inside the backend, where the delay matters (RegisterThing holds its certificate).
_PAUSES_ITSELF = frozenset({"RegisterThing"})


def _admit_every_operation() -> None:
    """Every AWS IoT API call goes through the same knobs: it is counted, then an injected fault is raised or the
    operation's quota is enforced, then its latency is added (`EmbeddedIoT.inject_faults`, `set_quota`,
    `set_latency`). moto dispatches a request to the `IoTResponse` method named after the operation, and turns an
    error raised there into AWS's error response, so each such method is wrapped once."""
    model = botocore.session.get_session().get_service_model("iot")
    for operation in model.operation_names:
        name = xform_name(operation)
        method = getattr(IoTResponse, name, None)
        if callable(method):
            setattr(IoTResponse, name, _admitted(operation, method))


def _admitted(operation: str, method: Callable[[IoTResponse], Any]) -> Callable[[IoTResponse], Any]:
    @functools.wraps(method)
    def admitted(self: IoTResponse) -> Any:
        state = extension(self.iot_backend)
        state.admit(operation)
        if operation not in _PAUSES_ITSELF:
            state.pause(operation)
        return method(self)

    return admitted


# -- models ---


def _patch_models() -> None:
    def compute_cert_id(self: FakeCertificate, certificate_pem: str) -> str:
        try:
            return certificate_id(load_certificate(certificate_pem))
        except BadCertificate:
            return hashlib.sha256(certificate_pem.encode()).hexdigest()

    def description(self: FakeCertificate) -> dict[str, Any]:
        validity = _validity(self.certificate_pem)
        result = {
            "certificateArn": self.arn,
            "certificateId": self.certificate_id,
            "status": self.status,
            "certificatePem": self.certificate_pem,
            "ownedBy": self.owner,
            "creationDate": self.creation_date,
            "lastModifiedDate": self.last_modified_date,
            "customerVersion": getattr(self, "customer_version", 1),
            "generationId": getattr(self, "generation_id", self.certificate_id[:32]),
            "validity": validity,
            "certificateMode": getattr(self, "certificate_mode", "DEFAULT"),
            "transferData": self.transfer_data,
        }
        if isinstance(self, FakeCaCertificate):
            result["autoRegistrationStatus"] = getattr(self, "auto_registration_status", "DISABLE")
        elif self.ca_certificate_id:
            result["caCertificateId"] = self.ca_certificate_id
        return result

    FakeCertificate.compute_cert_id = compute_cert_id  # type: ignore[method-assign]
    FakeCertificate.to_description_dict = description  # type: ignore[method-assign]


def _validity(pem: str) -> dict[str, datetime]:
    try:
        certificate = load_certificate(pem)
    except BadCertificate:
        now = utcnow()
        return {"notBefore": now, "notAfter": now}
    return {"notBefore": certificate.not_valid_before_utc, "notAfter": certificate.not_valid_after_utc}


# -- backend operations ---


def _get_registration_code(self: IoTBackend) -> str:
    """Stable per account and region, 64 hex characters, as AWS's is."""
    return hashlib.sha256(f"jitr-embedded:{self.account_id}:{self.region_name}".encode()).hexdigest()


def _register_ca_certificate(
    self: IoTBackend,
    ca_certificate: str,
    set_as_active: bool,
    registration_config: dict[str, str] | None,
    verification_certificate: str | None = None,
    allow_auto_registration: bool = False,
    certificate_mode: str | None = None,
) -> FakeCaCertificate:
    mode = certificate_mode or "DEFAULT"
    if mode not in ("DEFAULT", "SNI_ONLY"):
        raise InvalidRequestException(f"certificateMode must be DEFAULT or SNI_ONLY, got {mode!r}")
    try:
        ca = load_certificate(ca_certificate)
    except BadCertificate as exc:
        raise CertificateValidationException(f"The CA certificate is not valid: {exc}") from exc
    ca_id = certificate_id(ca)
    if ca_id in self.ca_certificates:
        raise ResourceAlreadyExistsException(f"The CA certificate {ca_id} is already registered")
    if mode == "SNI_ONLY" and verification_certificate:
        raise InvalidRequestException("verificationCertificate must be empty when certificateMode is SNI_ONLY")
    if mode == "DEFAULT":
        _check_verification_certificate(self, ca, verification_certificate)
    config = registration_config or {}
    template_name = config.get("templateName")
    if template_name:
        record = extension(self).templates.get(template_name)
        if record is None or record.type != "JITP":
            raise InvalidRequestException(
                f"registrationConfig.templateName {template_name!r} must name a JITP template"
            )
    ca_cert = FakeCaCertificate(
        ca_certificate, "ACTIVE" if set_as_active else "INACTIVE", self.account_id, self.region_name, config
    )
    ca_cert.arn = ca_cert.arn.replace(":cert/", ":cacert/")
    ca_cert.auto_registration_status = "ENABLE" if allow_auto_registration else "DISABLE"
    ca_cert.certificate_mode = mode
    self.ca_certificates[ca_cert.certificate_id] = ca_cert
    return ca_cert


def _check_verification_certificate(self: IoTBackend, ca: x509.Certificate, pem: str | None) -> None:
    if not pem:
        raise InvalidRequestException("certificateMode DEFAULT needs a verificationCertificate")
    try:
        verification = load_certificate(pem)
    except BadCertificate as exc:
        raise CertificateValidationException(f"The verification certificate is not valid: {exc}") from exc
    names = verification.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not names or names[0].value != self.get_registration_code():
        raise CertificateValidationException(
            "The verification certificate's common name must be this account's registration code"
        )
    try:
        verification.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CertificateValidationException("The verification certificate is not signed by the CA's key") from exc


def _update_ca_certificate(
    self: IoTBackend,
    certificate_id: str,
    new_status: str | None,
    config: dict[str, str] | None,
    new_auto_registration_status: str | None = None,
    remove_auto_registration: bool = False,
) -> None:
    ca = self.describe_ca_certificate(certificate_id)
    if new_status is not None:
        if new_status not in ("ACTIVE", "INACTIVE"):
            raise InvalidRequestException(f"a CA certificate's status is ACTIVE or INACTIVE, not {new_status!r}")
        ca.status = new_status
    if config is not None:
        ca.registration_config = config
    if new_auto_registration_status is not None:
        ca.auto_registration_status = new_auto_registration_status
    if remove_auto_registration:
        ca.registration_config = {}


def _describe_ca_certificate(self: IoTBackend, certificate_id: str) -> FakeCaCertificate:
    found = self.ca_certificates.get(certificate_id)
    if found is None:
        raise ResourceNotFoundException(f"CA certificate {certificate_id} does not exist")
    return found


def _describe_certificate(self: IoTBackend, certificate_id: str) -> FakeCertificate:
    found = self.certificates.get(certificate_id)
    if found is None:
        raise ResourceNotFoundException(f"certificate {certificate_id} does not exist")
    return found


def _update_certificate(self: IoTBackend, certificate_id: str, new_status: str) -> None:
    certificate = self.describe_certificate(certificate_id)
    if new_status not in SETTABLE_STATUSES:
        raise InvalidRequestException(
            f"newStatus {new_status!r} cannot be set; PENDING_TRANSFER and PENDING_ACTIVATION are used by AWS IoT only"
        )
    if certificate.status == "REVOKED" and new_status != "REVOKED":
        raise CertificateStateException(f"certificate {certificate_id} is REVOKED; a revoked certificate stays revoked")
    certificate.status = new_status
    certificate.last_modified_date = utcnow()


def _describe_thing(self: IoTBackend, thing_name: str) -> FakeThing:
    thing = find_thing(self, thing_name)
    if thing is None:
        raise ResourceNotFoundException(f"thing {thing_name} does not exist")
    return thing


_original_get_principal = IoTBackend._get_principal


def _get_principal(self: IoTBackend, principal_arn: str) -> Any:
    if ":cert/" in principal_arn:
        certificate = self.certificates.get(principal_arn.rsplit("/", 1)[-1])
        if certificate is None or certificate.arn != principal_arn:
            raise ResourceNotFoundException(f"certificate {principal_arn} does not exist")
        return certificate
    return _original_get_principal(self, principal_arn)


def _create_thing(
    self: IoTBackend,
    thing_name: str,
    thing_type_name: str | None,
    attribute_payload: dict[str, Any] | None,
    billing_group_name: str | None = None,
) -> FakeThing:
    existing = find_thing(self, thing_name)
    if existing is None:
        return _original_create_thing(self, thing_name, thing_type_name, attribute_payload, billing_group_name)
    same = (
        (existing.thing_type.thing_type_name if existing.thing_type else None) == (thing_type_name or None)
        and existing.attributes == ((attribute_payload or {}).get("attributes") or {})
        and (existing.billing_group_name or None) == (billing_group_name or None)
    )
    if not same:
        raise ResourceAlreadyExistsException(f"Thing {thing_name} already exists with a different configuration")
    return existing


_original_attach_thing_principal = IoTBackend.attach_thing_principal
_original_detach_thing_principal = IoTBackend.detach_thing_principal


def _attach_thing_principal(self: IoTBackend, thing_name: str, principal_arn: str) -> None:
    _original_attach_thing_principal(self, thing_name, principal_arn)
    extension(self).thing_principals.setdefault(thing_name, set()).add(principal_arn)


def _detach_thing_principal(self: IoTBackend, thing_name: str, principal_arn: str) -> None:
    _original_detach_thing_principal(self, thing_name, principal_arn)
    extension(self).thing_principals.get(thing_name, set()).discard(principal_arn)


def _list_thing_principals(self: IoTBackend, thing_name: str) -> list[str]:
    """By key: moto scans every thing and every attachment, which a fleet rehearsal cannot afford."""
    self.describe_thing(thing_name)  # ResourceNotFoundException as AWS raises it
    indexed = extension(self).thing_principals.get(thing_name, set())
    return sorted(arn for arn in indexed if (arn, thing_name) in self.principal_things)


# -- provisioning templates ---


def _create_provisioning_template(
    self: IoTBackend,
    template_name: str,
    template_body: str,
    provisioning_role_arn: str,
    description: str = "",
    enabled: bool = False,
    template_type: str | None = None,
    pre_provisioning_hook: dict[str, Any] | None = None,
) -> ProvisioningTemplateRecord:
    state = extension(self)
    if not TEMPLATE_NAME.fullmatch(template_name or ""):
        raise InvalidRequestException(f"templateName {template_name!r} must match [0-9A-Za-z_-]{{1,36}}")
    if template_name in state.templates:
        raise ResourceAlreadyExistsException(f"Provisioning template {template_name} already exists")
    kind = template_type or "FLEET_PROVISIONING"
    if kind not in ("FLEET_PROVISIONING", "JITP"):
        raise InvalidRequestException(f"type must be FLEET_PROVISIONING or JITP, got {kind!r}")
    _check_body(template_body)
    now = utcnow()
    record = ProvisioningTemplateRecord(
        name=template_name,
        arn=f"arn:aws:iot:{self.region_name}:{self.account_id}:provisioningtemplate/{template_name}",
        body=template_body,
        role_arn=provisioning_role_arn,
        type=kind,
        enabled=bool(enabled),
        description=description or "",
        created=now,
        modified=now,
        pre_provisioning_hook=pre_provisioning_hook,
    )
    state.templates[template_name] = record
    return record


def _check_body(body: str) -> None:
    try:
        parse_template(body)
    except TemplateError as exc:
        raise InvalidRequestException(f"The template body is not valid: {exc}") from exc


def _describe_provisioning_template(self: IoTBackend, template_name: str) -> ProvisioningTemplateRecord:
    record = extension(self).templates.get(template_name)
    if record is None:
        raise ResourceNotFoundException(f"Provisioning template {template_name} does not exist")
    return record


def _update_provisioning_template(
    self: IoTBackend,
    template_name: str,
    description: str | None = None,
    enabled: bool | None = None,
    provisioning_role_arn: str | None = None,
) -> None:
    record = self.describe_provisioning_template(template_name)
    if description is not None:
        record.description = description
    if enabled is not None:
        record.enabled = bool(enabled)
    if provisioning_role_arn is not None:
        record.role_arn = provisioning_role_arn
    record.modified = utcnow()


def _delete_provisioning_template(self: IoTBackend, template_name: str) -> None:
    self.describe_provisioning_template(template_name)
    del extension(self).templates[template_name]


_BACKEND_METHODS = {
    "get_registration_code": _get_registration_code,
    "register_ca_certificate": _register_ca_certificate,
    "update_ca_certificate": _update_ca_certificate,
    "describe_ca_certificate": _describe_ca_certificate,
    "describe_certificate": _describe_certificate,
    "update_certificate": _update_certificate,
    "create_thing": _create_thing,
    "describe_thing": _describe_thing,
    "attach_thing_principal": _attach_thing_principal,
    "detach_thing_principal": _detach_thing_principal,
    "list_thing_principals": _list_thing_principals,
    "_get_principal": _get_principal,
    "create_provisioning_template": _create_provisioning_template,
    "describe_provisioning_template": _describe_provisioning_template,
    "update_provisioning_template": _update_provisioning_template,
    "delete_provisioning_template": _delete_provisioning_template,
    "register_thing": register_thing,
}


# -- HTTP (IoTResponse) ---


def _path_id(response: IoTResponse) -> str:
    """The id at the end of the request path (the CA operations name it in the URI)."""
    return unquote(response.path.split("?")[0].rstrip("/").split("/")[-1])


def _r_register_ca_certificate(self: IoTResponse) -> ActionResult:
    ca = self.iot_backend.register_ca_certificate(
        ca_certificate=self._get_param("caCertificate"),
        set_as_active=self._get_bool_param("setAsActive", False),
        registration_config=self._get_param("registrationConfig"),
        verification_certificate=self._get_param("verificationCertificate"),
        allow_auto_registration=self._get_bool_param("allowAutoRegistration", False),
        certificate_mode=self._get_param("certificateMode"),
    )
    return ActionResult({"certificateId": ca.certificate_id, "certificateArn": ca.arn})


def _r_update_ca_certificate(self: IoTResponse) -> ActionResult:
    self.iot_backend.update_ca_certificate(
        certificate_id=_path_id(self),
        new_status=self._get_param("newStatus"),
        config=self._get_param("registrationConfig"),
        new_auto_registration_status=self._get_param("newAutoRegistrationStatus"),
        remove_auto_registration=self._get_bool_param("removeAutoRegistration", False),
    )
    return EmptyResult()


def _r_describe_ca_certificate(self: IoTResponse) -> ActionResult:
    ca = self.iot_backend.describe_ca_certificate(_path_id(self))
    result: dict[str, Any] = {"certificateDescription": ca.to_description_dict()}
    if ca.registration_config:
        result["registrationConfig"] = ca.registration_config
    return ActionResult(result)


def _r_create_provisioning_template(self: IoTResponse) -> ActionResult:
    record = self.iot_backend.create_provisioning_template(
        template_name=self._get_param("templateName"),
        template_body=self._get_param("templateBody"),
        provisioning_role_arn=self._get_param("provisioningRoleArn"),
        description=self._get_param("description", ""),
        enabled=self._get_bool_param("enabled", False),
        template_type=self._get_param("type"),
        pre_provisioning_hook=self._get_param("preProvisioningHook"),
    )
    return ActionResult({"templateArn": record.arn, "templateName": record.name, "defaultVersionId": record.version})


def _summary(record: ProvisioningTemplateRecord) -> dict[str, Any]:
    return {
        "templateArn": record.arn,
        "templateName": record.name,
        "description": record.description,
        "creationDate": record.created,
        "lastModifiedDate": record.modified,
        "enabled": record.enabled,
        "type": record.type,
    }


def _r_describe_provisioning_template(self: IoTResponse) -> ActionResult:
    record = self.iot_backend.describe_provisioning_template(self._get_param("templateName"))
    return ActionResult(
        {
            **_summary(record),
            "defaultVersionId": record.version,
            "templateBody": record.body,
            "provisioningRoleArn": record.role_arn,
            **({"preProvisioningHook": record.pre_provisioning_hook} if record.pre_provisioning_hook else {}),
        }
    )


def _r_list_provisioning_templates(self: IoTResponse) -> ActionResult:
    records = extension(self.iot_backend).templates.values()
    return ActionResult({"templates": [_summary(r) for r in records]})


def _r_update_provisioning_template(self: IoTResponse) -> ActionResult:
    self.iot_backend.update_provisioning_template(
        template_name=self._get_param("templateName"),
        description=self._get_param("description"),
        enabled=self._get_param("enabled"),
        provisioning_role_arn=self._get_param("provisioningRoleArn"),
    )
    return EmptyResult()


def _r_delete_provisioning_template(self: IoTResponse) -> ActionResult:
    self.iot_backend.delete_provisioning_template(self._get_param("templateName"))
    return EmptyResult()


def _r_register_thing(self: IoTResponse) -> ActionResult:
    body = self._get_param("templateBody")
    if not isinstance(body, str):
        raise InvalidRequestException("templateBody is required")
    return ActionResult(self.iot_backend.register_thing(body, self._get_param("parameters") or {}))


_RESPONSE_METHODS = {
    "register_ca_certificate": _r_register_ca_certificate,
    "update_ca_certificate": _r_update_ca_certificate,
    "describe_ca_certificate": _r_describe_ca_certificate,
    "create_provisioning_template": _r_create_provisioning_template,
    "describe_provisioning_template": _r_describe_provisioning_template,
    "list_provisioning_templates": _r_list_provisioning_templates,
    "update_provisioning_template": _r_update_provisioning_template,
    "delete_provisioning_template": _r_delete_provisioning_template,
    "register_thing": _r_register_thing,
}

__all__ = ["SETTABLE_STATUSES", "install"]
