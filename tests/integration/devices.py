"""Real device clients for `jitr serve`'s MQTT endpoint: paho-mqtt and the AWS IoT Device SDK v2 (awscrt), over
mutual TLS with a device's certificate and key files."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from awscrt import mqtt
from awsiot import mqtt_connection_builder

from jitr_tools import pki

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


@dataclass
class PahoDevice:
    """A paho-mqtt client (MQTT 3.1.1) that connects, publishes and subscribes, and says what it saw."""

    files: Files
    client_id: str
    port: int
    ca_file: Path
    host: str = "localhost"  # sends SNI; "127.0.0.1" sends none
    protocol: int = paho.MQTTv311
    received: list[tuple[str, bytes]] = field(default_factory=list)
    client: paho.Client | None = None
    _connack: threading.Event = field(default_factory=threading.Event)
    _closed: threading.Event = field(default_factory=threading.Event)
    _subacks: list[Any] = field(default_factory=list)
    acknowledged: set[int] = field(default_factory=set)  # message ids of QoS 1 publishes the server PUBACKed

    def connect(self) -> str:
        """One attempt: "CONNACK 0", "CONNACK <code>", or "closed" when the connection ends with no CONNACK."""
        self._connack.clear()
        self._closed.clear()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=self.protocol)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # a defective device (1024-bit key, SHA-1) must be able to try
        context.load_verify_locations(self.ca_file)
        context.load_cert_chain(self.files.certificate, self.files.key)
        client.tls_set_context(context)
        codes: list[Any] = []
        client.on_connect = lambda _c, _u, _f, code, _p: (codes.append(code), self._connack.set())
        client.on_disconnect = lambda *_args: self._closed.set()
        client.on_message = lambda _c, _u, message: self.received.append((message.topic, message.payload))
        client.on_subscribe = lambda _c, _u, _mid, codes_, _p: self._subacks.append(codes_)
        client.on_publish = lambda _c, _u, mid, _code, _p: self.acknowledged.add(mid)
        try:
            client.connect(self.host, self.port, keepalive=30)
        except OSError:
            return "closed"
        client.loop_start()
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and not self._connack.is_set() and not self._closed.is_set():
            time.sleep(0.01)
        if self._connack.is_set() and codes and not codes[0].is_failure:
            self.client = client
            return "CONNACK 0"
        client.loop_stop()
        client.disconnect()
        return f"CONNACK {codes[0].value}" if codes else "closed"

    @property
    def connected(self) -> bool:
        return self.client is not None and not self._closed.is_set()

    def publish(self, topic: str, payload: bytes = b"hello") -> int:
        """A QoS 1 publish; its message id."""
        assert self.client is not None
        return int(self.client.publish(topic, payload, qos=1).mid)

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


class SdkDevice:
    """The AWS IoT Device SDK v2 for Python's MQTT 3.1.1 connection, as its samples build it."""

    def __init__(self, files: Files, client_id: str, port: int, ca_file: Path) -> None:
        self.interrupted = threading.Event()
        self.received: list[tuple[str, bytes]] = []
        self.connection = mqtt_connection_builder.mtls_from_path(
            endpoint="localhost",
            port=port,
            cert_filepath=str(files.certificate),
            pri_key_filepath=str(files.key),
            ca_filepath=str(ca_file),
            client_id=client_id,
            clean_session=False,
            keep_alive_secs=30,
            on_connection_interrupted=lambda **_kwargs: self.interrupted.set(),
        )

    def connect(self) -> str:
        """ "CONNACK 0", or the SDK's error name (AWS_ERROR_MQTT_UNEXPECTED_HANGUP for a connection closed before
        its CONNACK, as AWS IoT closes a first connect)."""
        try:
            self.connection.connect().result(timeout=WAIT_S)
        except Exception as exc:
            return str(getattr(exc, "name", type(exc).__name__))
        return "CONNACK 0"

    def subscribe(self, topic_filter: str) -> Any:
        future, _ = self.connection.subscribe(
            topic=topic_filter,
            qos=mqtt.QoS.AT_LEAST_ONCE,
            callback=lambda topic, payload, **_kwargs: self.received.append((topic, payload)),
        )
        return future

    def publish(self, topic: str, payload: bytes = b"hello") -> Any:
        future, _ = self.connection.publish(topic=topic, payload=payload, qos=mqtt.QoS.AT_LEAST_ONCE)
        return future

    def stop(self) -> None:
        with contextlib.suppress(Exception):  # closed by the server already
            self.connection.disconnect().result(timeout=WAIT_S)
