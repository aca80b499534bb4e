"""The embedded AWS IoT: one account and region of moto's IoT, completed by `install()`, plus what happens when a
device connects for the first time (JITR) and the event bus that carries the registration events.

In-process use needs moto's mock active (`mock()`, with AWS IoT's certificate ids); `serve()` also exposes it on
127.0.0.1 so boto3 in any process can reach it with `endpoint_url`.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from unittest.mock import patch

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from moto import mock_aws
from moto.core.config import default_user_config
from moto.iot.models import FakeCaCertificate, FakeCertificate, iot_backends
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from jitr.certificates import certificate_id, certificate_parameters, load_certificate, load_certificates
from jitr.provisioning import RegistrationEvent
from jitr_tools.iot.topics import REGISTERED_TOPIC, topic_matches

from . import errors
from .functions import EmbeddedLambda
from .install import install
from .lookups import attached_policy_names
from .models import EmbeddedBackend
from .quotas import AUTO_REGISTRATION, AWS_DEFAULT_TPS, CONNECT, DEVICE_DEFAULT_TPS
from .state import Extension, Subscriber, TokenBucket

DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
ENDPOINT = "localhost"  # the SNI an in-process device sends (a real one sends its account's endpoint name)
NO_SNI = "no SNI: the certificate's CA is registered in SNI_ONLY mode, where AWS finds the account by SNI"


class Connect(StrEnum):
    """What a device sees when it sends MQTT CONNECT over mutual TLS."""

    CONNECTED = "CONNECTED"  # certificate ACTIVE with a policy
    REGISTERED = "REGISTERED"  # first connect: registered PENDING_ACTIVATION, event published, connection closed
    PENDING = "PENDING"  # still PENDING_ACTIVATION: event published again, connection closed
    CLOSED = "CLOSED"  # TLS or authorization failed, connection closed: see reason
    THROTTLED = "THROTTLED"  # over the account's CONNECT or auto-registration rate: closed, nothing registered


@dataclass(frozen=True)
class ConnectResult:
    outcome: Connect
    certificate_id: str
    ca_certificate_id: str | None = None
    reason: str = ""


class EmbeddedIoT:
    """One account and region of the embedded AWS IoT."""

    def __init__(self, account_id: str = DEFAULT_ACCOUNT, region: str = DEFAULT_REGION) -> None:
        install()
        self.account_id = account_id
        self.region = region

    @property
    def backend(self) -> EmbeddedBackend:
        backend = iot_backends[self.account_id][self.region]
        assert isinstance(backend, EmbeddedBackend), "install() makes every IoT backend an EmbeddedBackend"
        return backend

    @property
    def state(self) -> Extension:
        return self.backend.extension

    @property
    def functions(self) -> EmbeddedLambda:
        """The account and region's Lambda functions that are Python callables (products' decision hooks)."""
        return EmbeddedLambda(self.account_id, self.region)

    # -- knobs for tests, the simulator and the benchmarks -------------------------------------------------------------

    def set_quota(self, operation: str, per_second: float, burst: float | None = None) -> None:
        """Enforce an AWS-style TPS quota on `operation` (ThrottlingException beyond it)."""
        self.state.quotas[operation] = TokenBucket(per_second, burst)

    def apply_aws_quotas(self, factor: float = 1.0) -> dict[str, float]:
        """Enforce AWS's default quota of every operation the flow calls (`quotas.AWS_DEFAULT_TPS`) and the device-side
        limits (`quotas.DEVICE_DEFAULT_TPS`: CONNECTs and auto-registrations per second), each multiplied by `factor`
        (a rehearsal at 5 x the defaults runs five times faster with the same proportions). RegisterThing's own calls
        (CreateThing, AttachPolicy, AttachThingPrincipal, UpdateCertificate) count against theirs too. Returns the
        quotas applied."""
        applied = {operation: tps * factor for operation, tps in AWS_DEFAULT_TPS.items()}
        for operation, per_second in applied.items():
            self.set_quota(operation, per_second)
        for limit, tps in DEVICE_DEFAULT_TPS.items():
            applied[limit] = tps * factor
            self.state.device_quotas[limit] = TokenBucket(tps * factor)
        return applied

    def reset_counters(self) -> None:
        """Forget the calls and throttles counted so far (a rehearsal counts from when its fleet powers up)."""
        with self.state.lock:
            for counter in (self.state.calls, self.state.inner_calls, self.state.throttled, self.state.succeeded):
                counter.clear()
            self.state.device_throttled.clear()

    def inject_faults(self, operation: str, *faults: errors._Error, after: int = 0) -> None:
        """Make the next calls of `operation` fail with these errors, in order: the first `after` calls pass (a
        fault aimed at the third UpdateCertificate of a decision, say)."""
        self.state.faults.setdefault(operation, deque()).extend([None] * after + list(faults))

    def set_latency(self, operation: str, seconds: float) -> None:
        self.state.latency_s[operation] = seconds

    def subscribe(self, topic_filter: str, callback: Subscriber) -> None:
        self.state.subscribers.append((topic_filter, callback))

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        for topic_filter, callback in list(self.state.subscribers):
            if topic_matches(topic_filter, topic):
                callback(topic, payload)

    # -- a device's connect -----------------------------------------------------------------------------------------

    def connect(
        self, certificate_pem: str, chain_pem: str | Sequence[str] = (), *, server_name: str | None = ENDPOINT
    ) -> ConnectResult:
        """A device's MQTT CONNECT with this certificate (and the chain it presents), as AWS IoT handles it.
        `server_name` is the SNI the device sent (None: none, as a client connecting to an IP address sends none); a
        certificate whose CA is registered in SNI_ONLY mode is refused without it, as AWS cannot tell the account."""
        leaf = load_certificate(certificate_pem)
        presented = load_certificates("".join(chain_pem) if not isinstance(chain_pem, str) else chain_pem)
        cert_id = certificate_id(leaf)
        if not self.state.admit_device(CONNECT):
            return ConnectResult(Connect.THROTTLED, cert_id, None, "over the account's CONNECT rate")
        with self.state.lock:
            known = self.backend.certificates.get(cert_id)
            if known is not None:
                if server_name is None and getattr(known, "certificate_mode", "DEFAULT") == "SNI_ONLY":
                    return ConnectResult(Connect.CLOSED, cert_id, known.ca_certificate_id, NO_SNI)
                return self._reconnect(known.status, cert_id, known.ca_certificate_id, known.arn)
            ca = self._signing_ca(leaf, presented)
            if ca is None:
                return ConnectResult(
                    Connect.CLOSED, cert_id, None, "no ACTIVE registered CA with auto-registration signed it"
                )
            if server_name is None and getattr(ca, "certificate_mode", "DEFAULT") == "SNI_ONLY":
                return ConnectResult(Connect.CLOSED, cert_id, ca.certificate_id, NO_SNI)
            if not self.state.admit_device(AUTO_REGISTRATION):
                return ConnectResult(Connect.THROTTLED, cert_id, ca.certificate_id, "over the auto-registration rate")
            pem = certificate_pem if isinstance(certificate_pem, str) else certificate_pem.decode()
            record = self.backend.register_certificate_without_ca(pem, status="PENDING_ACTIVATION")
            record.ca_certificate_id = ca.certificate_id
            record.certificate_mode = getattr(ca, "certificate_mode", "DEFAULT")  # type: ignore[attr-defined]
            registered_at = int(time.time() * 1000)
            config = ca.registration_config or {}
        if config.get("templateBody") or config.get("templateName"):
            self._run_jitp(ca, leaf)  # JITP: AWS provisions with the CA's template, nobody is asked
        self._publish_registered(cert_id, ca.certificate_id, registered_at)
        return ConnectResult(Connect.REGISTERED, cert_id, ca.certificate_id)

    def register_pending(self, certificate_pem: str, ca_certificate_id: str) -> ConnectResult:
        """Register a certificate PENDING_ACTIVATION under a CA *without* the signature check AWS does during the
        TLS handshake, and publish its event: for rehearsing what the handler does if that check ever lets one by."""
        leaf = load_certificate(certificate_pem)
        with self.state.lock:
            record = self.backend.register_certificate_without_ca(certificate_pem, status="PENDING_ACTIVATION")
            record.ca_certificate_id = ca_certificate_id
        self._publish_registered(certificate_id(leaf), ca_certificate_id, int(time.time() * 1000))
        return ConnectResult(Connect.REGISTERED, certificate_id(leaf), ca_certificate_id)

    def load_certificates(self, ca_certificate_id: str, certificates: Iterable[tuple[str, str, datetime]]) -> list[str]:
        """Hold (PEM, status, creation date) certificates under a registered CA, as an account with a fleet holds them,
        without the HTTP round trip per certificate (a CA of 200,000 certificates loads in seconds) and without
        events (they registered long ago). Returns their ids, in the order given."""
        ca = self.backend.describe_ca_certificate(ca_certificate_id)
        ids = []
        with self.state.lock:
            for pem, status, created in certificates:
                record = FakeCertificate(pem, status, self.account_id, self.region, ca_certificate_id)
                if record.certificate_id in self.backend.certificates:
                    raise ValueError(f"certificate {record.certificate_id} is already registered")
                # moto keeps naive UTC creation dates
                record.creation_date = record.last_modified_date = created.astimezone(UTC).replace(tzinfo=None)
                record.certificate_mode = ca.certificate_mode  # type: ignore[attr-defined]
                self.backend.certificates[record.certificate_id] = record
                ids.append(record.certificate_id)
        return ids

    def _reconnect(self, status: str, cert_id: str, ca_id: str | None, arn: str) -> ConnectResult:
        if status == "PENDING_ACTIVATION" and ca_id:
            ca = self.backend.ca_certificates.get(ca_id)
            if ca is not None and ca.status == "ACTIVE":
                self._publish_registered(cert_id, ca_id, None)
                return ConnectResult(Connect.PENDING, cert_id, ca_id)
            return ConnectResult(Connect.CLOSED, cert_id, ca_id, "certificate pending and its CA is not ACTIVE")
        if status != "ACTIVE":
            return ConnectResult(Connect.CLOSED, cert_id, ca_id, f"certificate is {status}")
        if not attached_policy_names(self.backend, arn):
            return ConnectResult(Connect.CLOSED, cert_id, ca_id, "certificate has no policy attached")
        return ConnectResult(Connect.CONNECTED, cert_id, ca_id)

    def _signing_ca(self, leaf: x509.Certificate, presented: list[x509.Certificate]) -> FakeCaCertificate | None:
        """The ACTIVE, auto-registering CA that signed the leaf, directly or through the presented chain."""
        candidates = [
            (load_certificate(ca.certificate_pem), ca)
            for ca in self.backend.ca_certificates.values()
            if ca.status == "ACTIVE" and getattr(ca, "auto_registration_status", "DISABLE") == "ENABLE"
        ]
        chain = [leaf, *presented]
        for i, certificate in enumerate(chain):
            for ca_cert, record in candidates:
                if _issued_by(certificate, ca_cert):
                    return record
            if i + 1 < len(chain) and not _issued_by(certificate, chain[i + 1]):
                return None  # the presented chain is broken here
        return None

    def _run_jitp(self, ca: FakeCaCertificate, leaf: x509.Certificate) -> None:
        config = ca.registration_config
        body = config.get("templateBody")
        if not body:
            body = self.state.templates[config["templateName"]].body
        parameters = certificate_parameters(leaf)
        parameters["AWS::IoT::Certificate::CACertificateId"] = ca.certificate_id
        self.backend.register_thing(body, parameters)

    def _publish_registered(self, cert_id: str, ca_id: str, registered_at: int | None) -> None:
        self.publish(
            REGISTERED_TOPIC.format(ca_id=ca_id),
            RegistrationEvent.payload(cert_id, ca_id, self.account_id, registered_at),
        )


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def mock() -> Any:
    """moto's mock with its switch for AWS IoT certificate ids on (the SHA-256 of the DER, as AWS computes them)."""
    return mock_aws(config={"iot": {"use_valid_cert": True}})


@contextmanager
def serve(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve the embedded IoT (and every other moto service) over HTTP; yields the endpoint URL. moto's switch for AWS
    IoT certificate ids is on while it serves, as `mock()` turns it on in-process."""
    install()
    if port:  # moto's server thread would exit on a port in use and leave `start()` waiting for ever
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise OSError(exc.errno, f"cannot serve the HTTP API on {host}:{port}: {exc.strerror}") from None
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    iot_config = {**default_user_config.get("iot", {}), "use_valid_cert": True}
    with patch.dict(default_user_config, {"iot": iot_config}):
        server.start()
        try:
            bound_host, bound_port = server.get_host_and_port()
            yield f"http://{bound_host}:{bound_port}"
        finally:
            server.stop()
