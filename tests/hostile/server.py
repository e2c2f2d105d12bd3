"""A small misbehaving HTTP server on 127.0.0.1: each test scripts how it answers, and it counts requests.

Unlike the sandbox, which plays a correct API with realistic faults, this server says whatever a test makes
it say: contradictory counts, endless or trickling bodies, redirect loops, echoes of the request's headers.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: The key every hostile test uses: the texts a test collects must never hold it, nor its secret part.
API_KEY = "gva_live_hostile1.s3cr3tK3yValue"
SECRET_PART = API_KEY.split(".")[1]


class Exchange:
    """One request as the server saw it, and the ways to answer it.

    :ivar method: ``GET``, ``POST``...
    :ivar path: the path without the query.
    :ivar params: the query, one value per name.
    :ivar headers: the request headers.
    :ivar number: 1 for the server's first request, 2 for the next...
    """

    def __init__(self, handler: BaseHTTPRequestHandler, number: int) -> None:
        self.handler = handler
        parts = urlsplit(handler.path)
        self.method = handler.command
        self.path = parts.path
        self.params = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        self.headers = handler.headers
        self.number = number

    @property
    def offset(self) -> int:
        """The ``offset`` parameter (0 when absent)."""
        return int(self.params.get("offset", "0"))

    @property
    def limit(self) -> int:
        """The ``limit`` parameter (50 when absent, as the API's default)."""
        return int(self.params.get("limit", "50"))

    def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        """Answer with a whole body."""
        self.handler.send_response(status)
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}
        for name, value in headers.items():
            self.handler.send_header(name, value)
        self.handler.end_headers()
        self._write(body)

    def json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """Answer with a JSON body (``payload`` may be text already, e.g. with a literal NaN)."""
        text = payload if isinstance(payload, str) else json.dumps(payload)
        self.send(status, text.encode("utf-8"), headers)

    def ok(self, data: Any) -> None:
        """Answer 200 with a success envelope holding ``data``."""
        self.json(200, {"ok": True, "code": 200, "message": "ok", "data": data})

    def page(self, posts: list[Any], total: Any, has_more: Any) -> None:
        """Answer 200 with a page of posts, saying whatever ``total`` and ``has_more`` say."""
        self.ok({"posts": posts, "totalCount": total, "hasMore": has_more})

    def error(self, status: int, message: str, error_code: str | None = None, **headers: str) -> None:
        """Answer with an error envelope."""
        body = {"ok": False, "code": status, "message": message, "error_code": error_code}
        self.json(status, body, {name.replace("_", "-"): value for name, value in headers.items()})

    def stream(self, status: int, chunks: Iterable[bytes], *, length: int | None = None, pause: float = 0.0) -> None:
        """Answer with a body sent chunk by chunk, ``pause`` seconds apart; stop when the client hangs up."""
        self.handler.send_response(status)
        self.handler.send_header("Content-Type", "application/json")
        if length is not None:
            self.handler.send_header("Content-Length", str(length))
        self.handler.end_headers()
        for chunk in chunks:
            if not self._write(chunk):
                return
            if pause:
                time.sleep(pause)

    def redirect(self, location: str) -> None:
        """Answer 302 to ``location``."""
        self.send(302, b"", {"Location": location})

    def _write(self, data: bytes) -> bool:
        try:
            self.handler.wfile.write(data)
            self.handler.wfile.flush()
        except OSError:  # the client gave up: what the test wants
            return False
        return True


Behaviour = Callable[[Exchange], None]


class HostileServer:
    """A threaded HTTP server on 127.0.0.1 answering every request with ``behave``.

    :param behave: called with each request; answers it.
    :param max_requests: past this many requests the server answers 500 and records an overrun: a client
        that loops shows up as ``overrun`` rather than as a test that never ends.
    :param api_key: the key of the connection tests point at it (``genviral_connection`` reads ``api_key``).
    """

    def __init__(self, behave: Behaviour, *, max_requests: int = 400, api_key: str = API_KEY) -> None:
        self.behave = behave
        self.max_requests = max_requests
        self.api_key = api_key
        self.exchanges: list[Exchange] = []
        self.connections = 0
        self.overrun = False
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10  # a client that stalls cannot hold a handler thread for long

            def setup(self) -> None:
                with server._lock:
                    server.connections += 1
                super().setup()
                # Headers and body go out in separate writes: without this, delayed ACKs add 40 ms to each.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                server._answer(self)

            do_POST = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, name="hostile-server", daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        """Its base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> int:
        """How many requests it answered."""
        return len(self.exchanges)

    def start(self) -> HostileServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=10)

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            exchange = Exchange(handler, len(self.exchanges) + 1)
            self.exchanges.append(exchange)
            over = len(self.exchanges) > self.max_requests
            self.overrun = self.overrun or over
        if over:
            exchange.error(500, "hostile server: request budget of the test exceeded")
            return
        with contextlib.suppress(OSError):  # the client hung up or timed out: what many tests want
            self.behave(exchange)


def rows(start: int, count: int, *, day: str = "2026-01-01") -> list[dict[str, Any]]:
    """Return ``count`` distinct rows, ids ``row-<start>``..., published a second apart on ``day``."""
    return [
        {
            "id": f"row-{n}",
            "analyticsId": f"row-{n}",
            "publishedAt": f"{day}T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000Z",
            "caption": f"post {n}",
            "metrics": {"views": n, "likes": 0, "comments": 0, "shares": 0, "saves": 0},
            "platform": "tiktok",
        }
        for n in range(start, start + count)
    ]
