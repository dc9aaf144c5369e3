"""Model origins for tests: real HTTP servers on 127.0.0.1 that count the GETs they answer."""

from __future__ import annotations

import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Origin:
    """Serves `root` on `host` (127.0.0.1, or an address pods reach); with `authorization` set, requires that header.

    `close()` stops it; `gets` and `paths` are what it was asked for.
    """

    def __init__(self, root: Path, host: str = "127.0.0.1") -> None:
        self.root = root
        self.gets = 0
        self.authorization: str | None = None
        self.paths: list[str] = []
        origin = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                origin.gets += 1
                origin.paths.append(self.path)
                if origin.authorization and self.headers.get("Authorization") != origin.authorization:
                    self.send_error(401)
                    return
                self.path = self.path.split("?", 1)[0]
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), partial(Handler, directory=str(root)))
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class HoldingOrigin:
    """Serves one payload; with `hold_at` it sends that many bytes and waits for `release`, with `die_at` it
    sends that many bytes and closes, with `chunked` it sends no Content-Length (chunked transfer encoding)."""

    def __init__(self) -> None:
        self.payload = b""
        self.hold_at: int | None = None
        self.die_at: int | None = None
        self.chunked = False
        self.release = threading.Event()
        self.gets = 0
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                origin.gets += 1
                body = origin.payload
                self.send_response(200)
                if origin.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = origin.die_at if origin.die_at is not None else origin.hold_at
                self._send(body[:cut] if cut is not None else body)
                if origin.die_at is not None:
                    self.close_connection = True  # mid-body: the client sees the connection end early
                    return
                if cut is not None:
                    origin.release.wait(timeout=30)
                    self._send(body[cut:])
                if origin.chunked:
                    self.wfile.write(b"0\r\n\r\n")

            def _send(self, data: bytes) -> None:
                if origin.chunked and data:
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                elif data:
                    self.wfile.write(data)
                self.wfile.flush()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mlp.safetensors"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
