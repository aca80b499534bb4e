"""AWS IoT policies, evaluated as AWS IoT Core evaluates them for MQTT: `iot:Connect` on `client/<clientId>`,
`iot:Publish` and `iot:Receive` on `topic/<topic>`, `iot:Subscribe` on `topicfilter/<filter>`; an explicit Deny wins,
then any Allow, else the request is implicitly denied.

- Resources and actions match with `*` (any characters, `/` included) and `?` (one character); MQTT's `+` and `#`
  are ordinary characters in a resource (a `topicfilter/` resource names the filter a client subscribes with).
- Policy variables: `${iot:ClientId}`, `${iot:Connection.Thing.ThingName}`, `${iot:Connection.Thing.IsAttached}`,
  `${iot:Certificate.Subject.<Field>}` (CommonName, Organization, OrganizationalUnit, Country, State,
  DistinguishedNameQualifier, SerialNumber), and the escapes `${*}`, `${?}`, `${$}`. A resource whose variable the
  connection does not resolve (no thing attached under the client id, a field the certificate lacks) matches nothing.
- Conditions: `Bool`, `StringEquals`, `StringEqualsIgnoreCase`, `StringLike` and their `Not` forms, over the same keys
  (`iot:ClientId`, `iot:Connection.Thing.*`, `iot:Certificate.Subject.*`). A key the request does not carry fails a
  positive operator and satisfies a negative one. Any other operator fails the statement (and is reported).

The thing: AWS IoT resolves `iot:Connection.Thing.ThingName` to the client id when a thing of that name is attached
to the certificate; jitr assumes the same (the device policy has devices connect with their thing name).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

RESOURCE_KIND = {
    "iot:Connect": "client",
    "iot:Publish": "topic",
    "iot:Receive": "topic",
    "iot:Subscribe": "topicfilter",
}
ACTIONS = {name.split(":", 1)[1].lower(): name for name in RESOURCE_KIND}  # "publish" -> "iot:Publish"
SUBJECT_FIELDS = {
    "CommonName": "AWS::IoT::Certificate::CommonName",
    "Organization": "AWS::IoT::Certificate::Organization",
    "OrganizationalUnit": "AWS::IoT::Certificate::OrganizationalUnit",
    "Country": "AWS::IoT::Certificate::Country",
    "State": "AWS::IoT::Certificate::StateName",
    "DistinguishedNameQualifier": "AWS::IoT::Certificate::DistinguishedNameQualifier",
    "SerialNumber": "AWS::IoT::Certificate::SerialNumber",
}
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_ESCAPES = {"*": "\x00STAR\x00", "?": "\x00QMARK\x00", "$": "$"}


class Decision(StrEnum):
    ALLOWED = "ALLOWED"
    EXPLICIT_DENY = "EXPLICIT_DENY"
    IMPLICIT_DENY = "IMPLICIT_DENY"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    policy: str | None = None  # the policy whose statement decided (none for an implicit deny)
    statement: int | None = None  # its index in the policy's Statement list
    notes: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision == Decision.ALLOWED

    def describe(self) -> str:
        if self.decision == Decision.IMPLICIT_DENY:
            return "DENIED (implicitly: no statement allows it)"
        verb = "ALLOWED by" if self.allowed else "DENIED (explicitly) by"
        return f"{verb} policy {self.policy}, statement {self.statement}"


@dataclass(frozen=True)
class Connection:
    """What the policy variables resolve from: the client id, the thing attached under it, the certificate."""

    client_id: str
    thing_name: str | None = None  # a thing of the client id's name attached to the certificate
    certificate_fields: Mapping[str, str] = field(default_factory=dict)  # `certificate_parameters` of the certificate

    def context(self) -> dict[str, str]:
        values = {"iot:ClientId": self.client_id, "iot:Connection.Thing.IsAttached": str(bool(self.thing_name)).lower()}
        if self.thing_name:
            values["iot:Connection.Thing.ThingName"] = self.thing_name
        for name, parameter in SUBJECT_FIELDS.items():
            if self.certificate_fields.get(parameter):
                values[f"iot:Certificate.Subject.{name}"] = self.certificate_fields[parameter]
        return values


def action_name(text: str) -> str:
    """ "publish", "Publish" or "iot:Publish" -> "iot:Publish"."""
    name = ACTIONS.get(text.lower().removeprefix("iot:"))
    if name is None:
        raise ValueError(f"not an MQTT action: {text!r} (connect, publish, subscribe or receive)")
    return name


def resource_arn(action: str, name: str, region: str, account_id: str) -> str:
    return f"arn:aws:iot:{region}:{account_id}:{RESOURCE_KIND[action]}/{name}"


def evaluate(
    policies: Sequence[tuple[str, Mapping[str, Any]]], action: str, resource: str, connection: Connection
) -> Verdict:
    """The decision for `action` on the ARN `resource` under `policies` (name, document)."""
    context = connection.context()
    allow: tuple[str, int] | None = None
    notes: list[str] = []
    for policy_name, document in policies:
        for index, statement in enumerate(_statements(document)):
            if not _applies(statement, action, resource, context, notes):
                continue
            if str(statement.get("Effect")) == "Deny":
                return Verdict(Decision.EXPLICIT_DENY, policy_name, index, tuple(notes))
            if str(statement.get("Effect")) == "Allow" and allow is None:
                allow = (policy_name, index)
    if allow is not None:
        return Verdict(Decision.ALLOWED, allow[0], allow[1], tuple(notes))
    return Verdict(Decision.IMPLICIT_DENY, notes=tuple(notes))


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _applies(
    statement: Mapping[str, Any], action: str, resource: str, context: Mapping[str, str], notes: list[str]
) -> bool:
    if "Action" in statement:
        if not any(_glob(pattern, action, ignore_case=True) for pattern in _as_list(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(_glob(pattern, action, ignore_case=True) for pattern in _as_list(statement["NotAction"])):
            return False
    else:
        return False
    if "Resource" in statement:
        if not any(_resource_matches(p, resource, context) for p in _as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement:
        if any(_resource_matches(p, resource, context) for p in _as_list(statement["NotResource"])):
            return False
    else:
        return False
    return _conditions_hold(statement.get("Condition") or {}, context, notes)


def _resource_matches(pattern: str, resource: str, context: Mapping[str, str]) -> bool:
    substituted = _substitute(pattern, context)
    return substituted is not None and _glob(substituted, resource)


def _substitute(pattern: str, context: Mapping[str, str]) -> str | None:
    """The pattern with its policy variables replaced (their values match literally); None if one is unresolved."""
    unresolved = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unresolved
        name = match.group(1)
        if name in _ESCAPES:
            return _ESCAPES[name]
        value = context.get(name)
        if value is None:
            unresolved = True
            return ""
        return value.replace("*", _ESCAPES["*"]).replace("?", _ESCAPES["?"])

    text = _VARIABLE.sub(replace, pattern)
    return None if unresolved else text


def _glob(pattern: str, value: str, ignore_case: bool = False) -> bool:
    parts: list[str] = []
    for char in re.split(r"(\*|\?|\x00STAR\x00|\x00QMARK\x00)", pattern):
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char == _ESCAPES["*"]:
            parts.append(re.escape("*"))
        elif char == _ESCAPES["?"]:
            parts.append(re.escape("?"))
        else:
            parts.append(re.escape(char))
    return re.fullmatch("".join(parts), value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotLike": "StringLike",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
}


def _conditions_hold(conditions: Mapping[str, Any], context: Mapping[str, str], notes: list[str]) -> bool:
    for operator, tests in conditions.items():
        base = _NEGATED.get(operator, operator)
        if base not in ("Bool", "StringEquals", "StringEqualsIgnoreCase", "StringLike"):
            notes.append(f"condition operator {operator} is not evaluated here: the statement does not apply")
            return False
        for key, expected in dict(tests).items():
            actual = context.get(key)
            matched = actual is not None and any(_compare(base, actual, value) for value in _as_list(expected))
            if matched == (operator in _NEGATED):
                return False
    return True


def _compare(operator: str, actual: str, expected: str) -> bool:
    if operator == "Bool":
        return actual.lower() == expected.lower()
    if operator == "StringEqualsIgnoreCase":
        return actual.lower() == expected.lower()
    if operator == "StringLike":
        return _glob(expected, actual)
    return actual == expected


# -- reading a principal's policies from an account (any AWS IoT endpoint: the embedded one or a real account) --------


def principal_view(
    iot: Any, certificate_id: str, client_id: str
) -> tuple[list[tuple[str, dict[str, Any]]], Connection, str]:
    """The policies attached to the certificate (their default versions), the connection a device presenting it with
    `client_id` has (the thing of that name if it is attached to the certificate, and the certificate's fields), and
    the certificate's ARN.
    Read with DescribeCertificate, ListAttachedPolicies, GetPolicy and ListPrincipalThings."""
    from jitr.certificates import certificate_parameters, load_certificate

    description = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
    arn = description["certificateArn"]
    policies: list[tuple[str, dict[str, Any]]] = []
    for page in iot.get_paginator("list_attached_policies").paginate(target=arn, recursive=False):
        for attached in page.get("policies", []):
            document = iot.get_policy(policyName=attached["policyName"])["policyDocument"]
            policies.append((attached["policyName"], json.loads(document)))
    things = [
        name
        for page in iot.get_paginator("list_principal_things").paginate(principal=arn)
        for name in page.get("things", [])
    ]
    fields = certificate_parameters(load_certificate(description["certificatePem"]))
    return policies, Connection(client_id, client_id if client_id in things else None, fields), arn
