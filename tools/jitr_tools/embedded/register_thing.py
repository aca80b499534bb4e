"""RegisterThing in the embedded IoT: render the template with the engine, then apply the plan to the account.

Every check runs before the first change, so a failing request leaves the account as it was. Order of effects as AWS
documents it: thing, groups and policies first, the certificate's status last (an ACTIVE certificate without a policy
would be disconnected).

Modelled where AWS is silent (and documented in the README): a property with no OverrideSettings entry on an existing
thing is left as it is (DO_NOTHING); the certificate Status with no entry is applied (the template's Status, which
defaults to ACTIVE); FAIL fails only when the template would change the existing value.
"""

from __future__ import annotations

import hashlib
from typing import Any

from moto.iot.models import FakeCertificate, FakeThing, IoTBackend

from jitr.templates import Plan, PlannedResource, TemplateError, limits, render_template

from .errors import InvalidRequestException, ResourceRegistrationFailureException
from .lookups import attached_policy_names, find_thing
from .state import Extension


def register_thing(
    backend: IoTBackend, state: Extension, template_body: str, parameters: dict[str, str]
) -> dict[str, Any]:
    """RegisterThing as AWS documents it: thing, groups and policies first, the certificate's status last. Quotas and
    faults are admitted at the API (`responses`), like every call; latency is taken here, while the certificate is
    held, so a concurrent RegisterThing on the same certificate conflicts as on AWS. `backend` is the account's
    (moto's operations, as `models` extends them) and `state` its jitr state beside it (`models` passes both)."""
    try:
        plan = render_template(template_body, parameters or {})
    except TemplateError as exc:
        raise InvalidRequestException(f"Invalid template or parameters: {exc}") from exc
    certificate = plan.certificate
    certificate_id = certificate.properties.get("CertificateId") if certificate else None
    with state.claim(certificate_id):
        state.pause("RegisterThing")  # while the certificate is held, as a slow AWS call would
        with state.lock:
            response = _Apply(backend, state, plan).run()
            state.succeeded["RegisterThing"] += 1
            return response


def policy_name_for_document(document: str) -> str:
    """The name AWS gives a policy created from a template's PolicyDocument: a hash of the document."""
    return hashlib.sha256(document.encode()).hexdigest()


class _Apply:
    def __init__(self, backend: IoTBackend, state: Extension, plan: Plan) -> None:
        self.backend = backend
        self.state = state
        self.plan = plan

    def fail(self, message: str) -> ResourceRegistrationFailureException:
        return ResourceRegistrationFailureException(message)

    def run(self) -> dict[str, Any]:
        certificate = self.resolve_certificate()
        thing_resource = self.plan.thing
        existing = self.find_thing(thing_resource.properties["ThingName"]) if thing_resource else None
        if thing_resource:
            self.check_thing(thing_resource, existing)
        policy_names = [self.check_policy(p) for p in self.plan.policies]
        new_status = self.check_status(certificate)
        if certificate is not None:
            attached = attached_policy_names(self.backend, certificate.arn)
            total = len(attached | {name for name in policy_names if name})
            if total > limits.MAX_POLICIES_PER_CERTIFICATE:
                raise self.fail(f"a certificate takes at most {limits.MAX_POLICIES_PER_CERTIFICATE} policies")

        self.admit_own_calls(certificate, existing, thing_resource, new_status)

        # Every check passed: now change the account.
        arns: dict[str, str] = {}
        thing = self.apply_thing(thing_resource, existing) if thing_resource else None
        if thing_resource and thing:
            arns[thing_resource.logical_name] = thing.arn
        for resource, name in zip(self.plan.policies, policy_names, strict=True):
            if name is None:
                document = resource.properties["PolicyDocument"]
                name = policy_name_for_document(document)
                if name not in self.backend.policies:
                    self.backend.create_policy(name, document)
            if certificate is not None:
                self.backend.attach_policy(name, certificate.arn)
        if certificate is not None:
            if thing is not None:
                self.backend.attach_thing_principal(thing.thing_name, certificate.arn)
            if new_status is not None:
                certificate.status = new_status
            arns[self.plan.certificate.logical_name] = certificate.arn  # type: ignore[union-attr]
        return {"certificatePem": certificate.certificate_pem if certificate else None, "resourceArns": arns}

    def admit_own_calls(
        self,
        certificate: FakeCertificate | None,
        existing: FakeThing | None,
        thing: PlannedResource | None,
        new_status: str | None,
    ) -> None:
        """The calls RegisterThing makes on the caller's behalf count against their own quotas ("these calls might
        exceed your account level AWS IoT Throttling Limits", API_RegisterThing); one that is throttled throttles
        RegisterThing, before any change. Where AWS is silent: which inner calls it makes for an existing thing or an
        attached policy; modelled as the calls that would change something."""
        state = self.state
        if thing is not None and existing is None:
            state.admit("CreateThing", inner=True)
        if certificate is not None:
            for _ in self.plan.policies:
                state.admit("AttachPolicy", inner=True)
            if thing is not None:
                state.admit("AttachThingPrincipal", inner=True)
            if new_status is not None:
                state.admit("UpdateCertificate", inner=True)

    # -- certificate ---

    def resolve_certificate(self) -> FakeCertificate | None:
        resource = self.plan.certificate
        if resource is None:
            return None
        props = resource.properties
        if "CertificateId" in props:
            found = self.backend.certificates.get(props["CertificateId"].lower())
            if found is None:
                raise self.fail(f"certificate {props['CertificateId']} is not registered in this account")
            return found
        if "CertificateSigningRequest" in props:
            return self.backend.create_certificate_from_csr(props["CertificateSigningRequest"], set_as_active=False)
        pem = props["CertificatePem"]
        ca_pem = props.get("CACertificatePem")
        for known in self.backend.certificates.values():
            if known.certificate_pem == pem:
                return known
        if ca_pem:
            return self.backend.register_certificate(pem, ca_pem, set_as_active=False, status="INACTIVE")
        return self.backend.register_certificate_without_ca(pem, status="INACTIVE")

    def check_status(self, certificate: FakeCertificate | None) -> str | None:
        """The status to set last, or None to leave it; raises when the request must fail."""
        resource = self.plan.certificate
        if certificate is None or resource is None:
            return None
        if certificate.status == "REVOKED":
            raise self.fail(f"certificate {certificate.certificate_id} is REVOKED and cannot be provisioned")
        wanted = resource.properties["Status"]
        action = resource.overrides.get("Status", "REPLACE")
        if action == "DO_NOTHING" or wanted == certificate.status:
            return None
        if action == "FAIL":
            raise self.fail(
                f"certificate {certificate.certificate_id} exists with status {certificate.status} and its "
                f"OverrideSettings say FAIL"
            )
        return str(wanted)

    # -- thing ---

    def find_thing(self, name: str) -> FakeThing | None:
        return find_thing(self.backend, name)

    def check_thing(self, resource: PlannedResource, existing: FakeThing | None) -> None:
        props = resource.properties
        type_name = props.get("ThingTypeName")
        if type_name and not any(t.thing_type_name == type_name for t in self.backend.thing_types.values()):
            raise self.fail(f"thing type {type_name!r} does not exist; create it before provisioning")
        for group in props.get("ThingGroups", []):
            if not any(g.thing_group_name == group for g in self.backend.thing_groups.values()):
                raise self.fail(f"thing group {group!r} does not exist; create it before provisioning")
        billing = props.get("BillingGroup")
        if billing and billing not in self.backend.billing_groups:
            raise self.fail(f"billing group {billing!r} does not exist; create it before provisioning")
        if existing is None:
            return
        for name, current in (
            ("ThingTypeName", existing.thing_type.thing_type_name if existing.thing_type else None),
            ("AttributePayload", existing.attributes),
            ("ThingGroups", sorted(self.groups_of(existing))),
        ):
            if name not in props or resource.overrides.get(name) != "FAIL":
                continue
            wanted = sorted(props[name]) if name == "ThingGroups" else props[name]
            if wanted != current:
                raise self.fail(f"thing {existing.thing_name!r} exists with another {name} and its override is FAIL")
        attributes, groups, type_name = self.merged(resource, existing)
        most = limits.MAX_ATTRIBUTES_WITH_TYPE if type_name else limits.MAX_ATTRIBUTES_WITHOUT_TYPE
        if len(attributes) > most:
            raise self.fail(f"thing {existing.thing_name!r} would have {len(attributes)} attributes; at most {most}")
        if len(groups) > limits.MAX_THING_GROUPS:
            raise self.fail(f"thing {existing.thing_name!r} would be in {len(groups)} groups; at most 10")

    def groups_of(self, thing: FakeThing) -> set[str]:
        return {g.thing_group_name for g in self.backend.thing_groups.values() if thing.arn in g.things}

    def merged(self, resource: PlannedResource, existing: FakeThing) -> tuple[dict[str, str], set[str], str | None]:
        """The attributes, groups and thing type an existing thing ends with, per OverrideSettings."""
        props = resource.properties
        overrides = resource.overrides
        attributes = dict(existing.attributes)
        action = overrides.get("AttributePayload", "DO_NOTHING")
        if "AttributePayload" in props and action == "REPLACE":
            attributes = dict(props["AttributePayload"])
        elif "AttributePayload" in props and action == "MERGE":
            attributes.update(props["AttributePayload"])
        groups = self.groups_of(existing)
        action = overrides.get("ThingGroups", "DO_NOTHING")
        if "ThingGroups" in props and action == "REPLACE":
            groups = set(props["ThingGroups"])
        elif "ThingGroups" in props and action == "MERGE":
            groups |= set(props["ThingGroups"])
        type_name = existing.thing_type.thing_type_name if existing.thing_type else None
        if "ThingTypeName" in props and overrides.get("ThingTypeName") == "REPLACE":
            type_name = props["ThingTypeName"]
        return attributes, groups, type_name

    def apply_thing(self, resource: PlannedResource, existing: FakeThing | None) -> FakeThing:
        props = resource.properties
        if existing is None:
            thing: FakeThing = self.backend.create_thing(
                props["ThingName"],
                props.get("ThingTypeName"),  # type: ignore[arg-type]  # moto types it str; None means no thing type
                {"attributes": dict(props.get("AttributePayload", {}))},
                props.get("BillingGroup"),
            )
            for group in props.get("ThingGroups", []):
                self.backend.add_thing_to_thing_group(group, None, thing.thing_name, None)
            return thing
        attributes, groups, type_name = self.merged(resource, existing)
        existing.attributes = attributes
        existing.thing_type = next(
            (t for t in self.backend.thing_types.values() if t.thing_type_name == type_name), None
        )
        for group in self.backend.thing_groups.values():
            if group.thing_group_name in groups:
                group.things[existing.arn] = existing
            else:
                group.things.pop(existing.arn, None)
        existing.version += 1
        return existing

    # -- policies ---

    def check_policy(self, resource: PlannedResource) -> str | None:
        """The existing policy's name, or None for a policy to create from its document."""
        name = resource.properties.get("PolicyName")
        if name is None:
            return None  # created from its PolicyDocument (the engine checked it is a JSON object)
        if name not in self.backend.policies:
            raise self.fail(f"policy {name!r} does not exist; a template's PolicyName must name an existing policy")
        return str(name)
