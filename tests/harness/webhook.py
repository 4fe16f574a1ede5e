"""A local webhook receiver for notification tests: http.server in a thread on 127.0.0.1.

Each path behaves differently: ``/ok`` accepts (204), ``/slow`` answers only after
``delay_s`` (longer than a drill step), ``/drop`` reads the request and closes the
connection without answering, ``/error`` answers 500. Every request is recorded (path,
JSON body, Authorization header, arrival time) whatever the behaviour.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    authorization: str | None
    at: float = field(default_factory=time.time)


class Webhook:
    def __init__(self, delay_s: float = 2.0) -> None:
        self.delay_s = delay_s
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Webhook:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with hook._lock:
                    hook.received.append(Received(self.path, json.loads(raw or b"{}"),
                                                  self.headers.get("Authorization")))
                if self.path == "/drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if self.path == "/slow":
                    time.sleep(hook.delay_s)
                self.send_response(500 if self.path == "/error" else 204)
                self.end_headers()

        return Handler
