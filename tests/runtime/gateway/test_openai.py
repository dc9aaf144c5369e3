"""The official `openai` client, through the gateway, against the built-in generative model (tiny-lm)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from tests.runtime.gateway.support import Gateway, backend, config, gateway_in_thread
from tests.runtime.server.support import scrape, server_in_thread, wait_until

DELAY_MS = 20


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    # The replica's own small queue covers the moment between the gateway freeing a cancelled stream's
    # slot (it closes the connection) and the replica noticing (at its next token).
    with server_in_thread(model="tiny-lm", token_delay_ms=DELAY_MS, max_concurrency=2, max_queue=2) as (rport, _):
        with gateway_in_thread(config([backend(endpoints=[f"127.0.0.1:{rport}"], max_concurrency=2)],
                                      max_queue=1)) as gw:
            yield gw


def client(gw: Gateway, **options: float) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{gw.port}/v1", api_key="unused", max_retries=0, **options)


def test_models_lists_the_served_model(gateway: Gateway) -> None:
    assert [m.id for m in client(gateway).models.list()] == ["tiny-lm"]


def test_chat_completion_whole_with_usage(gateway: Gateway) -> None:
    answer = client(gateway).chat.completions.create(
        model="tiny-lm", messages=[{"role": "user", "content": "the "}], max_tokens=12, seed=3)
    text = answer.choices[0].message.content or ""
    assert answer.choices[0].finish_reason in ("length", "stop") and 0 < len(text) <= 12
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (4, len(text))
    tokens = scrape(gateway.admin)['infra_inference_generated_tokens_total{deployment="svc",service="svc",variant="main"}']
    assert tokens >= len(text)


def test_chat_completion_streams_token_by_token_and_matches_the_whole_answer(gateway: Gateway) -> None:
    whole = client(gateway).chat.completions.create(
        model="tiny-lm", messages=[{"role": "user", "content": "a "}], max_tokens=20, seed=5, temperature=0)
    start = time.monotonic()
    arrivals, pieces, usage = [], [], None
    for chunk in client(gateway).chat.completions.create(
            model="tiny-lm", messages=[{"role": "user", "content": "a "}], max_tokens=20, seed=5, temperature=0,
            stream=True, stream_options={"include_usage": True}):
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - start)
            pieces.append(chunk.choices[0].delta.content)
    assert "".join(pieces) == whole.choices[0].message.content
    assert usage is not None and usage.completion_tokens == len(pieces)
    # One event per token, spread over the decode time rather than arriving together at the end.
    assert len(pieces) >= 5 and arrivals[-1] - arrivals[0] >= (len(pieces) - 1) * DELAY_MS / 1000 * 0.8


def test_completions_stream_and_not(gateway: Gateway) -> None:
    whole = client(gateway).completions.create(model="tiny-lm", prompt="the", max_tokens=8, temperature=0)
    streamed = "".join(c.choices[0].text for c in client(gateway).completions.create(
        model="tiny-lm", prompt="the", max_tokens=8, temperature=0, stream=True) if c.choices)
    assert streamed == whole.choices[0].text and whole.usage is not None
    assert whole.usage.completion_tokens == len(streamed)


def test_unknown_model_is_a_not_found_error(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client(gateway).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_overload_is_429_and_a_cancelled_stream_frees_its_slot(gateway: Gateway) -> None:
    # 2 replica slots and 1 gateway queue place: 2 long streams and 1 waiting request fill them; one more is 429.
    long = {"model": "tiny-lm", "messages": [{"role": "user", "content": "x"}], "max_tokens": 4000, "stream": True,
            "extra_body": {"ignore_eos": True}}  # 80 s of tokens unless cancelled
    streams = [client(gateway).chat.completions.create(**long) for _ in range(2)]  # type: ignore[call-overload]
    for s in streams:
        next(iter(s))  # each is generating
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(lambda: client(gateway).chat.completions.create(
            model="tiny-lm", messages=[{"role": "user", "content": "x"}], max_tokens=3))
        wait_until(lambda: gateway.app.dispatcher.queued == 1)
        with pytest.raises(openai.RateLimitError):
            client(gateway).chat.completions.create(model="tiny-lm", messages=[{"role": "user", "content": "x"}])
        for s in streams:
            s.close()  # the client goes away mid-generation: the replica stops, the slot goes to the waiting one
        assert waiting.result(timeout=10).choices[0].finish_reason in ("length", "stop")
    wait_until(lambda: gateway.app.dispatcher.backends["svc"].inflight == 0)
    codes = scrape(gateway.admin)
    assert codes['infra_inference_requests_total{code="429",deployment="svc",service="svc",variant="main"}'] >= 1
