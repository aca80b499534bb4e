"""`jitr serve`'s MQTT endpoint: the embedded AWS IoT as devices meet it, over mutual TLS.

The MQTT protocol is amqtt's broker (MQTT 3.1.1), given each connection through its "external" listener once
`tls.TlsStream` has done the handshake. What AWS IoT decides is ours, in one plugin (`AwsIoTRules`):

- at CONNECT, `EmbeddedIoT.connect` with the certificate, chain and SNI the device presented: a first connect registers
  the certificate PENDING_ACTIVATION and publishes its event, a pending one publishes it again, and both are dropped
  without a CONNACK, as is any refused one; an ACTIVE certificate then needs a policy allowing `iot:Connect` for its
  client id (`authorization.evaluate`, the evaluator `jitr policy test` and TestAuthorization use);
- a CONNECT with a Will message needs `iot:Publish` on the Will's topic (and `iot:RetainPublish` for a retained Will),
  else it is dropped as a refused `iot:Connect` is;
- each PUBLISH and SUBSCRIBE is evaluated the same way (a PUBLISH with RETAIN needs `iot:RetainPublish` too), and one
  the policy does not allow drops the connection (AWS IoT's AUTH_ERROR disconnect); a message a subscriber may not
  `iot:Receive` is not delivered to it, retained messages sent at SUBSCRIBE included;
- a connected device stays connected only while its certificate is ACTIVE and its policy allows `iot:Connect` for its
  client id: checked at every packet it sends and every `SWEEP_S` seconds (AWS IoT disconnects it "within a few
  minutes" of its certificate leaving ACTIVE).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError, CodecError, MQTTError, NoDataError
from amqtt.mqtt.connack import UNACCEPTABLE_PROTOCOL_VERSION, ConnackPacket
from amqtt.mqtt.connect import ConnectPacket, ConnectVariableHeader
from amqtt.mqtt.packet import CONNECT, MQTTFixedHeader, MQTTPacket
from amqtt.mqtt.publish import PublishPacket
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session
from OpenSSL import SSL

from jitr.certificates import BadCertificate, certificate_id, certificate_parameters
from jitr_tools.embedded import Connect, ConnectResult, EmbeddedIoT, topic_matches
from jitr_tools.embedded.lookups import connection_of, policies_of
from jitr_tools.endpoint.tls import Peer, ServerCredentials, TlsClosed, TlsStream, server_context
from jitr_tools.iot.authorization import Connection, Verdict, evaluate, resource_arn

Report = Callable[[str], None]
HANDSHAKE_TIMEOUT_S = 10.0
SWEEP_S = 1.0  # how often every connected device's certificate status and iot:Connect are checked again
MQTT_3_1_1 = 4  # the CONNECT's protocol level
MQTT5_HINT = (
    "CONNACK 1 (unacceptable protocol version): jitr serve speaks MQTT 3.1.1; connect with the Device SDK's MQTT 3.1.1"
    " client (mqtt_connection_builder) or paho's MQTTv311"
)
_ACTIONS = {Action.PUBLISH: "iot:Publish", Action.SUBSCRIBE: "iot:Subscribe", Action.RECEIVE: "iot:Receive"}
_DISCONNECTING = (Action.PUBLISH, Action.SUBSCRIBE)
_RESOURCE_ACTION = {"iot:RetainPublish": "iot:Publish"}  # an action named after another's resource kind (topic/)


@dataclass(frozen=True)
class Will:
    """The Will message of a CONNECT: what the broker publishes for the device if its connection ends unexpectedly."""

    topic: str
    retain: bool


@dataclass
class Device:
    """One device connection: what it presented, and what AWS IoT made of it."""

    peer: Peer
    stream: TlsStream
    client_id: str = ""
    certificate_id: str = ""
    fields: dict[str, str] | None = None  # the certificate's subject fields, decoded once; None: undecodable


@dataclass
class Gate:
    """AWS IoT's decisions for the devices connected to one endpoint."""

    iot: EmbeddedIoT
    report: Report
    devices: dict[tuple[str, int], Device] = field(default_factory=dict)
    last_connect: dict[str, Connect] = field(default_factory=dict)  # certificate id -> its latest CONNECT's outcome

    def device(self, session: Session | None) -> Device | None:
        if session is None or session.remote_address is None or session.remote_port is None:
            return None
        return self.devices.get((session.remote_address, session.remote_port))

    def connect(self, device: Device, client_id: str, will: Will | None = None) -> ConnectResult:
        """MQTT CONNECT from `device` as `client_id`, with its Will message if it gave one."""
        device.client_id = client_id
        peer = device.peer
        try:
            result = self.iot.connect(peer.certificate_pem, peer.chain_pem, server_name=peer.server_name)
        except (BadCertificate, ValueError) as exc:  # what the handshake let by and AWS IoT cannot read
            result = ConnectResult(Connect.CLOSED, certificate_id(peer.certificate), reason=f"unreadable: {exc}")
        device.certificate_id = result.certificate_id
        if result.outcome == Connect.CONNECTED:
            with contextlib.suppress(BadCertificate):  # a subject that cannot be decoded resolves no variable
                device.fields = certificate_parameters(peer.certificate)
            reason = self.refusal(device) or self._will_refusal(device, will)
            if reason:
                result = dataclasses.replace(result, outcome=Connect.CLOSED, reason=reason)
        self.last_connect[result.certificate_id] = result.outcome
        self.report(_connect_line(client_id, result))
        return result

    def refusal(self, device: Device) -> str:
        """Why AWS IoT would not keep `device` connected now ("" if it would): its certificate is no longer ACTIVE, or
        its policies no longer allow `iot:Connect` for its client id."""
        with self.iot.state.lock:
            certificate = self.iot.backend.certificates.get(device.certificate_id)
            status = "deleted" if certificate is None else str(certificate.status)
        if status != "ACTIVE":
            return f"certificate is {status}"
        verdict = self.authorize(device, "iot:Connect", device.client_id)
        return "" if verdict.allowed else f"iot:Connect as {device.client_id!r} {verdict.describe()}"

    def _will_refusal(self, device: Device, will: Will | None) -> str:
        """A Will is published on the device's behalf: its topic needs `iot:Publish`, and `iot:RetainPublish` when the
        Will is retained, as the device's own PUBLISH would."""
        if will is None:
            return ""
        for action in ("iot:Publish", "iot:RetainPublish") if will.retain else ("iot:Publish",):
            verdict = self.authorize(device, action, will.topic)
            if not verdict.allowed:
                return f"Will message: {action} on {will.topic!r} {verdict.describe()}"
        return ""

    def authorize(self, device: Device, action: str, name: str) -> Verdict:
        """`action` on the client id, topic or topic filter `name`, under the certificate's policies now."""
        backend = self.iot.backend
        with self.iot.state.lock:
            certificate = backend.certificates.get(device.certificate_id)
            if certificate is None or device.fields is None:  # nothing is allowed
                return evaluate([], action, name, Connection(device.client_id))
            policies = policies_of(backend, certificate.arn)
            connection = connection_of(backend, certificate, device.client_id, device.fields)
        resource = resource_arn(_RESOURCE_ACTION.get(action, action), name, self.iot.region, self.iot.account_id)
        return evaluate(policies, action, resource, connection)


def _connect_line(client_id: str, decision: ConnectResult) -> str:
    what = {
        Connect.CONNECTED: "CONNACK 0 (connected)",
        Connect.REGISTERED: "registered PENDING_ACTIVATION, event published; closed without CONNACK",
        Connect.PENDING: "still PENDING_ACTIVATION, event published again; closed without CONNACK",
        Connect.CLOSED: "closed without CONNACK",
        Connect.THROTTLED: "over the account's connect rate; closed",
    }[decision.outcome]
    reason = f" ({decision.reason})" if decision.reason else ""
    return f"CONNECT {client_id or '(no client id)'} certificate {decision.certificate_id[:12]}: {what}{reason}"


GATES: dict[str, Gate] = {}  # the plugin finds its endpoint's gate by the key in its configuration
_keys = itertools.count(1)


class AwsIoTRules(BaseAuthPlugin, BaseTopicPlugin):
    """amqtt plugin: AWS IoT's connect semantics and policy checks (see the module's docstring)."""

    @dataclass
    class Config:
        gate: str

    def _gate(self) -> Gate:
        return GATES[self.config.gate]

    async def authenticate(self, *, session: Session) -> bool | None:
        """Only devices the gate admitted at CONNECT reach the broker (`MqttEndpoint._accept`)."""
        device = self._gate().device(session)
        return device is not None and device.client_id == session.client_id

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool | None:
        gate = self._gate()
        device = gate.device(session)
        if device is None or topic is None or action is None or action not in _ACTIONS or device.stream.closed:
            return False  # a device being disconnected gets nothing more through, in either direction
        if await _evict_if_refused(gate, device):
            return False
        return await _enforce(gate, device, action.value.upper(), [_ACTIONS[action]], topic)

    async def on_mqtt_packet_received(
        self, *, packet: MQTTPacket[Any, Any, Any], session: Session | None = None
    ) -> None:
        """Every packet a device sends is a moment to check it may still be connected. A PUBLISH is checked as it
        arrives: amqtt schedules this event before the task that handles the packet (and sends its PUBACK), so one the
        policy refuses closes the connection with no PUBACK, as on AWS IoT, and `topic_filtering`, which comes only
        after the PUBACK, then finds the connection closing and lets nothing through."""
        gate = self._gate()
        device = gate.device(session)
        if device is None or device.stream.closed or await _evict_if_refused(gate, device):
            return
        if isinstance(packet, PublishPacket) and packet.topic_name is not None:
            actions = ["iot:Publish", "iot:RetainPublish"] if packet.retain_flag else ["iot:Publish"]
            await _enforce(gate, device, "PUBLISH", actions, packet.topic_name)


async def _enforce(gate: Gate, device: Device, what: str, actions: list[str], topic: str) -> bool:
    """The policy's answer for every one of `actions`; a PUBLISH or SUBSCRIBE it refuses disconnects the device (AWS
    IoT's AUTH_ERROR)."""
    for index, action in enumerate(actions):
        verdict = gate.authorize(device, action, topic)
        if verdict.allowed:
            continue
        if what != "RECEIVE" and not device.stream.closed:
            which = f"{action} " if index else ""  # the packet's own action goes without saying
            gate.report(f"{what} {device.client_id} {topic}: {which}{verdict.describe()}; disconnected")
            await device.stream.close()
        return False
    return True


async def _evict_if_refused(gate: Gate, device: Device) -> bool:
    """Disconnect `device` if AWS IoT would no longer keep it connected (`Gate.refusal`); whether it did."""
    reason = gate.refusal(device)
    if reason and not device.stream.closed:
        gate.report(f"CONNECTED {device.client_id} certificate {device.certificate_id[:12]}: {reason}; disconnected")
        await device.stream.close()
    return bool(reason)


class _AwsIoTBroker(Broker):
    """amqtt's broker, sending retained messages as AWS IoT does: at SUBSCRIBE, to the session that subscribed, and
    only those its policy lets it `iot:Receive` (checked at every delivery). amqtt sends them without the `iot:Receive`
    check, and at every connect for the filters any session subscribed with; it has no hook for either, hence this
    override of the one method that sends them."""

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        topic_filter, _ = subscription
        granted = [qos for subscriber, qos in self.subscriptions.get(topic_filter, []) if subscriber is session]
        handler = self._get_handler(session)
        if not granted or handler is None:
            return
        sends = [
            asyncio.ensure_future(
                handler.mqtt_publish(retained.topic, retained.data, min(granted[0], retained.qos or 0), retain=True)
            )
            for retained in list(self.retained_messages.values())
            if topic_matches(topic_filter, retained.topic)
            and await self._topic_filtering(session, topic=retained.topic, action=Action.RECEIVE)
        ]
        if sends:
            await asyncio.wait(sends)


class _Reader(ReaderAdapter):
    """The device's plaintext for the broker, starting with what `read_connect` read already."""

    def __init__(self, stream: TlsStream, replay: bytes = b"") -> None:
        self._stream = stream
        self._replay = bytearray(replay)
        self.recorded = bytearray()
        self.recording = False

    async def read(self, n: int = -1) -> bytes:
        if self._replay:
            if n < 0 or n >= len(self._replay):
                data = bytes(self._replay)
                self._replay.clear()
                if n >= 0 and len(data) < n:
                    data += await self._stream.read_exactly(n - len(data))
                return data
            data = bytes(self._replay[:n])
            del self._replay[:n]
            return data
        data = await (self._stream.read_some() if n < 0 else self._stream.read_exactly(n))
        if self.recording:
            self.recorded += data
        return data

    def feed_eof(self) -> None:
        """Nothing to do: the TLS stream knows its own end."""


class UnsupportedProtocol(ValueError):
    """A CONNECT of an MQTT version the broker does not speak (amqtt speaks MQTT 3.1.1, protocol level 4)."""


async def read_connect(stream: TlsStream) -> tuple[str, Will | None, bytes]:
    """The client id and Will of the device's first packet, which must be an MQTT 3.1.1 CONNECT, and the bytes it
    took (the broker reads them again). Raises ValueError (UnsupportedProtocol for another MQTT version) otherwise."""
    reader = _Reader(stream)
    reader.recording = True
    try:
        fixed = await MQTTFixedHeader.from_stream(reader)
        if fixed is None or fixed.packet_type != CONNECT:
            raise ValueError("the first packet is not a CONNECT")
        variable = await ConnectVariableHeader.from_stream(reader, fixed)
        if variable.proto_level != MQTT_3_1_1:
            raise UnsupportedProtocol(f"MQTT protocol level {variable.proto_level}")
        packet = await ConnectPacket.from_stream(reader, fixed_header=fixed, variable_header=variable)
    except (AMQTTError, MQTTError, NoDataError, CodecError, asyncio.IncompleteReadError) as exc:
        raise ValueError(f"not an MQTT CONNECT: {exc or type(exc).__name__}") from exc
    will = Will(str(packet.will_topic or ""), bool(packet.will_retain_flag)) if packet.will_flag else None
    return str(packet.client_id or ""), will, bytes(reader.recorded)


class _Writer(WriterAdapter):
    def __init__(self, stream: TlsStream, address: tuple[str, int]) -> None:
        self._stream = stream
        self._address = address

    def write(self, data: bytes) -> None:
        self._stream.write(data)

    async def drain(self) -> None:
        await self._stream.drain()

    def get_peer_info(self) -> tuple[str, int] | None:
        return self._address

    def get_ssl_info(self) -> None:
        return None  # the device's certificate is the gate's business, not the broker's

    async def close(self) -> None:
        await self._stream.close()


class MqttEndpoint:
    """MQTT over mutual TLS on `host:port` (0: any free port), in front of an embedded AWS IoT."""

    def __init__(
        self,
        iot: EmbeddedIoT,
        credentials: ServerCredentials,
        report: Report,
        *,
        host: str = "127.0.0.1",
        port: int = 8883,
    ) -> None:
        self.iot = iot
        self.host = host
        self.port = port
        self._context: SSL.Context = server_context(credentials)
        self._key = f"endpoint-{next(_keys)}"
        self._server: asyncio.Server | None = None
        self._broker: Broker | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.report = report  # one line per connect and per refused action

    @property
    def gate(self) -> Gate:
        return GATES[self._key]

    async def start(self) -> None:
        GATES[self._key] = Gate(self.iot, self.report)
        self._broker = _AwsIoTBroker(
            {
                "listeners": {"default": {"type": "external"}},
                "plugins": {f"{AwsIoTRules.__module__}.{AwsIoTRules.__qualname__}": {"gate": self._key}},
            }
        )
        await self._broker.start()
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        """Every `SWEEP_S`, disconnect each connected device AWS IoT would no longer keep (`Gate.refusal`), so that one
        which sends nothing (waiting for messages, pinging every keep-alive) is not kept either."""
        while True:
            await asyncio.sleep(SWEEP_S)
            gate = self.gate
            for device in list(gate.devices.values()):
                if not device.stream.closed:
                    await _evict_if_refused(gate, device)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            self._server.close()
        for device in list(self.gate.devices.values()):
            device.stream.abort()
        if self._broker is not None:
            await self._broker.shutdown()
        if self._server is not None:
            await self._server.wait_closed()
        GATES.pop(self._key, None)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = TlsStream(self._context, reader, writer)
        try:
            peer = await asyncio.wait_for(stream.handshake(), HANDSHAKE_TIMEOUT_S)
        except (TlsClosed, TimeoutError, ValueError) as exc:
            self.report(f"TLS from {writer.get_extra_info('peername')}: {exc or 'timed out'}")
            stream.abort()
            return
        try:
            await self._serve(stream, peer)
        finally:
            stream.abort()

    async def _serve(self, stream: TlsStream, peer: Peer) -> None:
        gate = self.gate
        try:
            client_id, will, connect = await asyncio.wait_for(read_connect(stream), HANDSHAKE_TIMEOUT_S)
        except UnsupportedProtocol as exc:
            # MQTT 3.1.1's answer to a version it does not speak [MQTT-3.1.2-2], which MQTT 5 clients understand too
            stream.write(ConnackPacket.build(0, UNACCEPTABLE_PROTOCOL_VERSION).to_bytes())
            await stream.drain()
            self.report(f"MQTT from {peer.address[0]}:{peer.address[1]}: {exc}; {MQTT5_HINT}")
            await stream.close()
            return
        except (ValueError, TimeoutError) as exc:
            self.report(f"MQTT from {peer.address[0]}:{peer.address[1]}: {exc or 'no CONNECT in time'}; closed")
            await stream.close()
            return
        device = Device(peer, stream)
        if gate.connect(device, client_id, will).outcome != Connect.CONNECTED:
            # Refused before the broker hears of it: no CONNACK (the device sees the connection closed, as on AWS
            # IoT) and no session left behind for its next attempt to take over.
            await stream.close()
            return
        gate.devices[peer.address] = device
        try:
            assert self._broker is not None
            await self._broker.external_connected(_Reader(stream, connect), _Writer(stream, peer.address), "default")
        finally:
            gate.devices.pop(peer.address, None)
            stream.abort()


@contextlib.contextmanager
def running(endpoint: MqttEndpoint) -> Iterator[MqttEndpoint]:
    """The endpoint on its own event loop in a background thread (for tests and for `jitr serve`'s other parts, which
    are threads too). Yields once it listens; stops it on exit."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(endpoint.start())
        except BaseException as exc:
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="jitr-mqtt", daemon=True)
    thread.start()
    started.wait()
    if failure:
        thread.join()
        loop.close()
        raise failure[0]
    try:
        yield endpoint
    finally:
        asyncio.run_coroutine_threadsafe(endpoint.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


logging.getLogger("amqtt").setLevel(logging.ERROR)  # its per-packet INFO lines are the broker's, not the device's
logging.getLogger("transitions").setLevel(logging.ERROR)
