"""A product's decision hook: a Lambda function of the fleet's own, asked about each certificate the product would
provision, that answers allow (with template parameters the product declares hook-settable), deny with a reason, or
hold. `HookRequest` is what it is told (the certificate's facts, never the certificate itself), `HookAnswer` what it
answered, `Hooks` the adapter that invokes it within the product's time budget.

Request schema (`REQUEST_VERSION` "major.minor"): a field may be added under the same major version (the minor
grows); removing or renaming a field, or changing what one means, makes a new major version.

Everything that keeps the hook from giving a readable answer in time (a timeout, throttling, a missing function or
permission, a function that raised, an answer that is not the schema's) raises `HookFailed`: never the device's
fault, the decision is retried.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError
from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .facts import certificate_facts
from .templates.fields import (
    AWS_PREFIX,
    AWS_SUBJECT_NAMES,
    NOT_AFTER,
    PREFIXES,
    PUBLIC_KEY_SHA256,
    SanKind,
    san_parameter,
)

REQUEST_VERSION = "1.0"
MAX_BUDGET_SECONDS = 5.0  # AWS's own pre-provisioning hooks must answer within 5 s
REASON_MAX_CHARS = 256
PARAMETER_VALUE_MAX_CHARS = 2048  # the template's own checks (thing name, attribute value) bound it further
ANSWER_MAX_BYTES = 16 * 1024  # an answer is three small fields: anything larger is not one
_CONNECT_SHARE = 0.1  # of the budget, for opening the connection (at most `_CONNECT_MAX_SECONDS`); the rest for reading
_CONNECT_MAX_SECONDS = 0.5
_ERROR_TYPE_MAX_CHARS = 64

# A function name (letters, digits, - and _, up to 64) with an optional version or alias, or its full ARN.
_NAME = r"[A-Za-z0-9_-]{1,64}(?::(?:\$LATEST|[A-Za-z0-9_-]{1,128}))?"
FUNCTION = re.compile(rf"(?:arn:aws[a-z-]*:lambda:[a-z]{{2}}(?:-gov)?-[a-z]+-\d:\d{{12}}:function:)?{_NAME}")
_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"


class HookSettings(BaseModel):
    """A product's hook: which function, how long it may take, which template parameters it may set."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    function: str = Field(alias="function", min_length=1, max_length=170)
    timeout_seconds: float = Field(MAX_BUDGET_SECONDS, alias="timeoutSeconds", gt=0, le=MAX_BUDGET_SECONDS)
    parameters: tuple[str, ...] = Field((), alias="parameters")

    @field_validator("function")
    @classmethod
    def _function(cls, function: str) -> str:
        if not FUNCTION.fullmatch(function):
            raise ValueError(
                f"{function!r} is not a Lambda function name (letters, digits, - and _, optionally :version or"
                " :alias) or a function's full ARN"
            )
        return function

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not name or name.startswith(PREFIXES) or name.startswith("AWS::"):
                raise ValueError(
                    f"{name!r} cannot be set by a hook: only the deployment's own parameters can (a certificate's"
                    " facts and AWS's names are the certificate's)"
                )
        if len(set(names)) != len(names):
            raise ValueError("a parameter is listed twice")
        return names


# -- the request ---


class _Schema(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)


class Subject(_Schema):
    rfc4514: str  # the whole subject, RFC 4514 (as cryptography writes it)
    attributes: dict[str, str]  # CommonName, SerialNumber, ... (AWS's names), the first value of each present


class SubjectAltNames(_Schema):
    dns: tuple[str, ...] = ()
    uri: tuple[str, ...] = ()
    email: tuple[str, ...] = ()
    ip: tuple[str, ...] = ()


class Fingerprints(_Schema):
    certificate_sha256: str  # lower-case hex, the SHA-256 of the certificate's DER (AWS IoT's certificate id)
    public_key_sha256: str  # lower-case hex, the SHA-256 of the SubjectPublicKeyInfo DER


class Validity(_Schema):
    not_before: str  # ISO 8601 UTC to the second: 2026-05-02T10:00:00Z
    not_after: str


class HookRequest(_Schema):
    """What the hook is told: the certificate's facts, the ids AWS IoT gave it and its CA, and the product."""

    version: str = REQUEST_VERSION
    product: str
    certificate_id: str
    ca_certificate_id: str
    subject: Subject
    issuer: str  # RFC 4514
    subject_alt_names: SubjectAltNames
    serial_number: str  # lower-case hex without leading zeros
    fingerprints: Fingerprints
    validity: Validity

    @classmethod
    def from_certificate(
        cls, certificate: x509.Certificate, certificate_id: str, ca_certificate_id: str, product: str
    ) -> Self:
        """The request about `certificate`. Raises `jitr.certificates.BadCertificate` when a fact cannot be decoded
        (the certificate's fault, as when its template reads it)."""
        facts = certificate_facts(certificate).values
        return cls(
            product=product,
            certificate_id=certificate_id,
            ca_certificate_id=ca_certificate_id,
            subject=Subject(
                rfc4514=certificate.subject.rfc4514_string(),
                attributes={name: facts[AWS_PREFIX + name] for name in AWS_SUBJECT_NAMES if AWS_PREFIX + name in facts},
            ),
            issuer=certificate.issuer.rfc4514_string(),
            subject_alt_names=SubjectAltNames(**{kind.name.lower(): _sans(facts, kind) for kind in SanKind}),
            serial_number=f"{certificate.serial_number:x}",
            fingerprints=Fingerprints(
                certificate_sha256=facts[AWS_PREFIX + "Id"], public_key_sha256=facts[PUBLIC_KEY_SHA256]
            ),
            validity=Validity(
                not_before=certificate.not_valid_before_utc.isoformat().removesuffix("+00:00") + "Z",
                not_after=facts[NOT_AFTER],
            ),
        )

    def payload(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


def _sans(facts: Mapping[str, str], kind: SanKind) -> tuple[str, ...]:
    values: list[str] = []
    while (name := san_parameter(kind, len(values) + 1)) in facts:
        values.append(facts[name])
    return tuple(values)


# -- the answer ---


class HookDecision(StrEnum):
    ALLOW = "allow"  # provision, with the parameters it set
    DENY = "deny"  # refuse: the fleet's own decision, with its reason
    HOLD = "hold"  # leave it pending, decided again on its next event


class _Answer(BaseModel):
    """The answer as the function writes it (JSON)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    decision: HookDecision
    reason: str = Field("", max_length=REASON_MAX_CHARS, pattern=_NO_CONTROL)
    parameters: dict[str, str] = Field(default_factory=dict)

    @field_validator("parameters")
    @classmethod
    def _values(cls, parameters: dict[str, str]) -> dict[str, str]:
        for name, value in parameters.items():
            if len(value) > PARAMETER_VALUE_MAX_CHARS:
                raise ValueError(f"{_shown(name)} is longer than {PARAMETER_VALUE_MAX_CHARS} characters")
        return parameters

    @model_validator(mode="after")
    def _reasoned(self) -> Self:
        if self.decision is not HookDecision.ALLOW and not self.reason.strip():
            raise ValueError(f"a {self.decision} needs a reason")
        return self


@dataclass(frozen=True)
class HookAnswer:
    """What the hook answered, and how long asking took. `parameters` are those it set (declared hook-settable); a
    deny or hold may carry some, but only an allow uses them."""

    decision: HookDecision
    reason: str
    parameters: Mapping[str, str]
    elapsed_seconds: float = 0.0

    @classmethod
    def read(cls, raw: bytes, settable: tuple[str, ...], elapsed_seconds: float = 0.0) -> HookAnswer:
        """The answer in `raw` (the function's JSON); raises `HookFailed` naming what is wrong with it (never
        repeating the answer itself)."""
        if len(raw) > ANSWER_MAX_BYTES:
            raise HookFailed(f"the answer is larger than {ANSWER_MAX_BYTES} bytes", elapsed_seconds)
        try:
            answer = _Answer.model_validate_json(raw)
        except ValidationError as exc:
            raise HookFailed(_problems(exc), elapsed_seconds) from None
        undeclared = sorted(set(answer.parameters) - set(settable))
        if undeclared:
            names = ", ".join(_shown(name) for name in undeclared[:3])
            raise HookFailed(
                f"the answer sets {names}, not among the parameters the product lets its hook set"
                f" ({', '.join(settable) or 'none'})",
                elapsed_seconds,
            )
        return cls(answer.decision, answer.reason, dict(answer.parameters), elapsed_seconds)


class HookFailed(Exception):
    """The hook gave no answer that can be used: timed out, failed, or answered what cannot be read. Not the device's
    fault: the decision is retried. `elapsed_seconds` is how long asking took (None: not measured)."""

    def __init__(self, message: str, elapsed_seconds: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.elapsed_seconds = elapsed_seconds


def _problems(exc: ValidationError) -> str:
    """What is wrong, by field: pydantic's messages without the input (the answer is never repeated)."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    described = [_problem(error["loc"], error["msg"]) for error in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "the answer is malformed: " + "; ".join(described) + more


def _problem(location: tuple[int | str, ...], message: str) -> str:
    message = message.removeprefix("Value error, ")
    return f"{_bounded('.'.join(map(str, location)))}: {message}" if location else message


def _shown(name: str) -> str:
    """A name from the answer, quoted and bounded for a log line."""
    return repr(name) if len(name) <= 64 else repr(name[:64]) + "..."


def _bounded(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# -- asking ---

ClientFactory = Callable[[Config], Any]
"""Makes a boto3 Lambda client with the given botocore configuration (timeouts and retries fit to a budget)."""


def lambda_clients(endpoint_url: str | None = None, region: str | None = None) -> ClientFactory:
    """boto3's Lambda clients (at `endpoint_url`: the embedded AWS of a rehearsal)."""
    return lambda config: boto3.client("lambda", endpoint_url=endpoint_url, region_name=region, config=config)


def budget_config(budget_seconds: float) -> Config:
    """Timeouts that fit the budget together (connecting, then waiting for the answer), and one attempt: a retry
    after a throttle or a dropped connection could not finish within it. The queue's redelivery is the retry."""
    connect = min(_CONNECT_MAX_SECONDS, budget_seconds * _CONNECT_SHARE)
    return Config(
        connect_timeout=connect,
        read_timeout=budget_seconds - connect,
        retries={"mode": "standard", "total_max_attempts": 1},
    )


class Hooks:
    """The adapter over AWS Lambda that asks products' hooks. One client per budget, made on first use."""

    def __init__(self, clients: ClientFactory) -> None:
        self._clients = clients
        self._by_budget: dict[float, Any] = {}

    def _client(self, budget_seconds: float) -> Any:
        client = self._by_budget.get(budget_seconds)
        if client is None:
            client = self._by_budget.setdefault(budget_seconds, self._clients(budget_config(budget_seconds)))
        return client

    def ask(self, settings: HookSettings, request: HookRequest) -> HookAnswer:
        """The hook's answer about `request`, within `settings.timeout_seconds`. Raises `HookFailed` (the decision
        is retried) for a timeout, throttling, a function that cannot be invoked or raised, or a malformed answer."""
        name = settings.function
        started = time.monotonic()
        try:
            failed, raw = self._invoke(settings, request)
        except HookFailed as exc:
            raise HookFailed(f"the hook function {name} {exc.message}", time.monotonic() - started) from exc.__cause__
        elapsed = time.monotonic() - started
        if failed:
            raise HookFailed(f"the hook function {name} failed: {_error_type(raw)}", elapsed)
        try:
            return HookAnswer.read(raw, settings.parameters, elapsed)
        except HookFailed as exc:
            raise HookFailed(f"the hook function {name}: {exc.message}", elapsed) from None

    def _invoke(self, settings: HookSettings, request: HookRequest) -> tuple[bool, bytes]:
        """(whether the function failed, what it returned: at most one byte more than an answer may hold)."""
        client = self._client(settings.timeout_seconds)
        try:
            response = client.invoke(
                FunctionName=settings.function, InvocationType="RequestResponse", Payload=request.payload()
            )
            return bool(response.get("FunctionError")), response["Payload"].read(ANSWER_MAX_BYTES + 1)
        except (ReadTimeoutError, ConnectTimeoutError):
            raise HookFailed(f"did not answer within {settings.timeout_seconds:g} s") from None
        except ClientError as exc:
            raise HookFailed(f"could not be invoked: {exc.response.get('Error', {}).get('Code', 'Unknown')}") from exc
        except BotoCoreError as exc:
            raise HookFailed(f"could not be reached: {exc}") from exc


def _error_type(raw: bytes) -> str:
    """The errorType Lambda reports for a function that raised (or timed out, or ran out of memory)."""
    try:
        error_type = _FunctionError.model_validate_json(raw).error_type
    except ValidationError:
        return "an error Lambda did not describe"
    return _bounded(error_type, _ERROR_TYPE_MAX_CHARS)


class _FunctionError(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    error_type: str = Field(alias="errorType", pattern=_NO_CONTROL)
