"""A model origin for tests: a real static HTTP server that counts the GETs it answers."""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
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
