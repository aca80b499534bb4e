"""What the template engine reports: problems with a JSON path, a stable code and a sentence."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding about a template. `path` is a JSONPath-like location such as `$.Resources.thing`. When rendering,
    `parameters` names the parameters the faulty value was computed from (who is to blame for it)."""

    path: str
    code: str
    message: str
    severity: Severity = "error"
    parameters: frozenset[str] = field(default=frozenset(), compare=False)

    def __str__(self) -> str:
        return f"{self.severity.upper()} {self.path}: {self.message} [{self.code}]"

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message, "severity": self.severity}


class TemplateError(ValueError):
    """A template cannot be used: it failed the static check or could not be rendered."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(p.code for p in self.problems)


def child(path: str, key: str | int) -> str:
    """The path of `key` below `path`, quoting keys that are not plain identifiers."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.replace("_", "").replace("-", "").isalnum():
        return f"{path}.{key}"
    return f"{path}[{key!r}]"
