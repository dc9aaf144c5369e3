"""Objects behind URIs against real servers on 127.0.0.1: an http(s) origin taking PUTs, and moto's S3."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infra_inference.runtime.server.loading.sources import Credentials, list_prefix, read_object, write_object


class _Store:
    """An http origin that keeps what is PUT and serves it back, for requests with the right Authorization."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        store = self

        class Handler(BaseHTTPRequestHandler):
            def _allowed(self) -> bool:
                if self.headers.get("Authorization") != "Bearer t0ken":
                    self.send_error(401)
                    return False
                return True

            def do_PUT(self) -> None:
                if self._allowed():
                    store.objects[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
                    self.send_response(201)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def do_GET(self) -> None:
                if self._allowed():
                    body = store.objects.get(self.path)
                    if body is None:
                        self.send_error(404)
                        return
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def store() -> Iterator[_Store]:
    s = _Store()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def test_http_output_is_put_with_the_credentials_and_reads_back(store: _Store, tmp_path: Path) -> None:
    (tmp_path / "authorization").write_text("Bearer t0ken")
    creds = Credentials(tmp_path)
    with pytest.raises(OSError, match="401"):
        write_object(f"{store.url}/out/part-00000.jsonl", b"{}\n")  # no credentials
    write_object(f"{store.url}/out/part-00000.jsonl", b'{"predictions": [1]}\n', creds)
    assert store.objects["/out/part-00000.jsonl"] == b'{"predictions": [1]}\n'
    assert read_object(f"{store.url}/out/part-00000.jsonl", creds) == b'{"predictions": [1]}\n'


def test_http_prefix_cannot_be_listed(store: _Store) -> None:
    with pytest.raises(ValueError, match="cannot be listed"):
        list_prefix(f"{store.url}/in/")


def test_local_prefix_lists_visible_files_in_name_order(tmp_path: Path) -> None:
    for name in ("b.jsonl", "a.jsonl", "_SUCCESS", ".tmp"):
        (tmp_path / name).write_text("x")
    assert list_prefix(f"{tmp_path}/") == [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")]


def test_s3_prefix_lists_the_objects_under_it_in_name_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("moto.server", reason="needs the test extra (moto[server])")
    from tests.support.objectstore import s3_server

    with s3_server() as s3:
        for k, v in s3.env.items():
            monkeypatch.setenv(k, v)
        s3.client().create_bucket(Bucket="data")
        keys = [f"in/{i:04d}.jsonl" for i in range(30)]
        for key in reversed(keys):
            s3.client().put_object(Bucket="data", Key=key, Body=b"x")
        s3.client().put_object(Bucket="data", Key="other/z.jsonl", Body=b"x")
        assert list_prefix("s3://data/in/") == [f"s3://data/{k}" for k in keys]
