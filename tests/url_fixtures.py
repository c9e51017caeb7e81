"""A local HTTP server (http.server in a thread) with the answers URL fetching must handle."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    seen_hosts: list[str] = []

    def log_message(self, *args: object) -> None:  # keep pytest's output clean
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, length: bool = True) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        try:
            self._answer()
        except (ConnectionResetError, BrokenPipeError):
            pass  # the client stopped reading on purpose (too large, too slow)

    def _answer(self) -> None:
        self.seen_hosts.append(self.headers.get("Host", ""))
        port = self.server.server_address[1]
        path = self.path
        if path in self.files:
            self._send(200, self.files[path], {"Content-Type": "image/png"})
        elif path == "/redirect-same":
            self._send(302, headers={"Location": "/disc.png"})
        elif path == "/redirect-other":
            self._send(302, headers={"Location": f"http://localhost:{port}/disc.png"})
        elif path == "/loop":
            self._send(302, headers={"Location": "/loop"})
        elif path == "/big":  # says it is large: refused before reading
            self._send(200, b"", {"Content-Length": str(50_000_000)}, length=False)
        elif path == "/big-stream":  # no length: counted while reading
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(40):
                self.wfile.write(bytes(100_000))
        elif path == "/slow":  # the headers, then a trickle
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
        else:
            self._send(404, b"not here")


@contextmanager
def http_server(files: dict[str, bytes]) -> Iterator[tuple[str, list[str]]]:
    """Serve ``files`` (path -> bytes) and the special paths above on 127.0.0.1; yields
    (base URL, the Host headers seen)."""
    handler = type("Handler", (_Handler,), {"files": files, "seen_hosts": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen_hosts
    finally:
        server.shutdown()
        server.server_close()
