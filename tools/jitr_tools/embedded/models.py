"""The embedded AWS IoT's state and operations: moto's `IoTBackend`, extended where this project depends on it.

`EmbeddedBackend` is the backend class moto makes for every account and region once `install()` has run (moto's
`BackendDict` builds backends from the class it holds). It keeps jitr's own state (`extension`: provisioning
templates, quotas, faults, latency, subscribers, counters, indexes) beside moto's, and adds or corrects the operations
below. Each says which AWS behaviour it models and where AWS is silent. Certificate ids are the SHA-256 of the DER:
moto's own switch, `mock_aws(config={"iot": {"use_valid_cert": True}})` (`jitr_tools.embedded.mock()`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from moto.core.utils import utcnow
from moto.iot import urls as moto_iot_urls
from moto.iot.models import FakeCaCertificate, FakeCertificate, FakeThing, IoTBackend

from jitr.certificates import BadCertificate, certificate_id, load_certificate
from jitr.templates import TemplateError, parse_template
from jitr.templates.limits import TEMPLATE_NAME
from jitr_tools.iot.authorization import PolicyError, policy_statements

from .errors import (
    CertificateStateException,
    CertificateValidationException,
    InvalidRequestException,
    MalformedPolicyException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
from .listing import page
from .lookups import find_thing
from .register_thing import register_thing
from .state import Extension, ProvisioningTemplateRecord

SETTABLE_STATUSES = ("ACTIVE", "INACTIVE", "REVOKED")


class EmbeddedCaCertificate(FakeCaCertificate):
    """A registered CA with what moto does not keep: auto-registration and the certificate mode."""

    auto_registration_status: str = "DISABLE"
    certificate_mode: str = "DEFAULT"


class EmbeddedBackend(IoTBackend):
    """One account and region of the embedded AWS IoT."""

    def __init__(self, region_name: str, account_id: str) -> None:
        """A backend of moto's, with jitr's own state for this account and region beside it."""
        super().__init__(region_name, account_id)
        self.extension = Extension()

    @property
    def _url_module(self) -> Any:
        """moto's server finds a service's URL routes next to its backend class; ours are moto's IoT routes."""
        return moto_iot_urls

    def register_thing(self, template_body: str, parameters: dict[str, str]) -> dict[str, Any]:
        """RegisterThing (moto has none): render the template with jitr's engine, then apply the plan; every check
        runs before the first change (see `register_thing`)."""
        return register_thing(self, self.extension, template_body, parameters)

    def get_registration_code(self) -> str:
        """Stable per account and region, 64 hex characters, as AWS's is."""
        return hashlib.sha256(f"jitr-embedded:{self.account_id}:{self.region_name}".encode()).hexdigest()

    def register_ca_certificate(
        self,
        ca_certificate: str,
        set_as_active: bool,
        registration_config: dict[str, str] | None,
        verification_certificate: str | None = None,
        allow_auto_registration: bool = False,
        certificate_mode: str | None = None,
    ) -> FakeCaCertificate:
        """RegisterCACertificate honouring allowAutoRegistration, certificateMode and, in DEFAULT mode, the verification
        certificate; refuses a CA registered already (moto overwrites it) and a registrationConfig that names a template
        that is not JITP; the ARN is a `cacert/` ARN, as AWS's."""
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
            self._check_verification_certificate(ca, verification_certificate)
        config = registration_config or {}
        template_name = config.get("templateName")
        if template_name:
            record = self.extension.templates.get(template_name)
            if record is None or record.type != "JITP":
                raise InvalidRequestException(
                    f"registrationConfig.templateName {template_name!r} must name a JITP template"
                )
        ca_cert = EmbeddedCaCertificate(
            ca_certificate, "ACTIVE" if set_as_active else "INACTIVE", self.account_id, self.region_name, config
        )
        ca_cert.arn = ca_cert.arn.replace(":cert/", ":cacert/")
        ca_cert.auto_registration_status = "ENABLE" if allow_auto_registration else "DISABLE"
        ca_cert.certificate_mode = mode
        self.ca_certificates[ca_cert.certificate_id] = ca_cert
        return ca_cert

    def register_as_deployed(self, ca_certificate: str, certificate_mode: str, *, retired: bool) -> FakeCaCertificate:
        """A CA as the stack leaves it (ACTIVE with auto-registration, or INACTIVE without when retired), without the
        DEFAULT mode's verification certificate: `jitr serve` registers the configured CAs, whose verification
        certificates were made for a real account's registration code."""
        ca = self.register_ca_certificate(
            ca_certificate, not retired, None, allow_auto_registration=not retired, certificate_mode="SNI_ONLY"
        )
        ca.certificate_mode = certificate_mode  # type: ignore[attr-defined]
        return ca

    def _check_verification_certificate(self, ca: x509.Certificate, pem: str | None) -> None:
        """DEFAULT mode's proof of possession: CN = this account's registration code, signed by the CA's key."""
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

    def update_ca_certificate(
        self,
        certificate_id: str,
        new_status: str | None,
        config: dict[str, str] | None,
        new_auto_registration_status: str | None = None,
        remove_auto_registration: bool = False,
    ) -> None:
        """UpdateCACertificate with newAutoRegistrationStatus and removeAutoRegistration. Where AWS is silent: what a
        deactivated CA's pending devices become; here they stay pending (the handler refuses them: CA_NOT_ACTIVE)."""
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

    def describe_ca_certificate(self, certificate_id: str) -> EmbeddedCaCertificate:
        """DescribeCACertificate: every CA registered here is an `EmbeddedCaCertificate`."""
        found = self.ca_certificates.get(certificate_id)
        if found is None:
            raise ResourceNotFoundException(f"CA certificate {certificate_id} does not exist")
        assert isinstance(found, EmbeddedCaCertificate)
        return found

    def describe_certificate(self, certificate_id: str) -> FakeCertificate:
        """DescribeCertificate, ResourceNotFoundException as AWS names it."""
        found = self.certificates.get(certificate_id)
        if found is None:
            raise ResourceNotFoundException(f"certificate {certificate_id} does not exist")
        return found

    def list_certificates_by_ca_page(
        self, ca_certificate_id: str, page_size: int | None, marker: str | None, ascending: bool
    ) -> tuple[list[FakeCertificate], str | None]:
        """ListCertificatesByCA in pages, newest first unless `ascending` (see `listing`)."""
        with self.extension.lock:  # a device's connect sets its certificate's CA under this lock
            keys = self.extension.certificates_by_ca.of(self.certificates, ca_certificate_id)
            ids, next_marker = page(keys, page_size, marker, ascending)
            return [self.certificates[i] for i in ids], next_marker

    def update_certificate(self, certificate_id: str, new_status: str) -> None:
        """UpdateCertificate with AWS's transitions: PENDING_* cannot be set and nothing leaves REVOKED (moto accepts
        any status)."""
        certificate = self.describe_certificate(certificate_id)
        if new_status not in SETTABLE_STATUSES:
            raise InvalidRequestException(
                f"newStatus {new_status!r} cannot be set; PENDING_TRANSFER and PENDING_ACTIVATION are used by AWS IoT"
                " only"
            )
        if certificate.status == "REVOKED" and new_status != "REVOKED":
            raise CertificateStateException(
                f"certificate {certificate_id} is REVOKED; a revoked certificate stays revoked"
            )
        certificate.status = new_status
        certificate.last_modified_date = utcnow()

    def describe_thing(self, thing_name: str) -> FakeThing:
        """DescribeThing by key (moto scans every thing)."""
        thing = find_thing(self, thing_name)
        if thing is None:
            raise ResourceNotFoundException(f"thing {thing_name} does not exist")
        return thing

    def _get_principal(self, principal_arn: str) -> Any:
        """A certificate principal by the id in its ARN (moto scans every certificate)."""
        if ":cert/" in principal_arn:
            certificate = self.certificates.get(principal_arn.rsplit("/", 1)[-1])
            if certificate is None or certificate.arn != principal_arn:
                raise ResourceNotFoundException(f"certificate {principal_arn} does not exist")
            return certificate
        return super()._get_principal(principal_arn)

    def create_thing(
        self,
        thing_name: str,
        thing_type_name: str | None,
        attribute_payload: dict[str, Any] | None,
        billing_group_name: str | None = None,
    ) -> FakeThing:
        """CreateThing: the same configuration under an existing name returns the thing, another configuration is
        ResourceAlreadyExistsException (moto overwrites it silently)."""
        existing = find_thing(self, thing_name)
        if existing is None:
            return super().create_thing(
                thing_name,
                thing_type_name,  # type: ignore[arg-type]  # moto types it str; None means no thing type
                attribute_payload,
                billing_group_name,
            )
        same = (
            (existing.thing_type.thing_type_name if existing.thing_type else None) == (thing_type_name or None)
            and existing.attributes == ((attribute_payload or {}).get("attributes") or {})
            and (existing.billing_group_name or None) == (billing_group_name or None)
        )
        if not same:
            raise ResourceAlreadyExistsException(f"Thing {thing_name} already exists with a different configuration")
        return existing

    def create_policy(self, policy_name: str, policy_document: Any) -> Any:
        """CreatePolicy refuses a document AWS IoT would not store (MalformedPolicyException; moto stores any)."""
        _check_policy_document(policy_name, policy_document)
        return super().create_policy(policy_name, policy_document)

    def create_policy_version(self, policy_name: str, policy_document: Any, set_as_default: bool) -> Any:
        """CreatePolicyVersion, likewise."""
        _check_policy_document(policy_name, policy_document)
        return super().create_policy_version(policy_name, policy_document, set_as_default)

    def attach_thing_principal(self, thing_name: str, principal_arn: str) -> None:
        """AttachThingPrincipal, also kept in the by-thing index ListThingPrincipals reads."""
        super().attach_thing_principal(thing_name, principal_arn)
        self.extension.thing_principals.setdefault(thing_name, set()).add(principal_arn)

    def detach_thing_principal(self, thing_name: str, principal_arn: str) -> None:
        """DetachThingPrincipal, also dropped from the by-thing index."""
        super().detach_thing_principal(thing_name, principal_arn)
        self.extension.thing_principals.get(thing_name, set()).discard(principal_arn)

    def list_thing_principals(self, thing_name: str) -> list[str]:
        """By key: moto scans every thing and every attachment, which a fleet rehearsal cannot afford."""
        self.describe_thing(thing_name)  # ResourceNotFoundException as AWS raises it
        indexed = self.extension.thing_principals.get(thing_name, set())
        return sorted(arn for arn in indexed if (arn, thing_name) in self.principal_things)

    def create_provisioning_template(
        self,
        template_name: str,
        template_body: str,
        provisioning_role_arn: str,
        description: str = "",
        enabled: bool = False,
        template_type: str | None = None,
        pre_provisioning_hook: dict[str, Any] | None = None,
    ) -> ProvisioningTemplateRecord:
        """CreateProvisioningTemplate (moto has none): the documented name pattern, FLEET_PROVISIONING or JITP, and a
        body jitr's engine accepts. Where AWS is silent: which body errors it reports at creation; here every error the
        engine finds is InvalidRequestException."""
        state = self.extension
        if not TEMPLATE_NAME.fullmatch(template_name or ""):
            raise InvalidRequestException(f"templateName {template_name!r} must match [0-9A-Za-z_-]{{1,36}}")
        if template_name in state.templates:
            raise ResourceAlreadyExistsException(f"Provisioning template {template_name} already exists")
        kind = template_type or "FLEET_PROVISIONING"
        if kind not in ("FLEET_PROVISIONING", "JITP"):
            raise InvalidRequestException(f"type must be FLEET_PROVISIONING or JITP, got {kind!r}")
        _check_template_body(template_body)
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

    def describe_provisioning_template(self, template_name: str) -> ProvisioningTemplateRecord:
        """DescribeProvisioningTemplate (moto has none)."""
        record = self.extension.templates.get(template_name)
        if record is None:
            raise ResourceNotFoundException(f"Provisioning template {template_name} does not exist")
        return record

    def update_provisioning_template(
        self,
        template_name: str,
        description: str | None = None,
        enabled: bool | None = None,
        provisioning_role_arn: str | None = None,
    ) -> None:
        """UpdateProvisioningTemplate (moto has none): description, enabled and role; the body is fixed."""
        record = self.describe_provisioning_template(template_name)
        if description is not None:
            record.description = description
        if enabled is not None:
            record.enabled = bool(enabled)
        if provisioning_role_arn is not None:
            record.role_arn = provisioning_role_arn
        record.modified = utcnow()

    def delete_provisioning_template(self, template_name: str) -> None:
        """DeleteProvisioningTemplate (moto has none)."""
        self.describe_provisioning_template(template_name)
        del self.extension.templates[template_name]


def _check_policy_document(name: str, document: Any) -> None:
    try:
        policy_statements(name, json.loads(document) if isinstance(document, str | bytes) else document)
    except (ValueError, PolicyError) as exc:  # json.JSONDecodeError is a ValueError
        raise MalformedPolicyException(str(exc)) from exc


def _check_template_body(body: str) -> None:
    try:
        parse_template(body)
    except TemplateError as exc:
        raise InvalidRequestException(f"The template body is not valid: {exc}") from exc


def patch_certificate_descriptions() -> None:
    """DescribeCertificate as AWS answers it: with caCertificateId and the certificate's real validity (moto
    omits the one and invents the other), and DescribeCACertificate with autoRegistrationStatus and certificateMode.
    moto has no switch for these, so its description method is replaced (once, by `install()`)."""

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

    FakeCertificate.to_description_dict = description  # type: ignore[method-assign]


def _validity(pem: str) -> dict[str, datetime]:
    try:
        certificate = load_certificate(pem)
    except BadCertificate:
        now = utcnow()
        return {"notBefore": now, "notAfter": now}
    return {"notBefore": certificate.not_valid_before_utc, "notAfter": certificate.not_valid_after_utc}
