"""AWS IoT policies, evaluated as AWS IoT Core evaluates them for MQTT: `iot:Connect` on `client/<clientId>`,
`iot:Publish` and `iot:Receive` on `topic/<topic>`, `iot:Subscribe` on `topicfilter/<filter>`; an explicit Deny wins,
then any Allow, else the request is implicitly denied.

- Resources and actions match with `*` (any characters, `/` included) and `?` (one character); MQTT's `+` and `#`
  are ordinary characters in a resource (a `topicfilter/` resource names the filter a client subscribes with).
- Policy variables (`${name}` in a resource or a condition value) are those AWS IoT documents for a connection over
  X.509 (`policy_variables`), plus the escapes `${*}`, `${?}`, `${$}`; a variable's value matches literally. As IAM
  documents ("Policy variables with no value"), a resource using a variable with no value matches nothing, a
  condition on a key with no value fails, and its negated form (`StringNotEquals`, ...) holds. As AWS IoT documents,
  a certificate value with a wildcard character or over 1,024 characters is not substituted: the `${...}` text stays.
- Conditions: the `String*` operators, `Bool`, `Null`, `Numeric*`, `IpAddress`, `NotIpAddress`, with the
  `ForAllValues:` and `ForAnyValue:` qualifiers and the `...IfExists` suffix, over the same keys.

What jitr cannot resolve, it does not guess. A variable or condition key AWS does not document, one AWS documents but
the connection's source does not carry (`aws:SourceIp`, `iot:DomainName`, a thing's attributes known by name only),
or a condition operator jitr does not evaluate, leaves its statement undecided: an undecided Allow does not allow, an
undecided Deny is taken to deny (the verdict says it is `assumed`), so jitr never allows what AWS IoT might deny. The
verdict's notes say which statement and which name; `missing` lists the names (TestAuthorization's
`missingContextValues`).

A document AWS IoT would refuse (CreatePolicy's MalformedPolicyException) raises `PolicyError`.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jitr_tools.iot.policy_variables import Connection, Thing, documented, multivalued, substitutable

__all__ = [
    "Connection",
    "Decision",
    "PolicyError",
    "Thing",
    "Verdict",
    "action_name",
    "evaluate",
    "policy_statements",
    "principal_view",
    "resource_arn",
]

RESOURCE_KIND = {
    "iot:Connect": "client",
    "iot:Publish": "topic",
    "iot:Receive": "topic",
    "iot:Subscribe": "topicfilter",
}
ACTIONS = {name.split(":", 1)[1].lower(): name for name in RESOURCE_KIND}  # "publish" -> "iot:Publish"
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_ESCAPES = {"*": "*", "?": "?", "$": "$"}

Maybe = bool | None  # None: jitr cannot tell


class PolicyError(ValueError):
    """A policy document AWS IoT would refuse; the message names the policy, the statement and the element."""


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
    missing: tuple[str, ...] = ()  # variables and keys with no value, or that jitr cannot resolve
    assumed: bool = False  # the deciding Deny is undecided: jitr takes it to apply (see the module's docstring)

    @property
    def allowed(self) -> bool:
        return self.decision == Decision.ALLOWED

    def describe(self) -> str:
        if self.decision == Decision.IMPLICIT_DENY:
            return "DENIED (implicitly: no statement allows it)"
        verb = "ALLOWED by" if self.allowed else "DENIED (explicitly) by"
        assumed = " (taken to apply: jitr cannot resolve all it uses)" if self.assumed else ""
        return f"{verb} policy {self.policy}, statement {self.statement}{assumed}"


def action_name(text: str) -> str:
    """ "publish", "Publish" or "iot:Publish" -> "iot:Publish"."""
    name = ACTIONS.get(text.lower().removeprefix("iot:"))
    if name is None:
        raise ValueError(f"not an MQTT action: {text!r} (connect, publish, subscribe or receive)")
    return name


def resource_arn(action: str, name: str, region: str, account_id: str) -> str:
    return f"arn:aws:iot:{region}:{account_id}:{RESOURCE_KIND[action]}/{name}"


@dataclass
class _Trace:
    """What one statement met that the connection does not resolve."""

    unknown: list[str] = field(default_factory=list)  # names jitr cannot resolve, operators it does not evaluate
    absent: list[str] = field(default_factory=list)  # names with no value for this connection (AWS IoT's too)

    def add(self, bucket: list[str], name: str) -> None:
        if name not in bucket:
            bucket.append(name)


def evaluate(policies: Sequence[tuple[str, Any]], action: str, resource: str, connection: Connection) -> Verdict:
    """The decision for `action` on the ARN `resource` under `policies` (name, document). Raises PolicyError for a
    malformed document."""
    checked = [(name, policy_statements(name, document)) for name, document in policies]
    allow: tuple[str, int] | None = None
    assumed_deny: tuple[str, int] | None = None
    notes: list[str] = []
    missing: list[str] = []
    for policy_name, statements in checked:
        for index, statement in enumerate(statements):
            trace = _Trace()
            applies = _applies(statement, action, resource, connection, trace)
            deny = statement["Effect"] == "Deny"
            notes.extend(_notes(f"policy {policy_name}, statement {index}", deny, applies, trace))
            missing.extend(name for name in (*trace.absent, *trace.unknown) if name not in missing)
            if deny and applies:
                return Verdict(Decision.EXPLICIT_DENY, policy_name, index, tuple(notes), tuple(missing))
            if deny and applies is None and assumed_deny is None:
                assumed_deny = (policy_name, index)
            if not deny and applies and allow is None:
                allow = (policy_name, index)
    if assumed_deny is not None:
        policy, index = assumed_deny
        return Verdict(Decision.EXPLICIT_DENY, policy, index, tuple(notes), tuple(missing), assumed=True)
    if allow is not None:
        return Verdict(Decision.ALLOWED, allow[0], allow[1], tuple(notes), tuple(missing))
    return Verdict(Decision.IMPLICIT_DENY, notes=tuple(notes), missing=tuple(missing))


def _notes(where: str, deny: bool, applies: Maybe, trace: _Trace) -> list[str]:
    notes = []
    if trace.absent:
        names = ", ".join(trace.absent)
        notes.append(
            f"{where}: {names} has no value for this connection (as on AWS IoT: a resource using it matches nothing,"
            " a condition on it fails unless negated)"
        )
    if applies is None:
        names = ", ".join(f"{n} ({_why_unknown(n)})" for n in trace.unknown)
        effect = "this Deny is taken to apply" if deny else "this Allow is taken not to apply"
        notes.append(f"{where}: {effect}: jitr cannot resolve {names}")
    return notes


def _why_unknown(name: str) -> str:
    if name.startswith("operator "):
        return "not evaluated by jitr"
    return "not known for this connection" if documented(name) else "not a variable AWS IoT documents"


# -- the document's shape ---------------------------------------------------------------------------------------------


def policy_statements(name: str, document: Any) -> list[Mapping[str, Any]]:
    """The statements of the policy `document`; PolicyError when AWS IoT would refuse its shape."""
    if not isinstance(document, Mapping):
        raise PolicyError(f"policy {name}: a policy document is a JSON object, not {_show(document)}")
    statements = document.get("Statement")
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise PolicyError(
            f"policy {name}: Statement is an object or a non-empty list of objects, not {_show(statements)}"
        )
    for index, statement in enumerate(statements):
        _check_statement(f"policy {name}, statement {index}", statement)
    return statements


def _check_statement(where: str, statement: Any) -> None:
    if not isinstance(statement, Mapping):
        raise PolicyError(f"{where}: a statement is a JSON object, not {_show(statement)}")
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise PolicyError(f'{where}: Effect is "Allow" or "Deny", not {_show(statement.get("Effect"))}')
    for element, negated in (("Action", "NotAction"), ("Resource", "NotResource")):
        present = [key for key in (element, negated) if key in statement]
        if len(present) != 1:
            raise PolicyError(f"{where}: a statement has one of {element} or {negated}")
        value = statement[present[0]]
        if not _strings(value):
            raise PolicyError(f"{where}: {present[0]} is a string or a non-empty list of strings, not {_show(value)}")
    if "Condition" in statement:
        _check_condition(where, statement["Condition"])


def _check_condition(where: str, condition: Any) -> None:
    if not isinstance(condition, Mapping):
        raise PolicyError(f"{where}: Condition is an object of operators, not {_show(condition)}")
    for operator_name, tests in condition.items():
        if not isinstance(tests, Mapping) or not tests:
            raise PolicyError(f"{where}: Condition {_show(operator_name)} takes an object of keys, not {_show(tests)}")
        for key, expected in tests.items():
            values = expected if isinstance(expected, list) else [expected]
            if not values or not all(isinstance(v, str | bool | int | float) for v in values):
                raise PolicyError(
                    f"{where}: Condition {_show(operator_name)} {_show(key)} takes a string, number or boolean, or a"
                    f" non-empty list of them, not {_show(expected)}"
                )


def _strings(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(isinstance(v, str) for v in values)


def _show(value: Any) -> str:
    """A value from the document, on one line and short."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _as_list(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in values]


# -- one statement ----------------------------------------------------------------------------------------------------


def _applies(statement: Mapping[str, Any], action: str, resource: str, connection: Connection, trace: _Trace) -> Maybe:
    if "Action" in statement:
        if not any(_glob_regex(p, action, ignore_case=True) for p in _as_list(statement["Action"])):
            return False
    elif any(_glob_regex(p, action, ignore_case=True) for p in _as_list(statement["NotAction"])):
        return False
    if "Resource" in statement:
        matched = _any(_resource_matches(p, resource, connection, trace) for p in _as_list(statement["Resource"]))
    else:
        matched = _not(
            _any(_resource_matches(p, resource, connection, trace) for p in _as_list(statement["NotResource"]))
        )
    if matched is False:
        return False
    conditions = statement.get("Condition") or {}
    held = _all(_operator_holds(op, tests, connection, trace) for op, tests in conditions.items())
    return _all((matched, held))


def _any(values: Iterable[Maybe]) -> Maybe:
    result: Maybe = False
    for value in values:
        if value:
            return True
        if value is None:
            result = None
    return result


def _all(values: Iterable[Maybe]) -> Maybe:
    result: Maybe = True
    for value in values:
        if value is False:
            return False
        if value is None:
            result = None
    return result


def _not(value: Maybe) -> Maybe:
    return None if value is None else not value


# -- variables ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Expanded:
    """A string from the policy with its variables replaced: `regex` for wildcard matching (a variable's value and
    the escapes match literally), `text` for exact comparison. Both None when a variable has no value (it then
    matches nothing); `undecided` when a variable jitr cannot resolve stands in as "anything"."""

    regex: str | None
    text: str | None
    undecided: bool = False


def _expand(template: str, connection: Connection, trace: _Trace) -> _Expanded:
    regex: list[str] = []
    text: list[str] = []
    undecided = False
    position = 0
    for match in _VARIABLE.finditer(template):
        literal = template[position : match.start()]
        regex.append(_glob_part(literal))
        text.append(literal)
        position = match.end()
        name = match.group(1)
        if name in _ESCAPES:
            regex.append(re.escape(_ESCAPES[name]))
            text.append(_ESCAPES[name])
            continue
        values = connection.values(name)
        if values is None:
            trace.add(trace.unknown, name)
            undecided = True
            regex.append(".*")
            text.append(match.group(0))
        elif not values or multivalued(name) or len(values) > 1:
            trace.add(trace.absent, name)
            return _Expanded(None, None)
        else:
            value = values[0] if substitutable(name, values[0]) else match.group(0)
            regex.append(re.escape(value))
            text.append(value)
    regex.append(_glob_part(template[position:]))
    text.append(template[position:])
    return _Expanded("".join(regex), "".join(text), undecided)


@functools.lru_cache(maxsize=4096)  # the literal parts of the policies in use: a few per statement
def _glob_part(pattern: str) -> str:
    """A policy's literal text as a regex: `*` any characters, `?` one, the rest as written."""
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


def _glob_regex(pattern: str, value: str, ignore_case: bool = False) -> bool:
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.fullmatch(_glob_part(pattern), value, flags) is not None


def _resource_matches(pattern: str, resource: str, connection: Connection, trace: _Trace) -> Maybe:
    expanded = _expand(pattern, connection, trace)
    if expanded.regex is None:
        return False
    matched = re.fullmatch(expanded.regex, resource, re.DOTALL) is not None
    return None if matched and expanded.undecided else matched


# -- conditions --------------------------------------------------------------------------------------------------------


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def test(actual: str, expected: str) -> bool:
        try:
            return compare(float(actual), float(expected))
        except ValueError:
            return False

    return test


def _in_network(actual: str, expected: str) -> bool:
    try:
        return ipaddress.ip_address(actual) in ipaddress.ip_network(expected, strict=False)
    except ValueError:
        return False


_EXACT: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": operator.eq,
    "StringEqualsIgnoreCase": lambda actual, expected: actual.lower() == expected.lower(),
    "Bool": lambda actual, expected: actual.lower() == expected.lower(),
    "NumericEquals": _numeric(operator.eq),
    "NumericLessThan": _numeric(operator.lt),
    "NumericLessThanEquals": _numeric(operator.le),
    "NumericGreaterThan": _numeric(operator.gt),
    "NumericGreaterThanEquals": _numeric(operator.ge),
    "IpAddress": _in_network,
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "NotIpAddress": "IpAddress",
}
_QUALIFIERS = ("ForAllValues:", "ForAnyValue:")


def _operator_holds(name: str, tests: Mapping[str, Any], connection: Connection, trace: _Trace) -> Maybe:
    qualifier = next((q for q in _QUALIFIERS if name.startswith(q)), "")
    base = name[len(qualifier) :]
    if_exists = base.endswith("IfExists") and base != "IfExists"
    base = base.removesuffix("IfExists") if if_exists else base
    positive = _NEGATED.get(base, base)
    if (positive not in _EXACT and positive not in ("StringLike", "Null")) or (positive == "Null" and qualifier):
        trace.add(trace.unknown, f"operator {name}")
        return None
    return _all(
        _key_holds(qualifier, base, if_exists, key, _as_list(expected), connection, trace)
        for key, expected in tests.items()
    )


def _key_holds(
    qualifier: str,
    base: str,
    if_exists: bool,
    key: str,
    expected: list[str],
    connection: Connection,
    trace: _Trace,
) -> Maybe:
    actual = connection.values(key)
    if actual is None:
        trace.add(trace.unknown, key)
        return None
    if base == "Null":  # "true": the key has no value; "false": it has one
        return any(e.lower() == ("false" if actual else "true") for e in expected)
    negated = base in _NEGATED
    if not actual:
        trace.add(trace.absent, key)
        if if_exists or qualifier == "ForAllValues:":
            return True
        return negated and qualifier != "ForAnyValue:"
    positive = _NEGATED.get(base, base)
    patterns = [_expand(e, connection, trace) for e in expected]
    matches = [_any(_compare(positive, a, p) for p in patterns) for a in actual]
    if qualifier == "ForAllValues:":
        return _all(_not(m) if negated else m for m in matches)
    if qualifier == "ForAnyValue:":
        return _any(_not(m) if negated else m for m in matches)
    matched = _any(matches)
    return _not(matched) if negated else matched


def _compare(operator_name: str, actual: str, expected: _Expanded) -> Maybe:
    if expected.regex is None or expected.text is None:
        return False
    if operator_name == "StringLike":
        matched = re.fullmatch(expected.regex, actual, re.DOTALL) is not None
        return None if matched and expected.undecided else matched
    if expected.undecided:
        return None
    return _EXACT[operator_name](actual, expected.text)


# -- reading a principal's policies from an account (any AWS IoT endpoint: the embedded one or a real account) --------


def principal_view(iot: Any, certificate_id: str, client_id: str) -> tuple[list[tuple[str, Any]], Connection, str]:
    """The policies attached to the certificate (their default versions), the connection a device presenting it with
    `client_id` has (the thing of that name, with its type and attributes, if it is attached to the certificate; the
    certificate), and the certificate's ARN.
    Read with DescribeCertificate, ListAttachedPolicies, GetPolicy, ListPrincipalThings and DescribeThing."""
    description = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
    arn = description["certificateArn"]
    policies: list[tuple[str, Any]] = []
    for page in iot.get_paginator("list_attached_policies").paginate(target=arn, recursive=False):
        for attached in page.get("policies", []):
            document = iot.get_policy(policyName=attached["policyName"])["policyDocument"]
            policies.append((attached["policyName"], _document(attached["policyName"], document)))
    things = [
        name
        for page in iot.get_paginator("list_principal_things").paginate(principal=arn)
        for name in page.get("things", [])
    ]
    thing = None
    if client_id in things:
        record = iot.describe_thing(thingName=client_id)
        thing = Thing(client_id, record.get("thingTypeName"), dict(record.get("attributes") or {}))
    connection = Connection(client_id, thing=thing, certificate_pem=description["certificatePem"])
    return policies, connection, arn


def _document(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"policy {name}: not JSON ({exc})") from None
