"""A real device client for `jitr serve`'s MQTT endpoint (paho-mqtt, MQTT 3.1.1 over mutual TLS with a device's
certificate and key files): what the tests and the benchmark connect with."""

from __future__ import annotations

import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from jitr_tools import pki
from jitr_tools.embedded import Connect
from jitr_tools.rehearsing.reconnect import Reconnect

if TYPE_CHECKING:
    from jitr_tools.endpoint.broker import MqttEndpoint

WAIT_S = 10.0


@dataclass(frozen=True)
class Files:
    certificate: Path  # the device certificate, then (when `chain`) the CA that signed it
    key: Path


def write_device(issued: pki.Issued, folder: Path, name: str, *, chain: bool = True) -> Files:
    """A device's certificate and key files; without `chain` the certificate alone (as many devices send it)."""
    path = pki.write_issued(issued, folder, name)
    if not chain:
        path.write_text(issued.pem)
    return Files(path, folder / f"{name}.key")


@dataclass(frozen=True)
class LastWill:
    """The Will message a device gives at CONNECT, which the server publishes if the device disconnects unexpectedly."""

    topic: str
    payload: bytes = b"gone"
    retain: bool = False


@dataclass
class PahoDevice:
    """A paho-mqtt client that connects, publishes and subscribes, and says what it saw."""

    files: Files
    client_id: str
    port: int
    ca_file: Path
    host: str = "localhost"  # sends SNI; "127.0.0.1" sends none
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311
    will: LastWill | None = None
    received: list[tuple[str, bytes]] = field(default_factory=list)
    client: paho.Client | None = None
    acknowledged: set[int] = field(default_factory=set)  # message ids of QoS 1 publishes the server PUBACKed
    _codes: list[ReasonCode] = field(default_factory=list)
    _connack: threading.Event = field(default_factory=threading.Event)
    _closed: threading.Event = field(default_factory=threading.Event)

    def connect(self) -> str:
        """One attempt: "CONNACK 0", "CONNACK <code>", or "closed" when the connection ends with no CONNACK."""
        self._connack.clear()
        self._closed.clear()
        self._codes.clear()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=self.protocol)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # a defective device (1024-bit key, SHA-1) must be able to try
        context.load_verify_locations(self.ca_file)
        context.load_cert_chain(self.files.certificate, self.files.key)
        client.tls_set_context(context)
        if self.will is not None:
            client.will_set(self.will.topic, self.will.payload, qos=1, retain=self.will.retain)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        try:
            client.connect(self.host, self.port, keepalive=30)
        except OSError:
            return "closed"
        client.loop_start()
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not self._connack.is_set() and not self._closed.is_set():
            time.sleep(0.01)
        if self._connack.is_set() and self._codes and not self._codes[0].is_failure:
            self.client = client
            return "CONNACK 0"
        client.loop_stop()
        client.disconnect()
        return f"CONNACK {self._codes[0].value}" if self._codes else "closed"

    def _on_connect(self, _c: paho.Client, _u: Any, _f: Any, code: ReasonCode, _p: Any) -> None:
        self._codes.append(code)
        self._connack.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self._closed.set()

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        self.received.append((message.topic, bytes(message.payload)))

    def _on_publish(self, _c: paho.Client, _u: Any, mid: int, _code: Any, _p: Any) -> None:
        self.acknowledged.add(mid)

    @property
    def connected(self) -> bool:
        return self.client is not None and not self._closed.is_set()

    def publish(self, topic: str, payload: bytes = b"hello", *, retain: bool = False) -> int:
        """A QoS 1 publish (with the RETAIN flag when `retain`); its message id."""
        assert self.client is not None
        return int(self.client.publish(topic, payload, qos=1, retain=retain).mid)

    def subscribe(self, topic_filter: str) -> None:
        assert self.client is not None
        self.client.subscribe(topic_filter, qos=1)

    def wait_closed(self, timeout: float = WAIT_S) -> bool:
        return self._closed.wait(timeout)

    def wait_for(self, condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.02)
        return condition()

    def stop(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None


class Closed(StrEnum):
    """What an attempt that ended without CONNACK 0 means for the device's power-up, as the endpoint decided it (a
    rehearsal reads this from the account; the device itself only sees the connection closed)."""

    PENDING = "pending"  # its certificate is registered and not decided yet: it tries again
    DROPPED = "dropped"  # closed before its certificate was registered (throttled, timed out): it tries again
    REFUSED = "refused"  # it will never be accepted: it stops


def closed_as(status: str | None, last: Connect | None) -> Closed:
    """`status`: the certificate's status after the attempt (None: not registered); `last`: the endpoint's outcome for
    the latest CONNECT with it (None: none reached a decision, as when the client gave up waiting first).
    A certificate that is not registered was refused only if the endpoint closed it for good (no registered CA signed
    it, no SNI for an SNI_ONLY CA); throttled, or never decided, the attempt was dropped and the device tries again.
    A registered one is refused once REVOKED or INACTIVE; ACTIVE but closed (no policy, iot:Connect denied) is the
    deployment's mistake, which it may fix: the device tries again."""
    if status is None:
        return Closed.REFUSED if last == Connect.CLOSED else Closed.DROPPED
    return Closed.REFUSED if status in ("REVOKED", "INACTIVE") else Closed.PENDING


def endpoint_judge(endpoint: MqttEndpoint, certificate_id: str) -> Callable[[], Closed]:
    """`power_up`'s judge for a device of `endpoint`: what its account made of the certificate's last attempt."""
    iot, gate = endpoint.iot, endpoint.gate

    def judge() -> Closed:
        with iot.state.lock:
            record = iot.backend.certificates.get(certificate_id)
            status = None if record is None else str(record.status)
        return closed_as(status, gate.last_connect.get(certificate_id))

    return judge


@dataclass(frozen=True)
class PowerUp:
    outcome: str  # "connected", "refused", or "undecided" (still trying at the deadline)
    attempts: int
    dropped: int = 0  # attempts closed before its certificate was registered, which it tried again after


def power_up(
    client: PahoDevice, judge: Callable[[], Closed], backoff: Reconnect, rng: random.Random, deadline: float
) -> PowerUp:
    """A device's first power-up: connect; after each connection closed without CONNACK 0, stop if `judge()` says its
    certificate will never be accepted, else wait the backoff's delay and connect again, until `deadline`
    (`time.monotonic()`)."""
    attempts = dropped = 0
    while time.monotonic() < deadline:
        attempts += 1
        if client.connect() == "CONNACK 0":
            client.stop()
            return PowerUp("connected", attempts, dropped)
        closed = judge()
        if closed == Closed.REFUSED:
            return PowerUp("refused", attempts, dropped)
        dropped += closed == Closed.DROPPED
        time.sleep(backoff.delay(attempts, rng))
    return PowerUp("undecided", attempts, dropped)


@dataclass(frozen=True)
class Tally:
    """What a fleet's power-up came to."""

    good: int
    connected: int  # good devices connected
    refused: int  # devices that stopped, refused
    good_refused: int  # of which good ones: refused wrongly
    lost: int  # good devices still trying, not connected, at the deadline
    dropped_attempts: int  # attempts closed before the certificate was registered, which the device retried
    dropped_devices: int  # devices with at least one such attempt

    @classmethod
    def of(cls, good: list[PowerUp], bad: list[PowerUp]) -> Tally:
        return cls(
            good=len(good),
            connected=sum(1 for run in good if run.outcome == "connected"),
            refused=sum(1 for run in good + bad if run.outcome == "refused"),
            good_refused=sum(1 for run in good if run.outcome == "refused"),
            lost=sum(1 for run in good if run.outcome == "undecided"),
            dropped_attempts=sum(run.dropped for run in good + bad),
            dropped_devices=sum(1 for run in good + bad if run.dropped),
        )
