"""`jitr serve` with real device clients over mutual TLS: paho-mqtt and the AWS IoT Device SDK v2. The first connect is
dropped while the real handler decides; the reconnect after provisioning gets CONNACK 0; the device policy decides
every publish and subscribe; a defective device ends refused with the handler's reason."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from paho.mqtt.enums import MQTTProtocolVersion

from jitr.certificates import certificate_id
from jitr.provisioning import Decision
from jitr_config.model import load_config
from jitr_tools import pki
from jitr_tools.embedded import Connect
from jitr_tools.embedded.errors import ServiceUnavailableException
from jitr_tools.embedded.quotas import AUTO_REGISTRATION
from jitr_tools.embedded.state import TokenBucket
from jitr_tools.endpoint.broker import Device
from jitr_tools.endpoint.devices import Closed, Files, LastWill, PahoDevice, endpoint_judge, power_up, write_device
from jitr_tools.endpoint.serve import ServeOptions, Service
from jitr_tools.endpoint.tls import Peer
from jitr_tools.rehearsing.reconnect import Reconnect
from tests.integration.sdk_device import SdkDevice

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = str(REPO / "templates" / "jitr-device.json")
DECIDED_S = 20.0
BACKOFF = Reconnect(0.05, 1.0)  # the Device SDK v2's exponential backoff with full jitter, scaled down


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def ca(root: Path) -> pki.Issued:
    issuing, _ = pki.development_ca(root / ".dev-pki")
    return issuing


@pytest.fixture(scope="module")
def lines() -> list[str]:
    """What the service said, in order (connects, decisions, refusals)."""
    return []


@pytest.fixture(scope="module")
def service(root: Path, ca: pki.Issued, lines: list[str]) -> Iterator[Service]:
    config = load_config({"caCertificates": [".dev-pki/issuing-ca.pem"], "template": TEMPLATE}, root)
    with Service(config, ServeOptions(folder=root / "serve", mqtt_port=0, api_port=0), say=lines.append) as running:
        yield running


def api_of(service: Service) -> Any:
    """boto3 against `jitr serve`'s HTTP API, as a device team's scripts would use it."""
    return boto3.client(
        "iot",
        endpoint_url=service.api_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def api(service: Service) -> Any:
    return api_of(service)


def status(api: Any, cert_id: str) -> str | None:
    try:
        return str(api.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise


def wait_status(api: Any, cert_id: str, wanted: str) -> str | None:
    deadline = time.monotonic() + DECIDED_S
    while time.monotonic() < deadline and status(api, cert_id) != wanted:
        time.sleep(0.05)
    return status(api, cert_id)


def paho(service: Service, files: Files, client_id: str, host: str = "localhost") -> PahoDevice:
    return PahoDevice(files, client_id, service.endpoint.port, service.credentials.ca_file, host=host)


def new_device(ca: pki.Issued, root: Path, name: str, **kwargs: Any) -> tuple[Files, str]:
    issued = pki.make_device(ca, name, **kwargs)
    return write_device(issued, root / "devices", name), certificate_id(issued.certificate)


def onboarded(service: Service, api: Any, ca: pki.Issued, root: Path, name: str) -> tuple[PahoDevice, str]:
    """A device whose first connect was dropped and whose certificate the handler then made ACTIVE."""
    files, cert_id = new_device(ca, root, name)
    device = paho(service, files, name)
    assert device.connect() == "closed"
    assert wait_status(api, cert_id, "ACTIVE") == "ACTIVE"
    return device, cert_id


# -- a good device, end to end -----------------------------------------------------------------------------------------


def test_paho_first_connect_is_dropped_the_handler_provisions_and_the_reconnect_is_accepted(
    service: Service, lines: list[str], api: Any, ca: pki.Issued, root: Path
) -> None:
    files, cert_id = new_device(ca, root, "sensor-00101")
    device = paho(service, files, "sensor-00101")

    assert device.connect() == "closed"  # no CONNACK: AWS IoT registers the certificate and drops the connection
    assert status(api, cert_id) in ("PENDING_ACTIVATION", "ACTIVE")
    assert wait_status(api, cert_id, "ACTIVE") == "ACTIVE"
    assert decided(service, cert_id).thing_name == "sensor-00101"

    assert device.connect() == "CONNACK 0"
    try:
        device.subscribe("things/sensor-00101/commands")
        time.sleep(0.2)
        device.publish("things/sensor-00101/commands", b"on")
        assert device.wait_for(lambda: ("things/sensor-00101/commands", b"on") in device.received)
        assert device.connected

        mine = device.publish("things/sensor-00101/commands", b"again")
        assert device.wait_for(lambda: mine in device.acknowledged)
        theirs = device.publish("things/sensor-00102/commands", b"not mine")  # another thing's topic
        assert device.wait_closed(), "a publish the policy does not allow disconnects the client"
        assert theirs not in device.acknowledged, "and is never acknowledged (no PUBACK), as on AWS IoT"
    finally:
        device.stop()
    assert any("PUBLISH sensor-00101 things/sensor-00102/commands: DENIED" in line for line in lines)


def test_subscribing_to_another_things_topic_disconnects(
    service: Service, api: Any, ca: pki.Issued, root: Path
) -> None:
    device, _ = onboarded(service, api, ca, root, "sensor-00103")
    assert device.connect() == "CONNACK 0"
    try:
        device.subscribe("things/+/commands")  # every thing's commands: the policy allows its own only
        assert device.wait_closed()
    finally:
        device.stop()


def test_device_sdk_v2_sees_the_hangup_then_connects_publishes_and_subscribes(
    service: Service, api: Any, ca: pki.Issued, root: Path
) -> None:
    files, cert_id = new_device(ca, root, "sensor-00201")
    device = SdkDevice(files, "sensor-00201", service.endpoint.port, service.credentials.ca_file)

    assert device.connect() == "AWS_ERROR_MQTT_UNEXPECTED_HANGUP"  # what the SDK reports on AWS IoT too
    assert wait_status(api, cert_id, "ACTIVE") == "ACTIVE"

    assert device.connect() == "CONNACK 0"
    try:
        device.subscribe("things/sensor-00201/commands").result(timeout=10)
        device.publish("things/sensor-00201/commands", b"on").result(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not device.received:
            time.sleep(0.02)
        assert device.received == [("things/sensor-00201/commands", b"on")]

        device.subscribe("things/sensor-00202/commands")  # another thing's: AWS IoT disconnects
        assert device.interrupted.wait(10)
    finally:
        device.stop()


def test_a_message_is_delivered_only_to_subscribers_whose_policy_allows_receive(
    service: Service, api: Any, ca: pki.Issued, root: Path
) -> None:
    listener, listener_id = onboarded(service, api, ca, root, "sensor-00111")
    speaker, speaker_id = onboarded(service, api, ca, root, "sensor-00112")
    arn = "arn:aws:iot:us-east-1:123456789012"

    def policy(name: str, *statements: tuple[str, str]) -> None:
        document = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": a, "Resource": r} for a, r in statements],
        }
        api.create_policy(policyName=name, policyDocument=json.dumps(document))

    policy("shared-subscribe", ("iot:Subscribe", f"{arn}:topicfilter/shared/*"))
    policy("shared-publish", ("iot:Publish", f"{arn}:topic/shared/*"))
    policy("shared-receive", ("iot:Receive", f"{arn}:topic/shared/*"))
    certificate_arn = {
        cert_id: api.describe_certificate(certificateId=cert_id)["certificateDescription"]["certificateArn"]
        for cert_id in (listener_id, speaker_id)
    }
    api.attach_policy(policyName="shared-subscribe", target=certificate_arn[listener_id])
    api.attach_policy(policyName="shared-publish", target=certificate_arn[speaker_id])
    assert listener.connect() == "CONNACK 0"
    assert speaker.connect() == "CONNACK 0"
    try:
        listener.subscribe("shared/news")  # allowed to subscribe, not (yet) to receive
        time.sleep(0.3)
        speaker.publish("shared/news", b"first")
        assert not listener.wait_for(lambda: bool(listener.received), timeout=1.0)
        assert listener.connected, "a message it may not receive is not delivered; the connection stays"

        api.attach_policy(policyName="shared-receive", target=certificate_arn[listener_id])  # evaluated per message
        speaker.publish("shared/news", b"second")
        assert listener.wait_for(lambda: listener.received == [("shared/news", b"second")])
    finally:
        listener.stop()
        speaker.stop()


# -- what AWS IoT checks besides each PUBLISH and SUBSCRIBE ------------------------------------------------------------

ACCOUNT_ARN = "arn:aws:iot:us-east-1:123456789012"


def allow(api: Any, cert_id: str, name: str, *statements: tuple[str, str]) -> None:
    """A policy allowing each (action, resource under the account's ARN), attached to the certificate."""
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": a, "Resource": f"{ACCOUNT_ARN}:{r}"} for a, r in statements],
    }
    api.create_policy(policyName=name, policyDocument=json.dumps(document))
    target = api.describe_certificate(certificateId=cert_id)["certificateDescription"]["certificateArn"]
    api.attach_policy(policyName=name, target=target)


def test_a_will_on_a_topic_the_policy_does_not_let_the_device_publish_to_refuses_the_connect(
    service: Service, lines: list[str], api: Any, ca: pki.Issued, root: Path
) -> None:
    device, _ = onboarded(service, api, ca, root, "sensor-00121")

    device.will = LastWill("things/sensor-00122/commands", b"reboot")  # another thing's command topic
    assert device.connect() == "closed"
    assert any(
        "sensor-00121" in line and "Will message: iot:Publish on 'things/sensor-00122/commands' DENIED" in line
        for line in lines
    )

    device.will = LastWill("things/sensor-00121/status", b"gone", retain=True)  # its own, retained: iot:RetainPublish
    assert device.connect() == "closed"
    assert any("Will message: iot:RetainPublish on 'things/sensor-00121/status' DENIED" in line for line in lines)

    device.will = LastWill("things/sensor-00121/status", b"gone")  # its own topic, not retained
    assert device.connect() == "CONNACK 0"
    device.stop()


def test_a_retained_publish_without_iot_retain_publish_disconnects_and_is_not_retained(
    service: Service, lines: list[str], api: Any, ca: pki.Issued, root: Path
) -> None:
    device, _ = onboarded(service, api, ca, root, "sensor-00131")
    assert device.connect() == "CONNACK 0"
    try:  # the device policy allows iot:Publish on its topics, not iot:RetainPublish
        retained = device.publish("things/sensor-00131/state", b"on", retain=True)
        assert device.wait_closed(), "a RETAIN publish without iot:RetainPublish disconnects, as a refused publish does"
        assert retained not in device.acknowledged
    finally:
        device.stop()
    assert any("PUBLISH sensor-00131 things/sensor-00131/state: iot:RetainPublish DENIED" in line for line in lines)

    assert device.connect() == "CONNACK 0"
    try:
        device.subscribe("things/sensor-00131/state")
        assert not device.wait_for(lambda: bool(device.received), timeout=1.0), "nothing was retained"
    finally:
        device.stop()


def test_a_retained_message_is_sent_at_subscribe_only_to_a_subscriber_its_policy_lets_receive_it(
    service: Service, api: Any, ca: pki.Issued, root: Path
) -> None:
    keeper, keeper_id = onboarded(service, api, ca, root, "sensor-00141")
    listener, listener_id = onboarded(service, api, ca, root, "sensor-00142")
    bystander, bystander_id = onboarded(service, api, ca, root, "sensor-00143")
    allow(
        api, keeper_id, "retain-keeper", ("iot:Publish", "topic/retained/*"), ("iot:RetainPublish", "topic/retained/*")
    )
    allow(api, listener_id, "retain-listener", ("iot:Subscribe", "topicfilter/retained/*"))
    allow(api, bystander_id, "retain-bystander", ("iot:Receive", "topic/retained/*"))
    assert keeper.connect() == "CONNACK 0"
    try:
        kept = keeper.publish("retained/state", b"42", retain=True)
        assert keeper.wait_for(lambda: kept in keeper.acknowledged)
    finally:
        keeper.stop()

    assert listener.connect() == "CONNACK 0"
    try:
        listener.subscribe("retained/state")  # allowed to subscribe, not to receive
        assert not listener.wait_for(lambda: bool(listener.received), timeout=1.0)
        assert listener.connected, "a retained message it may not receive is not sent; the connection stays"

        assert bystander.connect() == "CONNACK 0"  # may receive, but subscribed to nothing: sent nothing
        try:
            assert not bystander.wait_for(lambda: bool(bystander.received), timeout=1.0)
        finally:
            bystander.stop()

        allow(api, listener_id, "retain-listener-receive", ("iot:Receive", "topic/retained/*"))
        listener.subscribe("retained/+")
        assert listener.wait_for(lambda: listener.received == [("retained/state", b"42")])
    finally:
        listener.stop()


@pytest.mark.parametrize("status", ["REVOKED", "INACTIVE"])
def test_a_connected_device_whose_certificate_leaves_active_is_disconnected(
    service: Service, lines: list[str], api: Any, ca: pki.Issued, root: Path, status: str
) -> None:
    name = f"sensor-0015{'RI'.index(status[0])}"
    device, cert_id = onboarded(service, api, ca, root, name)
    assert device.connect() == "CONNACK 0"
    try:
        device.subscribe(f"things/{name}/commands")  # then idle: it sends nothing but its keep-alive pings
        time.sleep(0.3)
        api.update_certificate(certificateId=cert_id, newStatus=status)
        assert device.wait_closed(), "AWS IoT disconnects it (within a few minutes); jitr serve within SWEEP_S"
    finally:
        device.stop()
    assert any(f"CONNECTED {name} certificate {cert_id[:12]}: certificate is {status}" in line for line in lines)
    assert device.connect() == "closed"


def test_a_publish_sent_after_the_certificate_is_revoked_is_refused(
    service: Service, api: Any, ca: pki.Issued, root: Path
) -> None:
    device, cert_id = onboarded(service, api, ca, root, "sensor-00161")
    assert device.connect() == "CONNACK 0"
    try:
        api.update_certificate(certificateId=cert_id, newStatus="REVOKED")
        late = device.publish("things/sensor-00161/telemetry", b"still here")
        assert device.wait_closed()
        assert late not in device.acknowledged
    finally:
        device.stop()


def test_a_connected_device_whose_policy_no_longer_allows_connect_is_disconnected(
    service: Service, lines: list[str], api: Any, ca: pki.Issued, root: Path
) -> None:
    device, cert_id = onboarded(service, api, ca, root, "sensor-00171")
    arn = api.describe_certificate(certificateId=cert_id)["certificateDescription"]["certificateArn"]
    assert device.connect() == "CONNACK 0"
    try:
        api.detach_policy(policyName="jitr-device", target=arn)
        assert device.wait_closed()
    finally:
        device.stop()
    assert any("CONNECTED sensor-00171" in line and "iot:Connect as 'sensor-00171' DENIED" in line for line in lines)


# -- a defective device ------------------------------------------------------------------------------------------------


# Refused at connect, never registered: no registered CA signed it, or (SHA-1) signed with an algorithm AWS IoT does
# not take, so the signature cannot be checked against the CA. Every other defect reaches the handler.
REFUSED_AT_CONNECT = ("wrong-issuer", "sha1")


@pytest.mark.parametrize("defect", [d for d in pki.DEFECTS if d not in REFUSED_AT_CONNECT])
def test_a_defective_device_ends_refused_with_the_handlers_reason(
    service: Service, api: Any, ca: pki.Issued, root: Path, defect: str
) -> None:
    name = f"defect-{defect}"
    kind = pki.DEFECTS[defect]
    issued = kind.make(ca, name)
    files = write_device(issued, root / "devices", name)
    cert_id = certificate_id(issued.certificate)
    device = paho(service, files, name)

    assert device.connect() == "closed"  # the TLS handshake accepts it, as AWS IoT's does: the handler judges it
    assert wait_status(api, cert_id, "REVOKED") == "REVOKED"
    assert decided(service, cert_id).reason == kind.reason
    assert device.connect() == "closed"


def said(lines: list[str], start: str) -> str | None:
    """The first line the service said that starts with `start`, waiting for it as long as a decision takes."""
    deadline = time.monotonic() + DECIDED_S
    while time.monotonic() < deadline:
        found = next((line for line in list(lines) if line.startswith(start)), None)
        if found:
            return found
        time.sleep(0.05)
    return None


def test_each_decision_event_is_printed_as_a_subscriber_to_the_bus_receives_it(
    service: Service, lines: list[str], api: Any, ca: pki.Issued, root: Path
) -> None:
    device, cert_id = onboarded(service, api, ca, root, "evented-00001")
    device.stop()
    provisioned = said(lines, f"EVENT Device Provisioned certificate {cert_id[:12]} PROVISIONED")
    assert provisioned is not None
    assert "thing evented-00001" in provisioned
    kind = pki.DEFECTS["weak-key"]
    issued = kind.make(ca, "defect-events")
    weak = paho(service, write_device(issued, root / "devices", "defect-events"), "defect-events")
    assert weak.connect() == "closed"
    weak_id = certificate_id(issued.certificate)
    assert said(lines, f"EVENT Device Rejected certificate {weak_id[:12]} REJECTED {kind.reason}") is not None


def test_a_certificate_malformed_inside_gets_the_handlers_decision_at_connect(
    service: Service, api: Any, ca: pki.Issued
) -> None:
    """A duplicated extension: OpenSSL-based clients refuse to send such a certificate, but the endpoint's handshake
    takes any (another device TLS stack may send it), and cryptography decodes it lazily. It reaches the gate as a
    handshake would hand it over, is registered, and the handler refuses it."""
    sound = pki.make_device(ca, "hostile-00001")
    parts = pki.der_children(sound.certificate.tbs_certificate_bytes)
    extensions = pki.der_children(pki.der_children(parts[-1])[0])
    parts[-1] = pki.der_element(0xA3, pki.der_element(0x30, b"".join([*extensions, extensions[0]])))
    hostile = x509.load_der_x509_certificate(pki.sign_tbs(pki.der_element(0x30, b"".join(parts)), ca.key))
    peer = Peer(hostile, (ca.certificate,), "localhost", ("127.0.0.1", 1))

    decision = service.endpoint.gate.connect(Device(peer, stream=None), "hostile-00001")  # the stream is unused
    assert decision.outcome == Connect.REGISTERED
    cert_id = certificate_id(hostile)
    assert wait_status(api, cert_id, "REVOKED") == "REVOKED"
    assert decided(service, cert_id).reason == "MALFORMED_CERTIFICATE"


# -- AWS IoT's connect semantics ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("defect", REFUSED_AT_CONNECT)
def test_a_certificate_no_registered_ca_verifiably_signed_is_closed_and_not_registered(
    service: Service, api: Any, ca: pki.Issued, root: Path, defect: str
) -> None:
    name = f"refused-{defect}"
    issued = pki.DEFECTS[defect].make(ca, name)  # the CA's name, another key; or a SHA-1 signature
    files = write_device(issued, root / "devices", name)
    assert paho(service, files, name).connect() == "closed"
    assert status(api, certificate_id(issued.certificate)) is None


def test_without_sni_an_sni_only_cas_device_is_closed_and_not_registered(
    service: Service, lines: list[str], api: Any, ca: pki.Issued, root: Path
) -> None:
    files, cert_id = new_device(ca, root, "sensor-00301")
    assert paho(service, files, "sensor-00301", host="127.0.0.1").connect() == "closed"  # an IP address: no SNI
    assert status(api, cert_id) is None
    assert any("no SNI" in line for line in lines)

    assert paho(service, files, "sensor-00301").connect() == "closed"  # with SNI: registered, then dropped
    assert wait_status(api, cert_id, "ACTIVE") == "ACTIVE"


def test_the_ca_is_found_by_signature_when_the_device_sends_no_chain(
    service: Service, api: Any, ca: pki.Issued, root: Path
) -> None:
    issued = pki.make_device(ca, "sensor-00401")
    files = write_device(issued, root / "devices", "sensor-00401", chain=False)
    assert paho(service, files, "sensor-00401").connect() == "closed"
    assert wait_status(api, certificate_id(issued.certificate), "ACTIVE") == "ACTIVE"


def test_a_pending_certificate_publishes_its_event_again_and_is_closed(
    service: Service, lines: list[str], api: Any, ca: pki.Issued, root: Path
) -> None:
    files, cert_id = new_device(ca, root, "sensor-00501")
    device = paho(service, files, "sensor-00501")
    # AWS IoT is unavailable to the handler: it retries, and the certificate stays pending meanwhile.
    service.iot.inject_faults("DescribeCertificate", *(ServiceUnavailableException("injected") for _ in range(10_000)))
    try:
        assert device.connect() == "closed"
        assert device.connect() == "closed"
        assert service.iot.backend.certificates[cert_id].status == "PENDING_ACTIVATION"  # (the API is down too)
    finally:
        service.iot.state.faults.clear()
    about = [line for line in lines if cert_id[:12] in line]
    assert any("registered PENDING_ACTIVATION, event published" in line for line in about)
    assert any("still PENDING_ACTIVATION, event published again" in line for line in about)
    assert device.connect() == "closed"  # its event again: now the handler can decide
    assert wait_status(api, cert_id, "ACTIVE") == "ACTIVE"


def test_inactive_no_policy_and_a_client_id_the_policy_refuses_are_closed(
    service: Service, lines: list[str], api: Any, ca: pki.Issued, root: Path
) -> None:
    device, cert_id = onboarded(service, api, ca, root, "sensor-00601")
    files = device.files
    arn = api.describe_certificate(certificateId=cert_id)["certificateDescription"]["certificateArn"]

    assert paho(service, files, "sensor-99999").connect() == "closed"  # iot:Connect only as its own thing
    assert any("iot:Connect as 'sensor-99999' DENIED" in line for line in lines)

    api.update_certificate(certificateId=cert_id, newStatus="INACTIVE")
    assert device.connect() == "closed"
    api.update_certificate(certificateId=cert_id, newStatus="ACTIVE")
    assert device.connect() == "CONNACK 0"
    device.stop()

    api.detach_policy(policyName="jitr-device", target=arn)
    assert device.connect() == "closed"
    assert any("no policy attached" in line for line in lines)


# -- what is not a device ----------------------------------------------------------------------------------------------


def _until_closed(sock: socket.socket) -> None:
    """Read until the server ends the connection (EOF, a reset, or a TLS error); fail if it stays open."""
    sock.settimeout(HOSTILE_WAIT_S)
    while True:
        try:
            if not sock.recv(4096):
                return
        except (ConnectionError, ssl.SSLError):
            return
        except TimeoutError:
            pytest.fail("the endpoint kept the connection open")


HOSTILE_WAIT_S = 15.0


def test_what_is_not_a_device_is_closed_and_the_endpoint_keeps_serving(
    service: Service, api: Any, ca: pki.Issued, root: Path
) -> None:
    port = service.endpoint.port
    with socket.create_connection(("localhost", port)) as raw:  # not TLS at all
        raw.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        _until_closed(raw)

    anonymous = ssl.create_default_context(cafile=service.credentials.ca_file)  # TLS without a client certificate
    with (
        socket.create_connection(("localhost", port)) as raw,
        anonymous.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            tls.sendall(b"\x10\x00")
        _until_closed(tls)

    files, cert_id = new_device(ca, root, "sensor-00801")
    device_context = ssl.create_default_context(cafile=service.credentials.ca_file)
    device_context.load_cert_chain(files.certificate, files.key)
    with (
        socket.create_connection(("localhost", port)) as raw,
        device_context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"\x30\x05hello")  # a PUBLISH before any CONNECT
        _until_closed(tls)
    assert status(api, cert_id) is None  # nothing registered for a connection that never sent CONNECT

    assert paho(service, files, "sensor-00801").connect() == "closed"  # and the endpoint still serves devices
    assert wait_status(api, cert_id, "ACTIVE") == "ACTIVE"


def test_an_mqtt5_client_is_told_the_protocol_version_is_not_spoken(
    service: Service, lines: list[str], api: Any, ca: pki.Issued, root: Path
) -> None:
    files, cert_id = new_device(ca, root, "sensor-00901")
    device = paho(service, files, "sensor-00901")
    device.protocol = MQTTProtocolVersion.MQTTv5
    assert device.connect() in ("CONNACK 1", "CONNACK 132")  # paho reports MQTT 3.1.1's code 1 as 5's 0x84
    assert status(api, cert_id) is None
    assert any("MQTT protocol level 5" in line and "MQTT 3.1.1" in line for line in lines)


# -- a fleet at once ---------------------------------------------------------------------------------------------------


def test_a_fleet_connecting_at_once_ends_with_every_good_device_connected_and_every_bad_one_refused(
    service: Service, api: Any, ca: pki.Issued, root: Path
) -> None:
    fleet = pki.make_fleet(ca, 36, invalid_fraction=0.25, prefix="fleet-", seed=14)
    outcome: dict[str, str] = {}

    def run(device: pki.FleetDevice, seed: int) -> None:
        files = write_device(device.issued, root / "fleet", device.name)
        cert_id = certificate_id(device.issued.certificate)

        def judge() -> Closed:  # never registered (no registered CA signed it), or revoked by the handler
            refused = device.defect is not None and status(api, cert_id) in (None, "REVOKED")
            return Closed.REFUSED if refused else Closed.PENDING

        seen = power_up(
            paho(service, files, device.name), judge, BACKOFF, random.Random(seed), time.monotonic() + 60
        ).outcome
        decision = service.decisions.get(cert_id)
        outcome[device.name] = f"refused {decision.reason if decision else None}" if seen == "refused" else seen

    threads = [threading.Thread(target=run, args=(device, index)) for index, device in enumerate(fleet)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)

    def expected(device: pki.FleetDevice) -> str:
        if device.defect is None:
            return "connected"
        return f"refused {None if device.defect.name in REFUSED_AT_CONNECT else device.expected_reason}"

    expected_outcome = {d.name: expected(d) for d in fleet}
    assert outcome == expected_outcome
    assert sum(1 for d in fleet if d.defect) >= 8


def test_a_device_whose_first_attempts_are_dropped_before_registration_tries_again_and_connects(
    service: Service, ca: pki.Issued, root: Path
) -> None:
    files, cert_id = new_device(ca, root, "sensor-01001")
    bucket = TokenBucket(1.0, burst=1.0)
    assert bucket.take()  # emptied: the next auto-registration waits about a second; until then, closed unregistered
    service.iot.state.device_quotas[AUTO_REGISTRATION] = bucket
    try:
        judge = endpoint_judge(service.endpoint, cert_id)
        run = power_up(paho(service, files, "sensor-01001"), judge, BACKOFF, random.Random(7), time.monotonic() + 30)
    finally:
        service.iot.state.device_quotas.pop(AUTO_REGISTRATION, None)
    assert run.outcome == "connected", "a dropped attempt is tried again, not counted as refused"
    assert run.dropped >= 1


# -- the command -------------------------------------------------------------------------------------------------------


def test_jitr_serve_runs_until_ctrl_c_and_a_device_onboards_through_it(tmp_path: Path) -> None:
    jitr = str(Path(sys.executable).with_name("jitr"))
    subprocess.run([jitr, "pki", "devices", "--count", "1"], cwd=tmp_path, check=True, capture_output=True)
    process, banner = start(jitr, tmp_path)
    assert process.stdout is not None
    output = [banner]
    try:
        port = port_of(banner)
        ca_file = tmp_path / "state" / "server-ca.pem"
        assert str(ca_file) in banner or "state/server-ca.pem" in banner
        devices = tmp_path / ".dev-pki" / "devices"
        files = Files(devices / "sensor-00001.pem", devices / "sensor-00001.key")
        device = PahoDevice(files, "sensor-00001", port, ca_file)

        assert device.connect() == "closed"
        for line in process.stdout:
            output.append(line)
            if line.startswith("HANDLER"):
                break
        assert "PROVISIONED as thing sensor-00001" in output[-1]
        assert device.connect() == "CONNACK 0"
        device.stop()
    finally:
        rest = stop(process)
    assert process.returncode == 0, "".join(output) + rest
    assert "jitr serve: stopping" in rest
    assert "jitr serve: decided 1 certificate this run (PROVISIONED 1); decision events 1" in rest
    # the decision's event, as a subscriber to the bus received it
    assert re.search(r"^EVENT Device Provisioned certificate \w{12} PROVISIONED", "".join(output) + rest, re.M)
    assert "Traceback" not in "".join(output) + rest
    assert (tmp_path / "state" / "account.pickle").stat().st_mode & 0o777 == 0o600

    # --state kept the account: the device, provisioned in the first run, connects at once in the second
    process, banner = start(jitr, tmp_path)
    try:
        assert "restored from state" in banner
        port = port_of(banner)
        device = PahoDevice(files, "sensor-00001", port, ca_file)
        assert device.connect() == "CONNACK 0"
        device.stop()
    finally:
        stop(process)
    assert process.returncode == 0


def start(jitr: str, cwd: Path) -> tuple[subprocess.Popen[str], str]:
    """`jitr serve` on free ports, keeping its account in cwd/state; returns it once its banner is out."""
    process = subprocess.Popen(
        [jitr, "serve", "--port", "0", "--api-port", "0", "--crl-port", "0", "--state", "state"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    banner = []
    for line in process.stdout:
        banner.append(line)
        if line.startswith("Ctrl-C stops it"):
            break
    return process, "".join(banner)


def port_of(banner: str) -> int:
    found = re.search(r"localhost:(\d+)", banner)
    assert found, banner
    return int(found.group(1))


def stop(process: subprocess.Popen[str]) -> str:
    """Ctrl-C, and what it printed after (read through the stream, which may hold lines read ahead already: a
    `communicate` would read the pipe past them). Killed if it has not stopped within a minute."""
    assert process.stdout is not None
    process.send_signal(signal.SIGINT)
    killer = threading.Timer(60, process.kill)
    killer.start()
    try:
        rest = process.stdout.read()
    finally:
        killer.cancel()
    process.wait()
    return rest


def decided(service: Service, certificate_id: str) -> Decision:
    decision = service.decided(certificate_id)
    assert decision is not None, f"no decision for {certificate_id}"
    return decision
