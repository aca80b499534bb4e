"""The AWS IoT adapter: the only code that talks to boto3. It returns plain records and raises a few typed errors,
keyed on the AWS error code, never on message text. Retries of throttling, 5xx and timeouts are botocore's
(standard mode); what still fails after them surfaces as `Retryable`."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .pacing import Pacer
from .templates import Template, TemplateError, parse_template

RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ServiceUnavailableException",
        "InternalFailureException",
        "InternalException",
        "InternalServerException",
        "RequestTimeout",
    }
)
MISCONFIGURED_CODES = frozenset({"UnauthorizedException", "AccessDeniedException", "AccessDenied"})


class IoTError(Exception):
    """An AWS IoT call failed. `code` is the AWS error code (or the botocore error class)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class NotFound(IoTError):
    """The resource does not exist."""


class Retryable(IoTError):
    """Transient: throttling, 5xx or a timeout that outlasted botocore's retries."""


class Conflict(Retryable):
    """ConflictingResourceUpdate: another request is changing the same resources."""


class Misconfigured(IoTError):
    """Our permissions or stored configuration are wrong; no device is at fault."""


class PermanentFailure(IoTError):
    """AWS refused the request permanently (InvalidRequest, ResourceRegistrationFailure, ...)."""


@dataclass(frozen=True)
class CertificateRecord:
    certificate_id: str
    status: str
    pem: str
    ca_certificate_id: str | None
    arn: str = ""
    created: datetime | None = None


@dataclass(frozen=True)
class CaRecord:
    certificate_id: str
    status: str
    pem: str
    auto_registration: str | None


def _translate(exc: Exception) -> IoTError:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code == "ResourceNotFoundException":
            return NotFound(code, message)
        if code == "ConflictingResourceUpdateException":
            return Conflict(code, message)
        if code in RETRYABLE_CODES or status >= 500:
            return Retryable(code, message)
        if code in MISCONFIGURED_CODES:
            return Misconfigured(code, message)
        return PermanentFailure(code, message)
    return Retryable(type(exc).__name__, str(exc))


def client_config(max_attempts: int) -> Config:
    """botocore's standard retry mode (exponential backoff with jitter) and bounded timeouts."""
    return Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=3,
        read_timeout=10,
        tcp_keepalive=True,
    )


_T = TypeVar("_T")

# boto3's method names for the AWS IoT operations the adapter calls.
_OPERATION_NAMES = {
    "describe_certificate": "DescribeCertificate",
    "describe_ca_certificate": "DescribeCACertificate",
    "describe_provisioning_template": "DescribeProvisioningTemplate",
    "update_certificate": "UpdateCertificate",
    "describe_thing": "DescribeThing",
    "list_thing_principals": "ListThingPrincipals",
    "list_principal_things": "ListPrincipalThings",
    "list_certificates_by_ca": "ListCertificatesByCA",
    "detach_thing_principal": "DetachThingPrincipal",
}


# The calls RegisterThing makes on the caller's behalf, which count against the caller's quotas (API_RegisterThing).
REGISTER_THING_CALLS = ("CreateThing", "AttachPolicy", "AttachThingPrincipal", "UpdateCertificate")


class IoT:
    """AWS IoT as the use case sees it. Across warm invocations the stored template is cached for `template_ttl_s`
    and registered CAs for `ca_ttl_s`; RegisterThing is paced by `pacer` when one is given."""

    def __init__(
        self,
        client: Any,
        template_ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        pacer: Pacer | None = None,
        ca_ttl_s: float = 60.0,
        pacers: Mapping[str, Pacer] | None = None,
    ) -> None:
        self.client = client
        self.template_ttl_s = template_ttl_s
        self.clock = clock
        self.pacer = pacer  # RegisterThing's: its slot is reserved before the certificate is read
        self.pacers = dict(pacers or {})  # every other quota-bound call's, by operation name
        self.ca_ttl_s = ca_ttl_s
        self._templates: dict[str, tuple[float, Template]] = {}
        self._cas: dict[str, tuple[float, CaRecord]] = {}

    @classmethod
    def connect(
        cls,
        *,
        max_attempts: int = 5,
        template_ttl_s: float = 300.0,
        ca_ttl_s: float = 60.0,
        endpoint_url: str | None = None,
        rates_per_s: Mapping[str, float] | None = None,
    ) -> IoT:
        """A client of its own, botocore's retries, and a pacer per quota-bound operation at `rates_per_s` (this
        environment's share of each quota; RegisterThing's paces the registration slot)."""
        # A session of its own: boto3's default session is not safe to share between threads while making clients.
        client = boto3.session.Session().client("iot", config=client_config(max_attempts), endpoint_url=endpoint_url)
        pacers = {operation: Pacer(rate) for operation, rate in (rates_per_s or {}).items() if rate > 0}
        return cls(client, template_ttl_s, pacer=pacers.pop("RegisterThing", None), ca_ttl_s=ca_ttl_s, pacers=pacers)

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        pacer = self.pacers.get(_OPERATION_NAMES.get(operation, ""))
        if pacer is not None:
            pacer.wait()  # this environment's share of the operation's quota
        try:
            response: dict[str, Any] = getattr(self.client, operation)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc) from exc
        return response

    def describe_certificate(self, certificate_id: str) -> CertificateRecord:
        description = self._call("describe_certificate", certificateId=certificate_id)["certificateDescription"]
        return CertificateRecord(
            certificate_id=description["certificateId"],
            status=description["status"],
            pem=description["certificatePem"],
            ca_certificate_id=description.get("caCertificateId"),
            arn=description.get("certificateArn", ""),
            created=description.get("creationDate"),
        )

    def _cached(self, cache: dict[str, tuple[float, _T]], key: str, ttl_s: float, load: Callable[[], _T]) -> _T:
        """`cache[key]` while younger than `ttl_s`, else `load()` again (kept for this execution environment)."""
        now = self.clock()
        hit = cache.get(key)
        if hit is not None and now - hit[0] < ttl_s:
            return hit[1]
        value = load()
        cache[key] = (now, value)
        return value

    def describe_ca_certificate(self, certificate_id: str) -> CaRecord:
        """The registered CA, cached for `ca_ttl_s`: a fleet's events name a few CAs over and over, and
        DescribeCACertificate has a quota of its own. A CA deactivated meanwhile takes effect within the TTL."""

        def load() -> CaRecord:
            description = self._call("describe_ca_certificate", certificateId=certificate_id)
            ca = description["certificateDescription"]
            return CaRecord(
                certificate_id=ca["certificateId"],
                status=ca["status"],
                pem=ca["certificatePem"],
                auto_registration=ca.get("autoRegistrationStatus"),
            )

        return self._cached(self._cas, certificate_id, self.ca_ttl_s, load)

    def template(self, name: str) -> Template:
        """The stored template, checked with the JITR rules, cached for `template_ttl_s`. A broken one is
        `Misconfigured` (no device is at fault)."""

        def load() -> Template:
            try:
                body = self._call("describe_provisioning_template", templateName=name)["templateBody"]
            except NotFound as exc:
                raise Misconfigured(exc.code, f"provisioning template {name!r} does not exist") from exc
            try:
                return parse_template(body, for_jitr=True)
            except TemplateError as exc:
                raise Misconfigured(
                    "InvalidStoredTemplate", f"provisioning template {name!r} is not usable: {exc}"
                ) from exc

        return self._cached(self._templates, name, self.template_ttl_s, load)

    def registration_slot(self) -> AbstractContextManager[None]:
        """Reserve this environment's next RegisterThing slot *before* reading the certificate, so that the state a
        decision rests on is fresh when RegisterThing runs; the slot is given back if no RegisterThing is made."""
        return self.pacer.slot() if self.pacer is not None else nullcontext()

    def register_thing(self, template_body: str, parameters: dict[str, str]) -> dict[str, str]:
        if self.pacer is not None:
            self.pacer.use()
        for operation in REGISTER_THING_CALLS:  # RegisterThing's own calls count against their quotas too
            inner = self.pacers.get(operation)
            if inner is not None:
                inner.wait()
        response = self._call("register_thing", templateBody=template_body, parameters=parameters)
        return dict(response.get("resourceArns") or {})

    def update_certificate(self, certificate_id: str, status: str) -> None:
        self._call("update_certificate", certificateId=certificate_id, newStatus=status)

    def thing_exists(self, thing_name: str) -> bool:
        """DescribeThing (a high quota): whether the thing exists at all."""
        try:
            self._call("describe_thing", thingName=thing_name)
        except NotFound:
            return False
        return True

    def thing_certificates(self, thing_name: str) -> list[str]:
        """The ids of the certificates attached to the thing (ListThingPrincipals; other principals are left out)."""
        ids: list[str] = []
        kwargs: dict[str, Any] = {"thingName": thing_name}
        while True:
            try:
                page = self._call("list_thing_principals", **kwargs)
            except NotFound:
                return ids
            ids += [arn.rsplit("/", 1)[-1] for arn in page.get("principals", []) if ":cert/" in arn]
            if not page.get("nextToken"):
                return ids
            kwargs["nextToken"] = page["nextToken"]

    def principal_things(self, certificate_arn: str) -> list[str]:
        """The names of the things the certificate is attached to (ListPrincipalThings)."""
        names: list[str] = []
        kwargs: dict[str, Any] = {"principal": certificate_arn}
        while True:
            try:
                page = self._call("list_principal_things", **kwargs)
            except NotFound:
                return names
            names += page.get("things", [])
            if not page.get("nextToken"):
                return names
            kwargs["nextToken"] = page["nextToken"]

    def certificates_by_ca(self, ca_id: str, marker: str | None, page_size: int = 250) -> tuple[list[str], str | None]:
        """One page of the CA's certificate ids (ListCertificatesByCA, oldest first) and the next page's marker."""
        page = self._call(
            "list_certificates_by_ca",
            caCertificateId=ca_id,
            pageSize=page_size,
            ascendingOrder=True,
            **({"marker": marker} if marker else {}),
        )
        return [c["certificateId"] for c in page.get("certificates", [])], page.get("nextMarker")

    def detach_certificate(self, thing_name: str, certificate_arn: str) -> None:
        """DetachThingPrincipal; already detached (or gone) is done."""
        with suppress(NotFound):
            self._call("detach_thing_principal", thingName=thing_name, principal=certificate_arn)
