"""A CRL distribution point (and OCSP responder) on 127.0.0.1: `jitr simulate` and `jitr serve` publish the
development CA's CRL here, and the tests serve what a real one may serve on a bad day (errors, redirects, slow or
oversized bodies). A path given a callable (`answer`) answers POSTs with what it returns for the request body."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass
class Served:
    """What one path answers."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    produce: Callable[[], bytes] | None = None  # the body made afresh for each request (instead of `body`)


Responder = Callable[[bytes], bytes]  # a POST's body -> the answer's body (an OCSP request -> its response)


class CrlServer:
    """An HTTP server on 127.0.0.1 (a free port unless told) answering each path as `paths` says (a POST to a path
    in `responders` by calling it), counting requests per path. Use as a context manager, or call `stop()`."""

    def __init__(self, port: int = 0) -> None:
        self.paths: dict[str, Served] = {}
        self.responders: dict[str, Responder] = {}
        self.content_types: list[str] = []  # the Content-Type of each POST
        self.hits: dict[str, int] = {}
        self.hosts: list[str] = []  # the Host header of each request
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="crl-server", daemon=True)
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(self._count() or Served(404))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                served = self._count()  # a path in `paths` answers as told (a responder's bad day)
                with server._lock:
                    server.content_types.append(self.headers.get("Content-Type", ""))
                    responder = server.responders.get(self.path.split("?", 1)[0])
                if served is None and responder is not None:
                    served = Served(body=responder(body), headers={"Content-Type": "application/ocsp-response"})
                self._answer(served or Served(404))

            def _count(self) -> Served | None:
                with server._lock:
                    server.hits[self.path] = server.hits.get(self.path, 0) + 1
                    server.hosts.append(self.headers.get("Host", ""))
                    return server.paths.get(self.path.split("?", 1)[0])

            def _answer(self, served: Served) -> None:
                time.sleep(served.delay_s)
                status, body = served.status, served.body
                if served.produce:
                    try:
                        body = served.produce()
                    except Exception:  # a CA's web server that cannot make the CRL answers 500
                        status, body = 500, b""
                self.send_response(status)
                for name, value in served.headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in served.headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client stopped reading (a size cap): its right
                    self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:  # the base class's name
                pass

        return Handler

    def publish(self, path: str, body: bytes) -> str:
        """Serve `body` (a DER CRL) at `path`; its URL."""
        with self._lock:
            self.paths[path] = Served(body=body, headers={"Content-Type": "application/pkix-crl"})
        return self.url(path)

    def publish_live(self, path: str, produce: Callable[[], bytes]) -> str:
        """Serve what `produce()` returns at the time of each request (a CRL that follows its CA's list); its URL."""
        with self._lock:
            self.paths[path] = Served(headers={"Content-Type": "application/pkix-crl"}, produce=produce)
        return self.url(path)

    def answer(self, path: str, responder: Responder) -> str:
        """Answer POSTs to `path` with `responder(request body)` (an OCSP responder); its URL."""
        with self._lock:
            self.responders[path] = responder
        return self.url(path)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> CrlServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
