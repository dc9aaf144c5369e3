"""Text generation on the model server: tiny-lm over OIP generate / generate_stream and OpenAI routes."""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from infra_inference.runtime.server.loading import safetensors
from infra_inference.runtime.server.models.tiny_lm import WEIGHTS, build_weights
from tests.runtime.server.support import post, request, scrape, server_in_thread, wait_until


def _stream(port: int, path: str, doc: dict) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=json.dumps(doc).encode(), headers={"content-type": "application/json"})
    return conn, conn.getresponse()


def test_the_shipped_weights_are_what_build_weights_makes(tmp_path: Path) -> None:
    build_weights(tmp_path / "w.safetensors")
    shipped, rebuilt = safetensors.load_file(WEIGHTS), safetensors.load_file(tmp_path / "w.safetensors")
    assert shipped.keys() == rebuilt.keys() == {"vocab", "logits"}
    assert all(np.array_equal(shipped[k], rebuilt[k]) for k in shipped)
    assert WEIGHTS.stat().st_size < 8192


def test_generate_and_generate_stream_give_the_same_text_token_by_token() -> None:
    with server_in_thread(model="tiny-lm") as (port, _):
        doc = {"text_input": "the ", "parameters": {"max_tokens": 30, "temperature": 0}}
        whole = post(port, "/v2/models/tiny-lm/generate", doc).json()
        assert whole["model_name"] == "tiny-lm" and 0 < len(whole["text_output"]) <= 30
        conn, response = _stream(port, "/v2/models/tiny-lm/generate_stream", doc)
        assert response.getheader("content-type") == "text/event-stream"
        events = [json.loads(line[6:]) for line in response.read().split(b"\n") if line.startswith(b"data: ")]
        conn.close()
        assert "".join(e["text_output"] for e in events) == whole["text_output"]
        assert all(len(e["text_output"]) == 1 for e in events)


def test_seeded_sampling_repeats_and_different_seeds_differ() -> None:
    with server_in_thread(model="tiny-lm") as (port, _):
        def text(seed: int) -> str:
            doc = {"text_input": "a", "parameters": {"max_tokens": 40, "seed": seed, "ignore_eos": True}}
            return post(port, "/v2/models/tiny-lm/generate", doc).json()["text_output"]

        assert text(1) == text(1) and text(1) != text(2) and len(text(1)) == 40


@pytest.mark.parametrize(("doc", "message"), [
    ({"parameters": {}}, "'text_input' must be a string"),
    ({"text_input": "a", "parameters": {"max_tokens": -1}}, "max_tokens must be an integer in [0, 4096]"),
    ({"text_input": "a", "parameters": {"temperature": "hot"}}, "temperature must be a number >= 0"),
])
def test_bad_generation_input_is_400_naming_the_field(doc: dict, message: str) -> None:
    with server_in_thread(model="tiny-lm") as (port, _):
        reply = post(port, "/v2/models/tiny-lm/generate", doc)
        assert reply.status == 400 and message in reply.json()["error"]


def test_a_model_that_does_not_generate_says_so() -> None:
    with server_in_thread() as (port, _):
        reply = post(port, "/v1/completions", {"model": "echo", "prompt": "hi"})
        assert reply.status == 400 and "does not generate text" in reply.json()["error"]["message"]


def test_a_client_leaving_mid_stream_stops_the_generation_and_frees_the_slot() -> None:
    with server_in_thread(model="tiny-lm", token_delay_ms=10, max_concurrency=1) as (port, _):
        conn, response = _stream(port, "/v2/models/tiny-lm/generate_stream",
                                 {"text_input": "a", "parameters": {"max_tokens": 4000, "ignore_eos": True}})
        assert response.read1(4096).startswith(b"data: ")
        assert scrape(port)["infra_inference_inflight_requests"] == 1
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        wait_until(lambda: scrape(port)["infra_inference_inflight_requests"] == 0, timeout_s=5)


def test_a_deadline_passed_mid_stream_ends_it_with_an_error_event_not_a_short_answer() -> None:
    with server_in_thread(model="tiny-lm", token_delay_ms=10, timeout_s=0.3) as (port, _):
        conn, response = _stream(port, "/v1/completions",
                                 {"prompt": "a", "max_tokens": 1000, "stream": True, "ignore_eos": True})
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
        conn.close()
        assert b"event: error" in cut.value.partial and b"timeout_s=0.3" in cut.value.partial
        assert b"[DONE]" not in cut.value.partial


def test_a_generation_answered_504_before_its_first_token_writes_nothing_more() -> None:
    """A times out before its first token while B, its batch-mate, still generates: the model's next token for A
    must not open a stream on A's connection (now carrying A's next request) nor fail B's batch."""
    # A at 0 s waits (max_wait 1.6 s) for B at 1.2 s; their batch's first tokens come at 2.4 s, after A's
    # deadline (2.0 s) and before B's (3.2 s).
    with server_in_thread(model="tiny-lm", max_concurrency=2, max_batch_size=2, max_wait_ms=1600, timeout_s=2.0,
                          token_delay_ms=1200) as (port, _):
        doc = {"text_input": "a", "parameters": {"max_tokens": 1, "ignore_eos": True}}
        a = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        a.request("POST", "/v2/models/tiny-lm/generate_stream", body=json.dumps(doc).encode())
        time.sleep(1.2)
        b, b_answer = _stream(port, "/v2/models/tiny-lm/generate_stream", doc)
        first = a.getresponse()
        assert first.status == 504 and b"timeout_s=2" in first.read()
        # A's next request on the same connection, waiting for a batch-mate when the batch's token comes.
        a.request("POST", "/v2/models/tiny-lm/generate", body=json.dumps({"text_input": "a", "parameters": {
            "max_tokens": 0}}).encode())
        b_body = b_answer.read()
        second = a.getresponse()
        assert (second.status, second.getheader("content-type")) == (200, "application/json")
        assert json.loads(second.read())["text_output"] == ""
        assert b_body.startswith(b"data: ") and b"error" not in b_body
        a.close()
        b.close()


def test_v1_models_lists_the_served_name() -> None:
    with server_in_thread(model="tiny-lm", model_name="chat") as (port, _):
        assert [m["id"] for m in request(port, "GET", "/v1/models").json()["data"]] == ["chat"]
        assert post(port, "/v1/chat/completions", {"model": "chat", "messages": [{"role": "user", "content": "hi"}],
                                                   "max_tokens": 2}).status == 200
