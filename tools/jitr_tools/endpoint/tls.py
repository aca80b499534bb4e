"""The TLS side of `jitr serve`'s MQTT endpoint, as AWS IoT's is: mutual TLS that asks every device for a client
certificate and accepts whichever it presents (unknown CA, expired, weak key, SHA-1: AWS IoT, not the TLS library,
decides what happens to it), remembering the certificate, the chain the device sent and the SNI it asked for.

pyOpenSSL, not the standard library's `ssl`: `ssl` can request a client certificate only by verifying it against a
trust store, so every defective certificate the handler is there to judge would fail the handshake instead. pyOpenSSL's
verify callback says "accept", and its memory BIOs let asyncio drive the TLS connection (`TlsStream`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from jitr_tools import pki

SERVER_CA_STEM = "server-ca"
SERVER_STEM = "server"
SERVER_NAMES = ("localhost", "127.0.0.1")  # the IP subjectAltName too: the Device SDK v2 checks it for 127.0.0.1
RENEW_BEFORE = dt.timedelta(days=30)
_READ_SIZE = 65536


@dataclass(frozen=True)
class ServerCredentials:
    ca_file: Path  # what devices trust (their "root CA" file)
    server: pki.Issued


def server_credentials(folder: Path) -> ServerCredentials:
    """The local server CA and the endpoint's certificate (for localhost and 127.0.0.1) under `folder`, made on first
    use and kept, so devices configured with the CA file keep working across runs; renewed when within 30 days of
    expiry."""
    ca_file = folder / f"{SERVER_CA_STEM}.pem"
    if (folder / f"{SERVER_STEM}.key").exists() and ca_file.exists():
        server = pki.read_issued(folder, SERVER_STEM)
        if server.certificate.not_valid_after_utc - RENEW_BEFORE > pki.now():
            return ServerCredentials(ca_file, server)
    ca = pki.make_ca("jitr serve local server CA", organization="jitr serve")
    server = pki.make_device(ca, "localhost", eku=pki.SERVER_AUTH_ONLY, san=list(SERVER_NAMES), days=825)
    pki.write_issued(ca, folder, SERVER_CA_STEM)
    pki.write_issued(server, folder, SERVER_STEM)
    return ServerCredentials(ca_file, server)


def server_context(credentials: ServerCredentials) -> SSL.Context:
    """TLS 1.2 or 1.3; a client certificate is required but never judged here (any chain, any key size)."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")  # a 1024-bit device key must reach the handler, not fail here
    context.use_certificate(credentials.server.certificate)
    context.use_privatekey(credentials.server.key)  # type: ignore[arg-type]
    context.check_privatekey()
    context.set_session_id(b"jitr-serve")
    context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _accept_any)
    return context


def _accept_any(_connection: SSL.Connection, _certificate: object, _error: int, _depth: int, _ok: int) -> bool:
    return True


@dataclass(frozen=True)
class Peer:
    """What a device presented in its handshake."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # what it sent after its own certificate, maybe nothing
    server_name: str | None  # SNI
    address: tuple[str, int]

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def chain_pem(self) -> str:
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in self.chain)


class TlsClosed(ConnectionError):
    """The device went away (or never finished its handshake)."""


class TlsStream:
    """One device's TLS connection, driven by asyncio through memory BIOs: `handshake()`, then `read_exactly`, `write`,
    `drain`; `close()` ends it as AWS IoT ends a connection it refuses (close_notify, then FIN), `abort()` at once."""

    def __init__(self, context: SSL.Context, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tls = SSL.Connection(context, None)
        self._tls.set_accept_state()
        self._reader = reader
        self._writer = writer
        self._plain = bytearray()
        self._outgoing = bytearray()
        self.closed = False

    async def handshake(self) -> Peer:
        while True:
            try:
                self._tls.do_handshake()
                break
            except SSL.WantReadError:
                await self._flush()
                if not await self._fill():
                    raise TlsClosed("closed during the TLS handshake") from None
            except SSL.Error as exc:
                await self._flush()  # the alert, if any
                raise TlsClosed(f"TLS handshake failed: {exc}") from exc
        await self._flush()
        leaf = self._tls.get_peer_certificate(as_cryptography=True)
        if leaf is None:  # VERIFY_FAIL_IF_NO_PEER_CERT makes this unreachable; kept as the guard it is
            raise TlsClosed("no client certificate")
        sent = self._tls.get_peer_cert_chain(as_cryptography=True) or []
        chain = tuple(c for c in sent if c != leaf)
        name = self._tls.get_servername()
        peer = self._writer.get_extra_info("peername") or ("?", 0)
        return Peer(leaf, chain, name.decode() if name else None, (str(peer[0]), int(peer[1])))

    async def read_exactly(self, n: int) -> bytes:
        """`n` bytes of plaintext; `asyncio.IncompleteReadError` when the device goes away first (what asyncio's own
        streams raise, and what the broker expects)."""
        while len(self._plain) < n:
            chunk = await self._receive()
            if not chunk:
                partial = bytes(self._plain)
                self._plain.clear()
                raise asyncio.IncompleteReadError(partial, n)
            self._plain += chunk
        data = bytes(self._plain[:n])
        del self._plain[:n]
        return data

    async def read_some(self) -> bytes:
        if self._plain:
            data = bytes(self._plain)
            self._plain.clear()
            return data
        return await self._receive()

    async def _receive(self) -> bytes:
        while not self.closed:
            try:
                return bytes(self._tls.recv(_READ_SIZE))
            except SSL.WantReadError:
                await self._flush()
                if not await self._fill():
                    return b""
            except (SSL.ZeroReturnError, SSL.SysCallError, SSL.Error):
                return b""
        return b""

    def write(self, data: bytes) -> None:
        """Queue plaintext; `drain` sends it."""
        if not self.closed:
            self._outgoing += data

    async def drain(self) -> None:
        """Send what was written; what is still queued when the connection closes is never sent."""
        if self.closed or not self._outgoing:
            return
        view = memoryview(bytes(self._outgoing))
        self._outgoing.clear()
        while view:
            sent = self._tls.send(view)  # into the memory BIO: never blocks
            view = view[sent:]
        await self._flush()

    async def close(self) -> None:
        """Close as a server does: TLS close_notify, then the TCP connection (FIN)."""
        if self.closed:
            return
        self.closed = True
        self._outgoing.clear()
        with contextlib.suppress(SSL.Error):
            self._tls.shutdown()
        chunks = self._pending()
        if not self._writer.is_closing():
            if chunks:
                self._writer.write(chunks)
            self._writer.close()

    def abort(self) -> None:
        """Drop the TCP connection now, without a word (unless `close` began closing it: that one finishes)."""
        self.closed = True
        if not self._writer.transport.is_closing():
            self._writer.transport.abort()

    async def _fill(self) -> bool:
        try:
            data = await self._reader.read(_READ_SIZE)
        except ConnectionError:
            data = b""
        if not data:
            self._tls.bio_shutdown()
            return False
        self._tls.bio_write(data)
        return True

    def _pending(self) -> bytes:
        chunks = []
        while True:
            try:
                chunks.append(self._tls.bio_read(_READ_SIZE))
            except SSL.WantReadError:
                return b"".join(chunks)

    async def _flush(self) -> None:
        data = self._pending()
        if data and not self.closed and not self._writer.is_closing():
            self._writer.write(data)
            try:
                await self._writer.drain()
            except ConnectionError:
                self.closed = True
