"""The AWS IoT Device SDK v2 for Python as a device client of `jitr serve`."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from awscrt import mqtt
from awsiot import mqtt_connection_builder

from jitr_tools.endpoint.devices import WAIT_S, Files


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
