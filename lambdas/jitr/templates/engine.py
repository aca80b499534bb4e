"""Check and render AWS IoT provisioning templates the way RegisterThing reads them.

`check_template` finds every problem it can without parameter values; `render_template` evaluates the template with
parameters into a `Plan` (each resource with concrete properties and its override settings), checking the resolved
values against the same rules. Both run one walk (`_Walk`), so the static and the rendered view never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from . import fields, limits
from .intrinsics import Evaluator, Value, is_intrinsic, referenced_parameters
from .problems import Problem, TemplateError, child


@dataclass(frozen=True)
class Template:
    """A template that passed the static check. `warnings` are findings that do not stop it."""

    body: str
    document: dict[str, Any]
    warnings: tuple[Problem, ...] = ()

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        return dict(self.document.get("Parameters", {}))


@dataclass(frozen=True)
class PlannedResource:
    logical_name: str
    type: str
    properties: dict[str, Any]
    overrides: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "logicalName": self.logical_name,
            "type": self.type,
            "properties": self.properties,
            "overrideSettings": self.overrides,
        }


@dataclass(frozen=True)
class Plan:
    """What RegisterThing would do: each resource with concrete properties, in template order."""

    resources: tuple[PlannedResource, ...]
    parameters: dict[str, str]

    def of_type(self, resource_type: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == resource_type]

    @property
    def thing(self) -> PlannedResource | None:
        return next(iter(self.of_type(limits.THING)), None)

    @property
    def certificate(self) -> PlannedResource | None:
        return next(iter(self.of_type(limits.CERTIFICATE)), None)

    @property
    def policies(self) -> list[PlannedResource]:
        return self.of_type(limits.POLICY)

    def to_dict(self) -> dict[str, Any]:
        return {"parameters": self.parameters, "resources": [r.to_dict() for r in self.resources]}


def check_template(body: str | Mapping[str, Any], *, for_jitr: bool = False) -> list[Problem]:
    """Every problem (errors and warnings) of a template, without parameter values.

    `for_jitr` adds the rules a template must meet when our handler provisions a PENDING_ACTIVATION certificate.
    """
    document, problems = _load(body)
    if document is not None:
        walk = _Walk(document, parameters=None)
        walk.run()
        problems += walk.problems
        if for_jitr and not any(p.severity == "error" for p in problems):
            problems += _jitr_problems(document, walk.resources)
    return problems


def parse_template(body: str | Mapping[str, Any], *, for_jitr: bool = False) -> Template:
    """The checked template; raises `TemplateError` listing every error."""
    problems = check_template(body, for_jitr=for_jitr)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise TemplateError(errors)
    text = body if isinstance(body, str) else json.dumps(body)
    document = json.loads(text)
    return Template(body=text, document=document, warnings=tuple(problems))


def render_template(template: Template | str | Mapping[str, Any], parameters: Mapping[str, str]) -> Plan:
    """Evaluate `template` with `parameters` (defaults apply); raises `TemplateError` naming every problem."""
    checked = template if isinstance(template, Template) else parse_template(template)
    effective, problems = _effective_parameters(checked.parameters, parameters)
    walk = _Walk(checked.document, parameters=effective)
    walk.run()
    problems += walk.problems
    if problems:
        raise TemplateError(problems)
    return Plan(resources=tuple(walk.resources), parameters=effective)


# -- loading and parameters ---


def _load(body: str | Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
    if not isinstance(body, str):
        body = json.dumps(body)
    if len(body) > limits.TEMPLATE_BODY_MAX_CHARS:
        return None, [
            Problem(
                "$",
                "TEMPLATE_TOO_LARGE",
                f"template body has {len(body)} characters; RegisterThing accepts at most "
                f"{limits.TEMPLATE_BODY_MAX_CHARS}",
            )
        ]
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        return None, [
            Problem("$", "INVALID_JSON", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        ]
    except RecursionError:
        return None, [Problem("$", "INVALID_JSON", "not readable JSON: nested too deeply")]
    except ValueError as exc:  # a number too long for Python to convert
        return None, [Problem("$", "INVALID_JSON", f"not readable JSON: {exc}")]
    if not isinstance(document, dict):
        return None, [Problem("$", "NOT_AN_OBJECT", "a template must be a JSON object")]
    return document, []


def _effective_parameters(
    declared: Mapping[str, Mapping[str, Any]], given: Mapping[str, str]
) -> tuple[dict[str, str], list[Problem]]:
    problems: list[Problem] = []
    effective: dict[str, str] = {}
    for name, value in given.items():
        path = child("$.parameters", name)
        blame = frozenset({name})
        if not isinstance(value, str):
            problems.append(
                Problem(path, "PARAMETER_NOT_STRING", f"parameter {name!r} must be a string", parameters=blame)
            )
        elif len(name) > limits.PARAMETER_KEY_MAX_CHARS:
            problems.append(
                Problem(
                    path,
                    "PARAMETER_TOO_LONG",
                    f"parameter names are at most {limits.PARAMETER_KEY_MAX_CHARS}",
                    parameters=blame,
                )
            )
        elif len(value) > limits.PARAMETER_VALUE_MAX_CHARS:
            problems.append(
                Problem(
                    path,
                    "PARAMETER_TOO_LONG",
                    f"parameter {name!r} has {len(value)} characters; at most {limits.PARAMETER_VALUE_MAX_CHARS}",
                    parameters=blame,
                )
            )
        elif name in declared:
            effective[name] = value
    for name, spec in declared.items():
        if name in effective or name in given:
            continue
        if "Default" in spec:
            effective[name] = spec["Default"]
        else:
            problems.append(
                Problem(
                    child("$.Parameters", name),
                    "MISSING_PARAMETER",
                    f"parameter {name!r} has no value and no Default",
                    parameters=frozenset({name}),
                )
            )
    return effective, problems


# -- the walk ---


class _Walk:
    """One pass over a template: structure, expressions and values. `parameters=None` is the static check."""

    def __init__(self, document: dict[str, Any], parameters: Mapping[str, str] | None) -> None:
        self.document = document
        self.problems: list[Problem] = []
        self.resources: list[PlannedResource] = []
        declared = document.get("Parameters") if isinstance(document.get("Parameters"), dict) else {}
        mappings = document.get("Mappings") if isinstance(document.get("Mappings"), dict) else {}
        self.static = parameters is None
        self.evaluator = Evaluator(declared or {}, mappings or {}, parameters, self.problems)

    def error(self, path: str, code: str, message: str) -> None:
        self.problems.append(Problem(path, code, message))

    def warn(self, path: str, code: str, message: str) -> None:
        self.problems.append(Problem(path, code, message, "warning"))

    def run(self) -> None:
        if self.static:
            self.sections()
            self.declarations()
            self.mappings()
        self.resources_section()

    # -- sections ---

    def sections(self) -> None:
        for name in self.document:
            if name in limits.UNSUPPORTED_SECTIONS:
                self.error(
                    child("$", name),
                    "UNSUPPORTED_SECTION",
                    f"section {name!r} is not documented for AWS IoT provisioning templates; "
                    "allowed: Parameters, Resources, Mappings, DeviceConfiguration",
                )
            elif name not in limits.SECTIONS:
                self.error(
                    child("$", name),
                    "UNKNOWN_SECTION",
                    f"unknown section {name!r}; allowed: Parameters, Resources, Mappings, DeviceConfiguration",
                )

    def declarations(self) -> None:
        section = self.document.get("Parameters", {})
        if not isinstance(section, dict):
            self.error("$.Parameters", "BAD_SECTION", "Parameters must be an object of name -> {Type, Default}")
            return
        for name, spec in section.items():
            path = child("$.Parameters", name)
            if len(name) > limits.PARAMETER_KEY_MAX_CHARS:
                self.error(path, "PARAMETER_TOO_LONG", f"parameter names are at most {limits.PARAMETER_KEY_MAX_CHARS}")
            if not isinstance(spec, dict):
                self.error(path, "BAD_PARAMETER", 'a parameter must be an object such as {"Type": "String"}')
                continue
            if spec.get("Type") != "String":
                self.error(child(path, "Type"), "BAD_PARAMETER", 'parameter Type must be "String"')
            if "Default" in spec and not isinstance(spec["Default"], str):
                self.error(child(path, "Default"), "BAD_PARAMETER", "a parameter Default must be a string")
            for key in spec.keys() - {"Type", "Default", "Description"}:
                self.warn(child(path, key), "UNKNOWN_PARAMETER_KEY", f"{key!r} is ignored in a parameter declaration")

    def mappings(self) -> None:
        section = self.document.get("Mappings", {})
        ok = isinstance(section, dict) and all(
            isinstance(top, dict) and all(isinstance(second, dict) for second in top.values())
            for top in section.values()
        )
        if not ok:
            self.error("$.Mappings", "BAD_SECTION", "Mappings must be {MapName: {TopKey: {SecondKey: value}}}")

    def resources_section(self) -> None:
        section = self.document.get("Resources")
        if not isinstance(section, dict) or not section:
            if self.static:
                self.error("$.Resources", "NO_RESOURCES", "Resources must be an object declaring at least one resource")
            return
        counts = dict.fromkeys(limits.RESOURCE_TYPES, 0)
        for logical_name, resource in section.items():
            path = child("$.Resources", logical_name)
            planned = self.resource(logical_name, resource, path)
            if planned is not None:
                counts[planned.type] += 1
                self.resources.append(planned)
        if self.static:
            for resource_type, most in ((limits.THING, 1), (limits.CERTIFICATE, 1)):
                if counts[resource_type] > most:
                    self.error("$.Resources", "TOO_MANY_RESOURCES", f"a template declares at most one {resource_type}")
            if counts[limits.POLICY] > limits.MAX_POLICIES_PER_CERTIFICATE:
                self.error(
                    "$.Resources",
                    "TOO_MANY_RESOURCES",
                    f"a certificate takes at most {limits.MAX_POLICIES_PER_CERTIFICATE} policies",
                )

    # -- one resource ---

    def resource(self, logical_name: str, resource: Any, path: str) -> PlannedResource | None:
        if not isinstance(resource, dict):
            self.error(path, "BAD_RESOURCE", "a resource must be an object with Type and Properties")
            return None
        resource_type = resource.get("Type")
        if resource_type not in limits.RESOURCE_TYPES:
            self.error(
                child(path, "Type"),
                "UNKNOWN_RESOURCE_TYPE",
                f"resource type {resource_type!r} is not supported; use one of {', '.join(limits.RESOURCE_TYPES)}",
            )
            return None
        for key in resource.keys() - {"Type", "Properties", "OverrideSettings"}:
            self.error(child(path, key), "UNKNOWN_KEY", f"{key!r} is not allowed in a resource")
        properties = resource.get("Properties", {})
        if not isinstance(properties, dict):
            self.error(child(path, "Properties"), "BAD_RESOURCE", "Properties must be an object")
            return None
        props_path = child(path, "Properties")
        for name in properties.keys() - limits.PROPERTIES[resource_type]:
            self.error(
                child(props_path, name),
                "UNKNOWN_PROPERTY",
                f"{resource_type} has no property {name!r}; "
                f"known: {', '.join(sorted(limits.PROPERTIES[resource_type]))}",
            )
        for name in limits.REQUIRED_PROPERTIES[resource_type]:
            if name not in properties:
                self.error(child(props_path, name), "MISSING_PROPERTY", f"{resource_type} requires {name}")
        overrides = self.overrides(resource_type, resource.get("OverrideSettings", {}), child(path, "OverrideSettings"))
        resolve = {
            limits.THING: self.thing,
            limits.CERTIFICATE: self.certificate,
            limits.POLICY: self.policy,
        }[resource_type]
        before = len(self.problems)
        resolved = resolve(properties, props_path)
        self.blame(before, properties, props_path)
        return PlannedResource(logical_name, resource_type, resolved, overrides)

    def blame(self, first: int, properties: dict[str, Any], path: str) -> None:
        """Tag the problems found since `first` with the parameters of the property they were found in."""
        for i in range(first, len(self.problems)):
            problem = self.problems[i]
            for name, expression in properties.items():
                prefix = child(path, name)
                if problem.path == prefix or problem.path.startswith((prefix + ".", prefix + "[")):
                    self.problems[i] = replace(problem, parameters=referenced_parameters(expression))
                    break

    def overrides(self, resource_type: str, settings: Any, path: str) -> dict[str, str]:
        allowed = limits.OVERRIDABLE[resource_type]
        if not isinstance(settings, dict):
            self.error(path, "BAD_OVERRIDE", "OverrideSettings must be an object of property -> action")
            return {}
        if settings and not allowed:
            self.error(path, "BAD_OVERRIDE", f"OverrideSettings are not available for {resource_type}")
            return {}
        result: dict[str, str] = {}
        for name, action in settings.items():
            here = child(path, name)
            if name not in allowed:
                self.error(
                    here,
                    "BAD_OVERRIDE",
                    f"{resource_type} takes OverrideSettings only for {', '.join(sorted(allowed))}",
                )
            elif action not in allowed[name]:
                self.error(
                    here,
                    "BAD_OVERRIDE",
                    f"override {action!r} is not allowed for {name}; use one of {', '.join(sorted(allowed[name]))}"
                    + (" (MERGE is only for ThingGroups and AttributePayload)" if action == "MERGE" else ""),
                )
            else:
                result[name] = action
        return result

    # -- resource types ---

    def thing(self, properties: dict[str, Any], path: str) -> dict[str, Any]:
        resolved: dict[str, Any] = {}
        for name, pattern in (
            ("ThingName", limits.THING_NAME),
            ("ThingTypeName", limits.THING_TYPE_NAME),
            ("BillingGroup", limits.BILLING_GROUP_NAME),
        ):
            if name in properties:
                value = self.evaluator.string(properties[name], child(path, name))
                self.check_name(value, pattern, child(path, name))
                resolved[name] = value
        if "ThingGroups" in properties:
            groups = self.evaluator.string_list(properties["ThingGroups"], child(path, "ThingGroups"))
            if isinstance(groups, list):
                if len(groups) > limits.MAX_THING_GROUPS:
                    self.error(
                        child(path, "ThingGroups"),
                        "TOO_MANY_THING_GROUPS",
                        f"a thing belongs to at most {limits.MAX_THING_GROUPS} thing groups, got {len(groups)}",
                    )
                for i, group in enumerate(groups):
                    self.check_name(group, limits.THING_GROUP_NAME, child(child(path, "ThingGroups"), i))
            resolved["ThingGroups"] = groups
        if "AttributePayload" in properties:
            resolved["AttributePayload"] = self.attributes(
                properties["AttributePayload"], child(path, "AttributePayload"), "ThingTypeName" in properties
            )
        if "PackageVersions" in properties:
            resolved["PackageVersions"] = self.evaluator.value(
                properties["PackageVersions"], child(path, "PackageVersions")
            )
        return resolved

    def attributes(self, payload: Any, path: str, has_type: bool) -> dict[str, Any]:
        if is_intrinsic(payload) or not isinstance(payload, dict):
            self.error(path, "TYPE_MISMATCH", "AttributePayload must be an object of attribute name -> string value")
            return {}
        most = limits.MAX_ATTRIBUTES_WITH_TYPE if has_type else limits.MAX_ATTRIBUTES_WITHOUT_TYPE
        if self.static and len(payload) > most:
            self.error(
                path,
                "TOO_MANY_ATTRIBUTES",
                f"{len(payload)} attributes; a thing has at most {most} "
                + ("with a thing type" if has_type else "without a thing type (50 with one)"),
            )
        resolved: dict[str, Any] = {}
        for name, expression in payload.items():
            here = child(path, name)
            if self.static and (problem := limits.ATTRIBUTE_NAME.problem(name)):
                self.error(here, "INVALID_NAME", problem)
            value = self.evaluator.string(expression, here)
            self.check_name(value, limits.ATTRIBUTE_VALUE, here)
            resolved[name] = value
        return resolved

    def certificate(self, properties: dict[str, Any], path: str) -> dict[str, Any]:
        sources = [name for name in limits.CERTIFICATE_SOURCES if name in properties]
        if self.static and len(sources) != 1:
            self.error(
                path,
                "CERTIFICATE_SOURCE",
                "declare exactly one of CertificateId, CertificatePem (+ CACertificatePem) or "
                f"CertificateSigningRequest; found {', '.join(sources) or 'none'}",
            )
        if self.static and "CACertificatePem" in properties and "CertificatePem" not in properties:
            self.error(
                child(path, "CACertificatePem"),
                "CERTIFICATE_SOURCE",
                "CACertificatePem goes only with CertificatePem",
            )
        resolved: dict[str, Any] = {}
        for name in (*limits.CERTIFICATE_SOURCES, "CACertificatePem"):
            if name in properties:
                resolved[name] = self.evaluator.string(properties[name], child(path, name))
        if "CertificateId" in resolved:
            self.check_name(resolved["CertificateId"], limits.CERTIFICATE_ID, child(path, "CertificateId"))
        status = self.evaluator.string(properties.get("Status", "ACTIVE"), child(path, "Status"))
        if isinstance(status, str):
            # AWS's own register-thing example writes "Active": the service reads the status case-insensitively.
            status = status.upper()
            if status not in limits.CERTIFICATE_STATUSES:
                self.error(
                    child(path, "Status"),
                    "BAD_STATUS",
                    f"certificate Status {status!r} is not allowed; use ACTIVE or INACTIVE",
                )
        resolved["Status"] = status
        return resolved

    def policy(self, properties: dict[str, Any], path: str) -> dict[str, Any]:
        given = [name for name in ("PolicyName", "PolicyDocument") if name in properties]
        if self.static and len(given) != 1:
            self.error(
                path,
                "POLICY_SOURCE",
                "declare PolicyName (an existing policy) or PolicyDocument, not both; "
                f"found {', '.join(given) or 'none'}",
            )
        resolved: dict[str, Any] = {}
        if "PolicyName" in properties:
            resolved["PolicyName"] = self.evaluator.string(properties["PolicyName"], child(path, "PolicyName"))
            self.check_name(resolved["PolicyName"], limits.POLICY_NAME, child(path, "PolicyName"))
        if "PolicyDocument" in properties:
            here = child(path, "PolicyDocument")
            self.evaluator.guard = None if self.static else limits.THING_NAME  # no parameter may widen a policy
            try:
                document = self.evaluator.string(properties["PolicyDocument"], here)
            finally:
                self.evaluator.guard = None
            if isinstance(document, str):
                try:
                    parsed = json.loads(document)
                except json.JSONDecodeError as exc:
                    parsed = None
                    self.error(here, "BAD_POLICY_DOCUMENT", f"PolicyDocument is not valid JSON: {exc.msg}")
                else:
                    if not isinstance(parsed, dict):
                        self.error(here, "BAD_POLICY_DOCUMENT", "PolicyDocument must be a JSON object as a string")
            resolved["PolicyDocument"] = document
        return resolved

    def check_name(self, value: Value, pattern: limits.NamePattern, path: str) -> None:
        if isinstance(value, str) and (problem := pattern.problem(value)):
            self.error(path, "INVALID_VALUE" if pattern is limits.ATTRIBUTE_VALUE else "INVALID_NAME", problem)


def _jitr_problems(document: dict[str, Any], resources: list[PlannedResource]) -> list[Problem]:
    """Rules for a template our handler runs against a PENDING_ACTIVATION certificate."""
    problems: list[Problem] = []
    certificates = [r for r in resources if r.type == limits.CERTIFICATE]
    if not certificates:
        return [Problem("$.Resources", "JITR_NO_CERTIFICATE", "a JITR template must declare the device certificate")]
    (certificate,) = certificates
    path = child("$.Resources", certificate.logical_name)
    source = document["Resources"][certificate.logical_name]["Properties"].get("CertificateId")
    if source != {"Ref": fields.ID}:
        problems.append(
            Problem(
                child(path, "Properties"),
                "JITR_CERTIFICATE_SOURCE",
                'a JITR template must name the device certificate as {"CertificateId": {"Ref": '
                '"AWS::IoT::Certificate::Id"}}',
            )
        )
    if certificate.properties.get("Status") == "INACTIVE":
        problems.append(
            Problem(
                child(child(path, "Properties"), "Status"),
                "JITR_INACTIVE",
                "Status INACTIVE would never let the device in",
            )
        )
    action = certificate.overrides.get("Status")
    if action in ("DO_NOTHING", "FAIL"):
        problems.append(
            Problem(
                child(child(path, "OverrideSettings"), "Status"),
                "JITR_STATUS_OVERRIDE",
                f"override {action} on Status: the device certificate already exists as PENDING_ACTIVATION, so it "
                + ("would stay pending and the device could never connect" if action == "DO_NOTHING" else "would fail")
                + "; use REPLACE or leave it out",
            )
        )
    problems += _certificate_field_problems(document, resources)
    if not any(r.type == limits.POLICY for r in resources):
        problems.append(
            Problem(
                "$.Resources",
                "JITR_NO_POLICY",
                "a JITR template needs a policy: AWS IoT closes the connection of an ACTIVE certificate without one",
            )
        )
    return problems


def _certificate_field_problems(document: dict[str, Any], resources: list[PlannedResource]) -> list[Problem]:
    """No certificate field may reach a policy (any name under a certificate prefix, known or not), and every
    `Jitr::Certificate::*` parameter must be one a certificate fills."""
    problems: list[Problem] = []
    for resource in resources:
        if resource.type != limits.POLICY:
            continue
        properties = document["Resources"][resource.logical_name].get("Properties", {})
        for key in ("PolicyDocument", "PolicyName"):
            leaked = sorted(
                name for name in referenced_parameters(properties.get(key)) if name.startswith(fields.PREFIXES)
            )
            if leaked:
                problems.append(
                    Problem(
                        child(child(child("$.Resources", resource.logical_name), "Properties"), key),
                        "JITR_CERTIFICATE_FIELD_IN_POLICY",
                        f"{key} takes {', '.join(leaked)} from the device certificate, so a certificate could write"
                        " or choose its own policy (a CN or a subjectAltName of '*', or one carrying JSON, widens"
                        " it); keep the policy fixed and use policy variables such as"
                        " ${iot:Connection.Thing.ThingName} instead",
                    )
                )
    for name in document.get("Parameters", {}):
        if problem := fields.unknown_field_problem(name):
            problems.append(Problem(child("$.Parameters", name), "JITR_UNKNOWN_CERTIFICATE_FIELD", problem))
    return problems
