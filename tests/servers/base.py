"""A small real HTTP server on 127.0.0.1 for protocol tests: JSON in, JSON out, every request
recorded, and faults that can be scheduled (status codes, bodies that are not JSON, answers
dripped a byte at a time, requests never answered, delays). Every wait ends when the server
shuts down, so a test never waits out a fault."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Failure:
    """What one request gets instead of the route's answer. `status` None: the route's answer
    (then only `drip_s` changes how it is sent); `body` bytes: sent as they are."""

    status: int | None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drip_s: float = 0.0  # > 0: the body goes out one byte every drip_s seconds
    hang: bool = False  # never answer (until the server shuts down)
    content_type: str = "text/html"  # of a bytes body


# route(method, path, body) -> (status, payload, headers) where payload is a dict (JSON)
# or a list of dicts (sent as NDJSON, as Ollama streams)
Route = Callable[[str, str, Any], tuple[int, Any, dict[str, str]]]


class JsonServer:
    def __init__(self, route: Route) -> None:
        self.route = route
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self.delay_s = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()  # set on shutdown: ends every wait of a fault at once
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def do_DELETE(self) -> None:
                self._handle()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with server._lock:
                    server.requests.append(Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    failure = server.failures.pop(0) if server.failures else None
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if server.delay_s:
                        server._closing.wait(server.delay_s)
                    if failure and failure.hang:
                        server._closing.wait()
                    elif failure and failure.status is not None:
                        self._send(failure.status, failure.body, failure.headers, failure.drip_s,
                                   failure.content_type)
                    else:
                        self._send(*server.route(self.command, self.path.split("?")[0], body),
                                   drip_s=failure.drip_s if failure else 0.0)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, status: int, payload: Any, headers: dict[str, str], drip_s: float = 0.0,
                      raw_content_type: str = "text/html") -> None:
                if isinstance(payload, bytes):
                    data, content_type = payload, raw_content_type
                elif isinstance(payload, list):
                    data = b"".join(json.dumps(item).encode() + b"\n" for item in payload)
                    content_type = "application/x-ndjson"
                else:
                    data = json.dumps(payload).encode()
                    content_type = "application/json"
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if not drip_s:
                    self.wfile.write(data)
                    return
                try:
                    for byte in data:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        if server._closing.wait(drip_s):
                            return
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: the fault did its job

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def fail_next(self, count: int, status: int, body: dict[str, Any] | None = None,
                  headers: dict[str, str] | None = None) -> None:
        """The next `count` requests get this error instead of an answer."""
        self.failures.extend(Failure(status, body or {"error": {"message": f"scheduled {status}"}}, headers or {})
                             for _ in range(count))

    def _after(self, count: int) -> None:
        """The next `count` requests are answered as usual: a fault scheduled next follows them."""
        self.failures.extend(Failure(None) for _ in range(count))

    def garble_next(self, count: int, body: bytes | dict[str, Any], *, after: int = 0,
                    headers: dict[str, str] | None = None, content_type: str = "text/html") -> None:
        """After `after` normal answers, the next `count` requests get 200 with `body` (bytes: as
        they are, e.g. not JSON; a dict: JSON, e.g. without the fields a client needs), and
        `headers` (e.g. a Content-Encoding the body does not have)."""
        self._after(after)
        self.failures.extend(Failure(200, body, headers or {}, content_type=content_type) for _ in range(count))

    def drip_next(self, count: int, every_s: float, *, after: int = 0) -> None:
        """After `after` normal answers, the next `count` answers go out a byte every `every_s`."""
        self._after(after)
        self.failures.extend(Failure(None, drip_s=every_s) for _ in range(count))

    def hang_next(self, count: int, *, after: int = 0) -> None:
        """After `after` normal answers, the next `count` requests are never answered."""
        self._after(after)
        self.failures.extend(Failure(None, hang=True) for _ in range(count))

    def posts(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.startswith(path)]

    def __enter__(self) -> "JsonServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
