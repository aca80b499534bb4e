"""The embedded AWS IoT's HTTP side: moto's `IoTResponse` parses a request and calls the backend; these handlers add
the operations moto lacks and read the parameters moto ignores, and every operation is admitted through the same
knobs (quotas, injected faults, latency). moto routes requests to `IoTResponse` by URL, so the handlers are given to
that class by `install()` rather than to a subclass."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote

import botocore.session
from botocore import xform_name
from moto.core.responses import ActionResult, EmptyResult
from moto.iot.responses import IoTResponse

from .errors import InvalidRequestException
from .lookups import attached_policy_names, connection_of, policies_of
from .models import EmbeddedBackend
from .state import ProvisioningTemplateRecord

# Operations whose latency is taken inside the backend, where the delay matters (RegisterThing holds its certificate).
_PAUSES_ITSELF = frozenset({"RegisterThing"})


def _backend(response: IoTResponse) -> EmbeddedBackend:
    return cast(EmbeddedBackend, response.iot_backend)


def _path_id(response: IoTResponse) -> str:
    """The id at the end of the request path (the CA operations name it in the URI)."""
    return unquote(response.path.split("?")[0].rstrip("/").split("/")[-1])


def _r_register_ca_certificate(self: IoTResponse) -> ActionResult:
    ca = _backend(self).register_ca_certificate(
        ca_certificate=self._get_param("caCertificate"),
        set_as_active=self._get_bool_param("setAsActive", False),
        registration_config=self._get_param("registrationConfig"),
        verification_certificate=self._get_param("verificationCertificate"),
        allow_auto_registration=self._get_bool_param("allowAutoRegistration", False),
        certificate_mode=self._get_param("certificateMode"),
    )
    return ActionResult({"certificateId": ca.certificate_id, "certificateArn": ca.arn})


def _r_update_ca_certificate(self: IoTResponse) -> ActionResult:
    _backend(self).update_ca_certificate(
        certificate_id=_path_id(self),
        new_status=self._get_param("newStatus"),
        config=self._get_param("registrationConfig"),
        new_auto_registration_status=self._get_param("newAutoRegistrationStatus"),
        remove_auto_registration=self._get_bool_param("removeAutoRegistration", False),
    )
    return EmptyResult()


def _r_describe_ca_certificate(self: IoTResponse) -> ActionResult:
    ca = _backend(self).describe_ca_certificate(_path_id(self))
    result: dict[str, Any] = {"certificateDescription": ca.to_description_dict()}
    if ca.registration_config:
        result["registrationConfig"] = ca.registration_config
    return ActionResult(result)


def _r_create_provisioning_template(self: IoTResponse) -> ActionResult:
    record = _backend(self).create_provisioning_template(
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
    record = _backend(self).describe_provisioning_template(self._get_param("templateName"))
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
    records = _backend(self).extension.templates.values()
    return ActionResult({"templates": [_summary(r) for r in records]})


def _r_update_provisioning_template(self: IoTResponse) -> ActionResult:
    _backend(self).update_provisioning_template(
        template_name=self._get_param("templateName"),
        description=self._get_param("description"),
        enabled=self._get_param("enabled"),
        provisioning_role_arn=self._get_param("provisioningRoleArn"),
    )
    return EmptyResult()


def _r_delete_provisioning_template(self: IoTResponse) -> ActionResult:
    _backend(self).delete_provisioning_template(self._get_param("templateName"))
    return EmptyResult()


def _r_list_certificates_by_ca(self: IoTResponse) -> ActionResult:
    page_size = self._get_param("pageSize")
    certificates, next_marker = _backend(self).list_certificates_by_ca_page(
        _path_id(self),
        page_size=None if page_size is None else int(page_size),
        marker=self._get_param("marker"),
        ascending=self._get_bool_param("isAscendingOrder", False),
    )
    result: dict[str, Any] = {
        "certificates": [
            {
                "certificateArn": c.arn,
                "certificateId": c.certificate_id,
                "status": c.status,
                "certificateMode": getattr(c, "certificate_mode", "DEFAULT"),
                "creationDate": c.creation_date,
            }
            for c in certificates
        ]
    }
    if next_marker:
        result["nextMarker"] = next_marker
    return ActionResult(result)


def _r_register_thing(self: IoTResponse) -> ActionResult:
    body = self._get_param("templateBody")
    if not isinstance(body, str):
        raise InvalidRequestException("templateBody is required")
    return ActionResult(_backend(self).register_thing(body, self._get_param("parameters") or {}))


_ACTION_TYPES = {
    "CONNECT": "iot:Connect",
    "PUBLISH": "iot:Publish",
    "SUBSCRIBE": "iot:Subscribe",
    "RECEIVE": "iot:Receive",
}


def _r_test_authorization(self: IoTResponse) -> ActionResult:
    """TestAuthorization for a certificate principal, answered by the evaluator the command line uses. The variables
    and keys the evaluator found no value for, or could not resolve, are its `missingContextValues`."""
    from jitr_tools.iot.authorization import PolicyError, evaluate

    backend = _backend(self)
    principal = str(self._get_param("principal") or "")
    client_id = str(self._get_param("clientId") or "")
    certificate = backend.certificates.get(principal.rsplit("/", 1)[-1])
    if certificate is None or certificate.arn != principal:
        raise InvalidRequestException(f"principal {principal!r} is not a certificate of this account")
    skip = set(self._get_param("policyNamesToSkip") or [])
    names = (attached_policy_names(backend, principal) | set(self._get_param("policyNamesToAdd") or [])) - skip
    policies = policies_of(backend, principal, names)
    connection = connection_of(backend, certificate, client_id)
    results = []
    for info in self._get_param("authInfos") or []:
        action = _ACTION_TYPES.get(str(info.get("actionType")))
        if action is None:
            raise InvalidRequestException(
                f"actionType {info.get('actionType')!r} is not one of {', '.join(_ACTION_TYPES)}"
            )
        for resource in info.get("resources") or []:
            try:
                verdict = evaluate(policies, action, resource, connection)
            except PolicyError as exc:
                raise InvalidRequestException(str(exc)) from exc
            deciding = (
                [{"policyName": verdict.policy, "policyArn": backend.policies[verdict.policy].arn}]
                if verdict.policy
                else []
            )
            results.append(
                {
                    "authInfo": {"actionType": info["actionType"], "resources": [resource]},
                    "allowed": {"policies": deciding if verdict.allowed else []},
                    "denied": {
                        "implicitDeny": {"policies": []},
                        "explicitDeny": {"policies": deciding if verdict.decision == "EXPLICIT_DENY" else []},
                    },
                    "authDecision": str(verdict.decision),
                    "missingContextValues": list(verdict.missing),
                }
            )
    return ActionResult({"authResults": results})


HANDLERS: dict[str, Callable[[IoTResponse], ActionResult]] = {
    "test_authorization": _r_test_authorization,
    "register_ca_certificate": _r_register_ca_certificate,
    "update_ca_certificate": _r_update_ca_certificate,
    "describe_ca_certificate": _r_describe_ca_certificate,
    "create_provisioning_template": _r_create_provisioning_template,
    "describe_provisioning_template": _r_describe_provisioning_template,
    "list_provisioning_templates": _r_list_provisioning_templates,
    "update_provisioning_template": _r_update_provisioning_template,
    "delete_provisioning_template": _r_delete_provisioning_template,
    "register_thing": _r_register_thing,
    "list_certificates_by_ca": _r_list_certificates_by_ca,
}


def admit_every_operation() -> None:
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
        state = _backend(self).extension
        state.admit(operation)
        if operation not in _PAUSES_ITSELF:
            state.pause(operation)
        return method(self)

    return admitted
