"""Bad input against `infra-inference serve` and `gateway`: every answer a 4xx, and the memory it costs.

Starts a replica (`serve --model echo`, default settings) and a gateway in
front of it (static discovery, default settings) as child processes, then
sends each input of the catalogue below on a fresh connection, to the replica
and through the gateway, and checks the answer: a 4xx (or the 503 of a limit
with Retry-After), never a 5xx, no answer within 30 s (a hang), or a process
gone (a crash). Per kind of input (HTTP, OIP v2 bodies, KServe v1 bodies) it
reports the peak RSS of each process (VmHWM, reset through
/proc/PID/clear_refs before each kind), against the rendered memory limits
(replica 4Gi by default, gateway 256Mi).

Two figures from the issue are measured on their own:
- `strings-60kb`: the v2 body of one 20,000-character string and 10,000
  empty ones: the replica's peak RSS, and the slowest /readyz while it is
  decoded (the event loop's stall);
- `roundtrip-32mib`: one 32 MiB echo round trip through the gateway: its
  peak RSS (the gateway's request limit is raised to 48 MiB for it).

    .venv/bin/python benchmarks/bad_inputs.py [--python PYTHON] [--only strings-60kb,roundtrip-32mib]

`--python` runs the replica and the gateway with another interpreter (one
whose infra-inference is an earlier version), for a before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from httpload import free_port

MAIN = "from infra_inference.cli import main; main()"
INFER = b"/v2/models/echo/infer"
PREDICT = b"/v1/models/echo:predict"
ANSWER_WITHIN_S = 30.0
MiB = 2**20


def _post(path: bytes, body: bytes, *headers: bytes) -> bytes:
    head = [b"POST " + path + b" HTTP/1.1", b"host: t", b"content-type: application/json",
            b"content-length: %d" % len(body), *headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _v2(shape: Any, datatype: Any, data: Any, **extra: Any) -> bytes:
    return json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}], **extra}).encode()


def _v1(instances: Any) -> bytes:
    return json.dumps({"instances": instances}).encode()


def http_inputs() -> Iterator[tuple[str, list[bytes]]]:
    """Malformed or abusive HTTP: (name, the parts sent one after another)."""
    yield "not http", [b"NOT HTTP AT ALL\r\n\r\n"]
    yield "binary garbage", [bytes(range(256)) * 4]
    yield "NUL in request line", [b"GET /\x00 HTTP/1.1\r\n\r\n"]
    yield "bad content-length", [b"POST /v2/models/echo/infer HTTP/1.1\r\ncontent-length: nope\r\n\r\n"]
    yield "two content-lengths", [b"POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab"]
    yield "negative content-length", [b"POST / HTTP/1.1\r\ncontent-length: -5\r\n\r\n"]
    yield "content-length and chunked", [b"POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"]
    yield "bad chunk size", [b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"]
    yield "huge chunk size", [b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffff\r\n"]
    yield "declared body over limit", [b"POST /v2/models/echo/infer HTTP/1.1\r\ncontent-length: 99999999999\r\n\r\n"]
    yield "chunked body over limit", [b"POST /v2/models/echo/infer HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
                                      *([b"100000\r\n" + b"x" * 0x100000 + b"\r\n"] * 80)]
    yield "8 MiB header", [b"GET /healthz HTTP/1.1\r\nx-big: ", *([b"a" * MiB] * 8), b"\r\n\r\n"]
    yield "100,000 headers", [b"GET /healthz HTTP/1.1\r\n" + b"x-h: v\r\n" * 100_000 + b"\r\n"]
    yield "long URL", [b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n"]
    yield "bad percent-encoding", [b"GET /%zz%00 HTTP/1.1\r\nhost: t\r\n\r\n"]
    yield "unknown method", [b"BREW /v2/models/echo/infer HTTP/1.1\r\nhost: t\r\n\r\n"]
    yield "unknown route", [b"GET /../../etc/passwd HTTP/1.1\r\nhost: t\r\n\r\n"]
    yield "unknown model", [_post(b"/v2/models/nope/infer", _v2([1], "FP32", [1.0]))]
    yield "HTTP/2 preface", [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]
    yield "HTTP/0.9", [b"GET /\r\n"]
    yield "body a byte at a time", [b"POST /v2/models/echo/infer HTTP/1.1\r\ncontent-length: 100\r\n\r\n{"]


def v2_inputs() -> Iterator[tuple[str, bytes]]:
    """OIP v2 bodies that must be a 400."""
    yield "not JSON", b"{not json"
    yield "JSON array", b"[1, 2, 3]"
    yield "empty object", b"{}"
    yield "inputs not a list", json.dumps({"inputs": {"x": 1}}).encode()
    yield "empty inputs", json.dumps({"inputs": []}).encode()
    yield "tensor not an object", json.dumps({"inputs": [1]}).encode()
    yield "no name", json.dumps({"inputs": [{"shape": [1], "datatype": "FP32", "data": [1.0]}]}).encode()
    yield "unknown datatype", _v2([1], "FP128", [1.0])
    yield "shape not a list", _v2("3", "FP32", [1.0, 2.0, 3.0])
    yield "negative dimension", _v2([-1], "FP32", [])
    yield "shape [0, 2**63]", _v2([0, 2**63], "FP32", [])
    yield "shape [0, 2**62, 2**62]", _v2([0, 2**62, 2**62], "FP32", [])
    yield "65 dimensions", _v2([1] * 65, "FP32", [1.0])
    yield "shape past max_tensor_elements", _v2([2**25], "FP32", [1.0])
    yield "data size mismatch", _v2([3], "FP32", [1.0, 2.0])
    yield "ragged data", _v2([2, 2], "FP32", [[1.0, 2.0], [3.0]])
    yield "mixed [1, 'a'] as BYTES", _v2([2], "BYTES", [1, "a"])
    yield "string as FP32", _v2([1], "FP32", ["1.5"])
    yield "bool as FP32", _v2([2], "FP32", [1.0, True])
    yield "float as INT32", _v2([1], "INT32", [1.5])
    yield "300 as INT8", _v2([1], "INT8", [300])
    yield "-1 as UINT8", _v2([1], "UINT8", [-1])
    yield "2**64 as UINT64", _v2([1], "UINT64", [2**64])
    yield "10**400 as FP64", b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[1' + b"0" * 400 + b"]}]}"
    yield "null element", _v2([2], "FP32", [1.0, None])
    yield "object element", _v2([1], "FP32", [{"a": 1}])
    yield "nesting 100,000 deep", b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}]}"
    yield "duplicate input names", json.dumps({"inputs": [json.loads(_v2([1], "FP32", [1.0]))["inputs"][0]] * 2}).encode()
    yield "parameters not an object", _v2([1], "FP32", [1.0], parameters=[1])
    yield "id not a string", _v2([1], "FP32", [1.0], id=7)
    yield "strings past max_tensor_chars", _v2([2], "BYTES", ["a" * 2**25, "b" * 2**25 + "b"])
    yield "1,000,000 strings of mixed types", _v2([10**6], "BYTES", ["s"] * (10**6 - 1) + [1])
    # The worst for memory: a body just under max_request_bytes (64 MiB; the gateway's 413 at 16)
    # of the smallest elements, refused only after all of it is parsed.
    n = 15 * MiB
    yield "60 MiB of 1-char strings, an integer last", _v2([n + 1], "BYTES", ["s"] * n + [1])


def v1_inputs() -> Iterator[tuple[str, bytes]]:
    """KServe v1 bodies that must be a 400."""
    yield "not JSON", b"\xff\xfe"
    yield "no instances", b'{"inputs": [1]}'
    yield "instances not a list", _v1({"a": 1})
    yield "empty instances", _v1([])
    yield "ragged instances", _v1([[1, 2], [3]])
    yield "mixed [1, 'a']", _v1([1, "a"])
    yield "mixed bool and number", _v1([True, 1.0])
    yield "null instance", _v1([None])
    yield "object instances", _v1([{"a": 1}])
    yield "integer past int64", _v1([-1, 2**63])
    yield "65 dimensions", b'{"instances":' + b"[" * 65 + b"1" + b"]" * 65 + b"}"
    yield "past max_tensor_elements", b'{"instances":[' + b",".join([b"0"] * (2**24 + 1)) + b"]}"
    yield "60 MiB of numbers, a string last", b'{"instances":[' + b"0.5," * (15 * MiB) + b'"s"]}'


# Inputs that must get a 4xx; "body a byte at a time" gets 408 after body_timeout_s (10 s).
OK_STATUSES = range(400, 500)
LIMIT_STATUSES = {503}  # a limit shedding load (Retry-After): also not an error of ours


def _status(port: int, parts: list[bytes]) -> int | str:
    """The status of the first answer, or 'hang' / 'closed' without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN_S) as sock:
        try:
            for part in parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-send: the answer was written before the close
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return "closed" if not data else "truncated"
                data += chunk
        except TimeoutError:
            return "hang"
        except ConnectionResetError:
            return "reset" if not data else int(data.split()[1])
    return int(data.split()[1])


class Process:
    """One child process and its peak RSS."""

    def __init__(self, command: list[str], port: int, cwd: Path | None = None) -> None:
        self.port = port
        self.proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _readyz(port) != 200:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{command} did not start")
            time.sleep(0.05)

    def reset_peak(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS

    def peak_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _readyz(port: int) -> int:
    try:
        return _status(port, [b"GET /readyz HTTP/1.1\r\nhost: t\r\n\r\n"])  # type: ignore[return-value]
    except OSError:
        return 0


# For the 32 MiB round trip: room for it in the gateway.
ROUNDTRIP_GATEWAY = {"max_request_bytes": 48 * MiB, "max_buffered_bytes": 96 * MiB}


def start(python: str, workdir: Path, gateway_fields: dict[str, int] | None = None) -> tuple[Process, Process]:
    replica_port = free_port()
    replica = Process([python, "-c", MAIN, "serve", "--model", "echo", "--host", "127.0.0.1",
                       "--port", str(replica_port)], replica_port, cwd=workdir)
    fields = gateway_fields or {}
    # Versions before the admin port, or before the byte budget, refuse the fields they do not know.
    attempts = [{"admin_port": 0, **fields}, fields,
                {k: v for k, v in fields.items() if k == "max_request_bytes"}]
    for i, attempt in enumerate(attempts):
        try:
            return replica, _gateway(python, workdir, replica_port, attempt)
        except RuntimeError:
            if i == len(attempts) - 1:
                raise
    raise AssertionError("unreachable")


def _gateway(python: str, workdir: Path, replica_port: int, fields: dict[str, int]) -> Process:
    port = free_port()
    config: dict[str, Any] = {"service": "echo", "host": "127.0.0.1", "port": port, "discovery": "static",
                              "backends": [{"variant": "main", "deployment": "echo",
                                            "endpoints": [f"127.0.0.1:{replica_port}"]}], **fields}
    (workdir / "gateway.json").write_text(json.dumps(config))
    return Process([python, "-c", MAIN, "gateway", "--config", str(workdir / "gateway.json")], port, cwd=workdir)


def catalogue(replica: Process, gateway: Process) -> dict[str, Any]:
    """Every input to both processes: counts by outcome, the failures, and the peak RSS per kind."""
    kinds: dict[str, Callable[[], Iterator[tuple[str, list[bytes]]]]] = {
        "HTTP": http_inputs,
        "OIP v2 body": lambda: ((n, [_post(INFER, b)]) for n, b in v2_inputs()),
        "KServe v1 body": lambda: ((n, [_post(PREDICT, b)]) for n, b in v1_inputs()),
    }
    report: dict[str, Any] = {"tried": 0, "4xx": 0, "503 limit": 0, "failures": [], "peak_mib": {}}
    for kind, inputs in kinds.items():
        for process in (replica, gateway):
            process.reset_peak()
        for name, parts in inputs():
            for where, process in (("replica", replica), ("gateway", gateway)):
                status = _status(process.port, parts)
                report["tried"] += 1
                if isinstance(status, int) and status in OK_STATUSES:
                    report["4xx"] += 1
                elif status in LIMIT_STATUSES:
                    report["503 limit"] += 1
                else:
                    report["failures"].append(f"{kind} / {name} -> {where}: {status}")
                if not process.alive():
                    report["failures"].append(f"{kind} / {name} -> {where}: process exited")
                    return report
        report["peak_mib"][kind] = {"replica": replica.peak_mib(), "gateway": gateway.peak_mib()}
    return report


def strings_60kb(replica: Process) -> dict[str, float]:
    """The issue's BYTES body: the replica's peak RSS and its slowest probe while decoding."""
    body = _post(INFER, _v2([10_001], "BYTES", ["a" * 20_000] + [""] * 10_000))
    replica.reset_peak()
    before = replica.peak_mib()
    slowest = 0.0
    result: dict[str, Any] = {}
    sender = threading.Thread(target=lambda: result.update(status=_status(replica.port, [body])))
    start = time.monotonic()
    sender.start()
    while sender.is_alive():
        probe = time.monotonic()
        _readyz(replica.port)
        slowest = max(slowest, time.monotonic() - probe)
    return {"status": result["status"], "rss_before_mib": before, "peak_mib": replica.peak_mib(),
            "slowest_probe_s": slowest, "request_s": time.monotonic() - start, "body_kib": len(body) / 1024}


def roundtrip_32mib(gateway: Process) -> dict[str, float]:
    """One 32 MiB echo round trip through the gateway: its peak RSS."""
    values = "0.5," * (8 * MiB - 1) + "0.5"  # 32 MiB of JSON numbers
    body = b'{"inputs":[{"name":"x","shape":[%d],"datatype":"FP64","data":[%s]}]}' % (8 * MiB, values.encode())
    gateway.reset_peak()
    before = gateway.peak_mib()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=120) as sock:
        sock.sendall(_post(INFER, body))
        stream = sock.makefile("rb")
        status = int(stream.readline().split()[1])
        length = 0
        while (line := stream.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        stream.read(length)
    return {"status": status, "body_mib": len(body) / MiB, "rss_before_mib": before, "peak_mib": gateway.peak_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="Interpreter that runs the replica and gateway.")
    parser.add_argument("--only", default="catalogue,strings-60kb,roundtrip-32mib")
    args = parser.parse_args()
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        replica, gateway = start(args.python, Path(tmp), ROUNDTRIP_GATEWAY)
        try:
            if "strings-60kb" in only:
                print("strings-60kb", json.dumps(strings_60kb(replica)))
            if "roundtrip-32mib" in only:
                print("roundtrip-32mib", json.dumps(roundtrip_32mib(gateway)))
        finally:
            replica.stop()
            gateway.stop()
        if "catalogue" in only:
            replica, gateway = start(args.python, Path(tmp))  # as rendered: default limits
            try:
                report = catalogue(replica, gateway)
            finally:
                replica.stop()
                gateway.stop()
            print("catalogue", json.dumps(report, indent=1))
            if report["failures"]:
                sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
