"""An HTTP proxy on 127.0.0.1 that injects faults between an S3 client and a (moto) server.

Each request is forwarded unless a fault is drawn for it (seeded RNG, per-request
probabilities), or the proxy is stopped:

``error``    answer ``500 InternalError`` (or ``503 SlowDown``) without forwarding;
``lost``     forward (the server applies the request), then drop the connection without
             answering: the client cannot know whether it happened;
``deny``     answer ``403 AccessDenied`` to writes (PUT, POST, DELETE): a read-only bucket;
``stop()``   close the listening socket (connection refused) until ``start()``.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

ERROR_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
    b"<Message>injected fault</Message></Error>"
)


class FaultProxy:
    """Forwarding proxy with fault injection.

    Parameters
    ----------
    upstream
        The server's endpoint, ``http://127.0.0.1:PORT``.
    seed
        Seed of the fault draws.
    """

    def __init__(self, upstream: str, *, seed: int = 0) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.error_rate = 0.0
        self.lost_rate = 0.0
        self.lost_pattern: re.Pattern[str] | None = None
        """Only requests whose ``METHOD path`` matches may lose their response (None: all)."""
        self.deny_writes = False
        self.counts: Counter[str] = Counter()
        self.sockets: set[socket.socket] = set()
        self.port = _free_port()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def options(self, **config: Any) -> dict[str, Any]:
        """s3fs storage options that go through this proxy (``config``: botocore settings)."""
        return {
            "endpoint_url": self.endpoint,
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"region_name": "us-east-1"},
            "config_kwargs": config,
            "skip_instance_cache": True,
        }

    def draw(self, line: str, write: bool) -> str:
        """The fault for one request: ``""`` (none), ``error``, ``lost`` or ``deny``."""
        with self.lock:
            self.counts["requests"] += 1
            if self.deny_writes and write:
                fault = "deny"
            elif self.rng.random() < self.error_rate:
                fault = "error"
            elif (
                self.lost_pattern is None or self.lost_pattern.search(line)
            ) and self.rng.random() < self.lost_rate:
                fault = "lost"
            else:
                fault = ""
            if fault:
                self.counts[fault] += 1
                if fault == "lost" and "/_log/" in line:
                    self.counts["lost-commit-record"] += 1
            return fault

    def start(self) -> None:
        """Listen (again) on the same port."""
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def setup(self) -> None:
                super().setup()
                with proxy.lock:
                    proxy.sockets.add(self.connection)

            def finish(self) -> None:
                with proxy.lock:
                    proxy.sockets.discard(self.connection)
                super().finish()

            def _handle(self) -> None:
                body = self._body()
                if proxy.server is None:  # stopped: a kept-alive connection gets nothing
                    self.close_connection = True
                    return
                line = f"{self.command} {self.path}"
                fault = proxy.draw(line, self.command in ("PUT", "POST", "DELETE"))
                if fault == "error":
                    code = proxy.rng.choice([(500, b"InternalError"), (503, b"SlowDown")])
                    self._reply(code[0], ERROR_BODY.replace(b"{code}", code[1]), [])
                    return
                if fault == "deny":
                    self._reply(403, ERROR_BODY.replace(b"{code}", b"AccessDenied"), [])
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("transfer-encoding", "content-length", "connection")
                }
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    status, out_headers = resp.status, resp.getheaders()
                finally:
                    conn.close()
                if fault == "lost":  # the server did it; the client never hears so
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._reply(status, data, out_headers)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop listening: new connections are refused (open ones are closed)."""
        if self.server is not None:
            server, self.server = self.server, None
            server.shutdown()
            server.server_close()
            with self.lock:
                for sock in list(self.sockets):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
