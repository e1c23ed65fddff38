"""A small real HTTP server on 127.0.0.1 for protocol tests: JSON in, JSON out, every request
recorded, and failures that can be scheduled (status codes, delays)."""

from __future__ import annotations

import json
import threading
import time
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
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


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
                        time.sleep(server.delay_s)
                    if failure:
                        self._send(failure.status, failure.body, failure.headers)
                    else:
                        self._send(*server.route(self.command, self.path.split("?")[0], body))
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                if isinstance(payload, list):
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
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def fail_next(self, count: int, status: int, body: dict[str, Any] | None = None,
                  headers: dict[str, str] | None = None) -> None:
        """The next `count` requests get this error instead of an answer."""
        self.failures.extend(Failure(status, body or {"error": {"message": f"scheduled {status}"}}, headers or {})
                             for _ in range(count))

    def posts(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.startswith(path)]

    def __enter__(self) -> "JsonServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
