"""A real S3-compatible object store on 127.0.0.1: moto's server mode, in a thread of the test process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    # moto takes any keys; the code under test must still send some (and sign with them).
    access_key_id: str = "AKIAEXAMPLEKEY"
    secret_access_key: str = "example-secret"

    @property
    def env(self) -> dict[str, str]:
        """What points boto3 in another process at this server (with keys from the environment)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret_access_key, "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key_id,
                            aws_secret_access_key=self.secret_access_key, region_name="us-east-1")


@contextmanager
def s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()
