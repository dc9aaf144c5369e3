"""What the gateway holds in memory: bodies once each, answers capped, all of it under one budget."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

from infra_inference.render import render_stack
from infra_inference.wire.gateway import GatewayConfig
from tests.runtime.gateway.support import backend, config, gateway_in_thread
from tests.runtime.server.support import request, server_in_thread, v2_body, wait_until

INFER = "/v2/models/echo/infer"
MiB = 2**20


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _echo_body(mib: int) -> bytes:
    count = mib * MiB // 4  # "0.5," per value
    return b'{"inputs":[{"name":"x","shape":[%d],"datatype":"FP64","data":[%s]}]}' % (
        count, b",".join([b"0.5"] * count))


def test_a_large_round_trip_costs_the_gateway_about_the_request_plus_the_answer(tmp_path: Path) -> None:
    body = _echo_body(15)  # under the default max_request_bytes (16 MiB)
    with server_in_thread(max_request_bytes=64 * MiB) as (rport, _):
        cfg = config([backend(endpoints=[f"127.0.0.1:{rport}"])])
        (tmp_path / "gateway.json").write_text(cfg.model_dump_json())
        gateway = subprocess.Popen([sys.executable, "-c", "from infra_inference.cli import main; main()", "gateway",
                                    "--config", str(tmp_path / "gateway.json"), "--port", "0", "--log-level", "info"],
                                   stderr=subprocess.PIPE, text=True)
        try:
            assert gateway.stderr is not None
            port = next(int(line.split("running on http://", 1)[1].split(":")[1].split()[0])
                        for line in gateway.stderr if "running on http://" in line)
            threading.Thread(target=gateway.stderr.read, daemon=True).start()
            wait_until(lambda: request(port, "POST", INFER, json.dumps(v2_body([1.0])).encode()).status == 200)
            Path(f"/proc/{gateway.pid}/clear_refs").write_text("5")  # peak RSS := RSS now
            before = _peak_rss_mib(gateway.pid)
            reply = request(port, "POST", INFER, body, timeout_s=120)
            assert reply.status == 200 and len(reply.body) > len(body)
            grew = _peak_rss_mib(gateway.pid) - before
            # 15 MiB in and 15 MiB out, each held once: ~30 MiB (it held each ~2.5 times: ~75).
            assert grew < 2.5 * 15, grew
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)


def test_bodies_past_max_buffered_bytes_get_503_with_retry_after_until_one_is_answered() -> None:
    body = json.dumps(v2_body([0.5] * 20_000)).encode()  # ~100 KB
    with server_in_thread() as (rport, _):
        cfg = config([backend(endpoints=[f"127.0.0.1:{rport}"])], max_buffered_bytes=150_000)
        with gateway_in_thread(cfg) as (gport, _, app):
            slow = socket.create_connection(("127.0.0.1", gport))
            with slow:  # headers and most of one body: 100 KB held
                slow.sendall(b"POST %s HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n%s" % (
                    INFER.encode(), len(body), body[:-10]))
                wait_until(lambda: app.budget.held_bytes == len(body))
                reply = request(gport, "POST", INFER, body)  # 100 KB more would pass 150 KB
                assert reply.status == 503 and reply.headers["retry-after"] == "1"
                assert "max_buffered_bytes=150000" in reply.json()["error"]
                slow.sendall(body[-10:])
                assert slow.recv(12) == b"HTTP/1.1 200"
            wait_until(lambda: app.budget.held_bytes == 0)
            assert request(gport, "POST", INFER, body).status == 200


def test_the_default_limits_fit_the_rendered_gateway_memory() -> None:
    objects = render_stack({"services": {"chat": {"model": {"uri": "m"}}}})
    [gateway] = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "chat-gateway"]
    limit_mib = int(gateway["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"][:-2])
    defaults = GatewayConfig(backends=[backend()])
    # ~70 MiB at rest, every budgeted byte held once (answers past 256 KiB are relayed, not held).
    worst_mib = 70 + defaults.max_buffered_bytes / MiB
    assert defaults.max_request_bytes <= defaults.max_buffered_bytes
    assert worst_mib < limit_mib, (worst_mib, limit_mib)
