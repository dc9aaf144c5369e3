"""`tiny-lm`: a character-level bigram generator, for tests and demos of token streaming.

Not a language model anyone would use; a stand-in with the shape of one. Its
weights are a safetensors file (`tiny_lm.safetensors`, shipped with the
package, 3 KB; `build_weights` makes it from the corpus below): `vocab`
(int32 code points, `[V]`) and `logits` (float32 `[V, V]`, the log of
smoothed bigram counts, row = previous character). Each token is one
character, sampled from the previous one's row with the request's
`temperature` and `seed`; generation stops at `max_tokens` or at the
end-of-line token (finish reason "stop", as an LLM's end-of-sequence)
unless `ignore_eos` (vLLM's parameter of that name) asks it to go on.

Decode time is simulated: each token costs `token_delay_ms` (an asyncio
sleep, so like a GPU decode step it holds a concurrency slot but not the
CPU). A request streams when it carries a `TokenSink` (the HTTP layer's
server-sent events): every token goes to it as it is made, and a sink whose
client went away stops the generation, freeing the slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from infra_inference.runtime.server.loading import safetensors
from infra_inference.runtime.server.model import InferRequest, InvalidInput, ModelContext, Tensors

WEIGHTS = Path(__file__).with_name("tiny_lm.safetensors")
END = "\n"  # the end-of-sequence token
MAX_TOKENS_LIMIT = 4096

CORPUS = """\
the gateway queues a burst instead of letting it time out on one busy replica.
a replica loads its model from the node cache and says it is ready.
the autoscaler reads concurrency from the gateway and asks for more replicas.
when traffic stops the service scales to zero and the gpu goes back to the pool.
standby nodes hide the cold start of a new gpu node from the first request.
tokens stream to the client as the model makes them, one event at a time.
a canary takes ten percent of the traffic until its latency is known to be good.
"""


def build_weights(path: Path = WEIGHTS, corpus: str = CORPUS, smoothing: float = 0.05) -> None:
    """Write the bigram table of ``corpus`` to ``path`` (what ships as ``tiny_lm.safetensors``)."""
    from safetensors.numpy import save_file

    chars = sorted(set(corpus) | {END})
    index = {c: i for i, c in enumerate(chars)}
    counts = np.full((len(chars), len(chars)), smoothing, dtype=np.float64)
    for line in corpus.splitlines():
        text = END + line + END  # a line starts after an end token and ends with one
        for prev, nxt in zip(text, text[1:], strict=False):
            counts[index[prev], index[nxt]] += 1.0
    logits = np.log(counts / counts.sum(axis=1, keepdims=True)).astype(np.float32)
    save_file({"vocab": np.array([ord(c) for c in chars], dtype=np.int32), "logits": logits}, str(path))


class TinyLM:
    """Character bigrams from safetensors; ``predict`` generates each request's text, token by token."""

    def __init__(self, context: ModelContext) -> None:
        self._context = context
        self._delay_s = context.settings.token_delay_ms / 1000.0
        self._chars: list[str] = []
        self._index: dict[str, int] = {}
        self._logits = np.zeros((0, 0), dtype=np.float32)

    def load(self) -> None:
        path = self._context.path or WEIGHTS
        if path.is_dir():
            path = path / "tiny_lm.safetensors"
        tensors = safetensors.load_file(path)
        self._chars = [chr(c) for c in tensors["vocab"].tolist()]
        self._index = {c: i for i, c in enumerate(self._chars)}
        self._logits = tensors["logits"]

    def tokens(self, text: str) -> int:
        """How many tokens ``text`` is (one per character)."""
        return len(text)

    async def predict(self, batch: Sequence[InferRequest]) -> list[Tensors]:
        # Every request's arguments are checked before any token is made: a bad one fails
        # alone (the server answers each of a failed batch on its own), with nothing streamed twice.
        arguments = [_arguments(r) for r in batch]
        return list(await asyncio.gather(*(self._generate(r, *a) for r, a in zip(batch, arguments, strict=True))))

    async def _generate(self, request: InferRequest, prompt: str, max_tokens: int, temperature: float,
                        seed: int) -> Tensors:
        sink = request.tokens
        ignore_eos = request.parameters.get("ignore_eos") is True
        rng = np.random.default_rng(seed)
        prev = self._index.get(prompt[-1:], self._index[END])
        out: list[str] = []
        finish = "length"
        while len(out) < max_tokens:
            if sink is not None and sink.cancelled:
                finish = "cancelled"
                break
            if self._delay_s:
                await asyncio.sleep(self._delay_s)
            prev = self._sample(prev, temperature, rng)
            token = self._chars[prev]
            if token == END:
                if ignore_eos:
                    continue  # the next token follows the end token, as at the start of a line
                finish = "stop"
                break
            out.append(token)
            if sink is not None:
                sink.emit(token)
        return {
            "text_output": np.array(["".join(out)], dtype=object),
            "finish_reason": np.array([finish], dtype=object),
            "prompt_tokens": np.array([len(prompt)], dtype=np.int64),
            "completion_tokens": np.array([len(out)], dtype=np.int64),
        }

    def _sample(self, prev: int, temperature: float, rng: np.random.Generator) -> int:
        row = self._logits[prev]
        if temperature <= 0.0:
            return int(row.argmax())
        weights = np.exp((row - row.max()) / temperature)
        return int(rng.choice(len(weights), p=weights / weights.sum()))


def _arguments(request: InferRequest) -> tuple[str, int, float, int]:
    """prompt, max_tokens, temperature, seed from a request (InvalidInput naming the bad one)."""
    text = request.inputs.get("text_input")
    if text is None or text.size != 1:
        raise InvalidInput("tiny-lm takes one input 'text_input' holding one string (the prompt)")
    prompt = text.reshape(-1)[0]
    prompt = prompt.decode() if isinstance(prompt, bytes) else str(prompt)
    params = request.parameters
    max_tokens = params.get("max_tokens", 16)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 0 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise InvalidInput(f"max_tokens must be an integer in [0, {MAX_TOKENS_LIMIT}], got {max_tokens!r}")
    temperature = params.get("temperature", 1.0)
    if not isinstance(temperature, int | float) or isinstance(temperature, bool) or temperature < 0:
        raise InvalidInput(f"temperature must be a number >= 0, got {temperature!r}")
    seed = params.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InvalidInput(f"seed must be an integer, got {seed!r}")
    return prompt, max_tokens, float(temperature), seed
