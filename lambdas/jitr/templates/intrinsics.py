"""The intrinsic functions AWS IoT documents for provisioning templates, evaluated one way for two uses.

The static check evaluates with parameters *unknown* (every `Ref` yields `UNKNOWN`), so it sees the shape of each
expression, every reference and every literal mapping lookup without values. Rendering evaluates the same code with
the real parameters. Problems are collected, not raised, so one pass reports all of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from .limits import DOCUMENTED_INTRINSICS, NamePattern
from .problems import Problem, child


class _Unknown:
    """A value that depends on parameters not known yet (static check)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()
Value = Any  # str | list[Value] | dict[str, Value] | _Unknown

_SUB_VARIABLE = re.compile(r"\$\{(!?)([^}]*)\}")
_UNDOCUMENTED_HINT = (
    "is not documented for AWS IoT provisioning templates and is refused; "
    "use Ref, Fn::Join, Fn::Select, Fn::Split, Fn::Sub or Fn::FindInMap"
)


def is_intrinsic(node: object) -> bool:
    """True for a one-key object whose key is `Ref`, `Condition` or starts with `Fn::`."""
    if not isinstance(node, dict) or len(node) != 1:
        return False
    (key,) = node
    return key in ("Ref", "Condition") or key.startswith("Fn::")


def referenced_parameters(node: Value) -> frozenset[str]:
    """Every parameter an expression can take its value from: `Ref`s and the variables of `Fn::Sub` strings, through
    every intrinsic (a `Fn::FindInMap` key, a `Fn::Select` index, a `Fn::Split` source and the rest). A syntactic
    over-approximation: what it names may reach the value, what it does not name cannot."""
    found: set[str] = set()
    if is_intrinsic(node):
        ((name, argument),) = node.items()
        if name == "Ref" and isinstance(argument, str):
            return frozenset({argument})
        if name == "Fn::Sub":
            local: dict[str, Value] = {}
            text = argument
            if isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], dict):
                text, local = argument[0], argument[1]
                for expression in local.values():
                    found |= referenced_parameters(expression)
            if isinstance(text, str):
                for match in _SUB_VARIABLE.finditer(text):
                    escaped, variable = match.groups()
                    if not escaped and variable not in local:
                        found.add(variable)
            return frozenset(found)
        return referenced_parameters(argument)
    if isinstance(node, dict):
        for item in node.values():
            found |= referenced_parameters(item)
    elif isinstance(node, list):
        for item in node:
            found |= referenced_parameters(item)
    return frozenset(found)


class Evaluator:
    """Evaluates template expressions. `parameters=None` means the static check (values unknown)."""

    def __init__(
        self,
        declared: Mapping[str, object],
        mappings: Mapping[str, Any],
        parameters: Mapping[str, str] | None,
        problems: list[Problem],
    ) -> None:
        self.declared = declared
        self.mappings = mappings
        self.parameters = parameters
        self.problems = problems
        # While set, every parameter value the expression uses must match this pattern (values in policy documents).
        self.guard: NamePattern | None = None

    def fail(self, path: str, code: str, message: str) -> _Unknown:
        self.problems.append(Problem(path, code, message))
        return UNKNOWN

    # -- entry points ---

    def value(self, node: Value, path: str) -> Value:
        """Evaluate any JSON value: literals stay, intrinsics are computed, containers are walked."""
        if is_intrinsic(node):
            return self.intrinsic(node, path)
        if isinstance(node, dict):
            return {key: self.value(item, child(path, key)) for key, item in node.items()}
        if isinstance(node, list):
            return [self.value(item, child(path, i)) for i, item in enumerate(node)]
        return node

    def string(self, node: Value, path: str) -> str | _Unknown:
        """Evaluate `node` and insist on a string result."""
        result = self.value(node, path)
        if result is UNKNOWN or isinstance(result, str):
            return result
        return self.fail(path, "TYPE_MISMATCH", f"expected a string, got {_describe(result)}")

    def string_list(self, node: Value, path: str) -> list[str | _Unknown] | _Unknown:
        """Evaluate `node` and insist on a list of strings."""
        result = self.value(node, path)
        if isinstance(result, _Unknown):
            return UNKNOWN
        if not isinstance(result, list):
            return self.fail(path, "TYPE_MISMATCH", f"expected a list of strings, got {_describe(result)}")
        items: list[str | _Unknown] = []
        for i, item in enumerate(result):
            if item is UNKNOWN or isinstance(item, str):
                items.append(item)
            else:
                items.append(self.fail(child(path, i), "TYPE_MISMATCH", f"expected a string, got {_describe(item)}"))
        return items

    # -- intrinsics ---

    def intrinsic(self, node: dict[str, Value], path: str) -> Value:
        ((name, argument),) = node.items()
        here = child(path, name)
        if name not in DOCUMENTED_INTRINSICS:
            return self.fail(here, "UNSUPPORTED_INTRINSIC", f"{name} {_UNDOCUMENTED_HINT}")
        handler = {
            "Ref": self._ref,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::Sub": self._sub,
            "Fn::FindInMap": self._find_in_map,
        }[name]
        return handler(argument, here)

    def _lookup(self, name: str, path: str) -> str | _Unknown:
        if name not in self.declared:
            return self.fail(
                path, "UNDECLARED_PARAMETER", f"parameter {name!r} is referenced but not declared in Parameters"
            )
        if self.parameters is None:
            return UNKNOWN
        value = self.parameters.get(name)
        if value is None:  # rendering reports missing parameters once, up front
            return UNKNOWN
        if self.guard is not None and (problem := self.guard.problem(value)):
            return self.fail(
                path,
                "UNSAFE_POLICY_VALUE",
                f"parameter {name!r} would put its value into a policy document, where only values that are valid"
                f" thing names may go ({problem})",
            )
        return value

    def _ref(self, argument: Value, path: str) -> Value:
        if not isinstance(argument, str):
            return self.fail(path, "BAD_INTRINSIC", f"Ref takes a parameter name, got {_describe(argument)}")
        return self._lookup(argument, path)

    def _join(self, argument: Value, path: str) -> Value:
        if not (isinstance(argument, list) and len(argument) == 2 and isinstance(argument[0], str)):
            return self.fail(path, "BAD_INTRINSIC", "Fn::Join takes [delimiter, [values...]]")
        parts = self.string_list(argument[1], child(path, 1))
        if isinstance(parts, _Unknown):
            return UNKNOWN
        known = [part for part in parts if isinstance(part, str)]
        return argument[0].join(known) if len(known) == len(parts) else UNKNOWN

    def _select(self, argument: Value, path: str) -> Value:
        if not (isinstance(argument, list) and len(argument) == 2):
            return self.fail(path, "BAD_INTRINSIC", "Fn::Select takes [index, [values...]]")
        index = argument[0] if isinstance(argument[0], int) else self.string(argument[0], child(path, 0))
        items = self.value(argument[1], child(path, 1))
        if index is UNKNOWN or items is UNKNOWN:
            return UNKNOWN
        if isinstance(index, bool) or not (isinstance(index, int) or (isinstance(index, str) and index.isdigit())):
            return self.fail(child(path, 0), "BAD_INTRINSIC", f"Fn::Select index must be a whole number, got {index!r}")
        if not isinstance(items, list):
            return self.fail(child(path, 1), "TYPE_MISMATCH", f"Fn::Select needs a list, got {_describe(items)}")
        position = int(index)
        if position >= len(items):
            return self.fail(
                path, "SELECT_OUT_OF_RANGE", f"Fn::Select index {position} is out of range for {len(items)} item(s)"
            )
        return items[position]

    def _split(self, argument: Value, path: str) -> Value:
        if not (isinstance(argument, list) and len(argument) == 2 and isinstance(argument[0], str) and argument[0]):
            return self.fail(path, "BAD_INTRINSIC", "Fn::Split takes [non-empty delimiter, string]")
        source = self.string(argument[1], child(path, 1))
        if isinstance(source, _Unknown):
            return UNKNOWN
        return source.split(argument[0])

    def _sub(self, argument: Value, path: str) -> Value:
        variables: dict[str, Value] = {}
        if isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], dict):
            text = argument[0]
            for name, expression in argument[1].items():
                variables[name] = self.string(expression, child(child(path, 1), name))
        else:
            text = argument
        if not isinstance(text, str):
            return self.fail(path, "BAD_INTRINSIC", "Fn::Sub takes a string or [string, {name: value}]")
        pieces: list[str] = []
        unknown = False
        last = 0
        for match in _SUB_VARIABLE.finditer(text):
            pieces.append(text[last : match.start()])
            last = match.end()
            escaped, name = match.groups()
            if escaped:
                pieces.append("${" + name + "}")
                continue
            value = variables[name] if name in variables else self._lookup(name, path)
            if isinstance(value, str):
                pieces.append(value)
            else:
                unknown = True
        pieces.append(text[last:])
        return UNKNOWN if unknown else "".join(pieces)

    def _find_in_map(self, argument: Value, path: str) -> Value:
        if not (isinstance(argument, list) and len(argument) == 3):
            return self.fail(path, "BAD_INTRINSIC", "Fn::FindInMap takes [MapName, TopLevelKey, SecondLevelKey]")
        keys = [self.string(item, child(path, i)) for i, item in enumerate(argument)]
        map_name, top, second = keys
        if isinstance(map_name, _Unknown):
            return UNKNOWN
        if map_name not in self.mappings:
            return self.fail(child(path, 0), "UNKNOWN_MAPPING", f"mapping {map_name!r} is not declared in Mappings")
        if isinstance(top, _Unknown):
            return UNKNOWN
        table = self.mappings[map_name]
        if top not in table:
            return self.fail(child(path, 1), "MAPPING_KEY_NOT_FOUND", f"mapping {map_name!r} has no key {top!r}")
        if isinstance(second, _Unknown):
            return UNKNOWN
        if second not in table[top]:
            return self.fail(
                child(path, 2), "MAPPING_KEY_NOT_FOUND", f"mapping {map_name!r}.{top!r} has no key {second!r}"
            )
        return table[top][second]


def _describe(value: Value) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return f"{type(value).__name__}"
