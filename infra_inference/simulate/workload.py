"""Seeded request traces for the autoscaling simulator: a synthetic one, and LLM inference shaped like production.

A trace is a list of `Request`s (arrival time, seconds in a replica), sorted
by arrival. Every generator takes a seed; the benchmark tunes on some seeds
and reports on others, so no default is fitted to one trace.

The LLM traces follow what published characterizations of production LLM
inference report:
- Token lengths are heavy-tailed, and differ by use: in Azure's LLM
  inference traces (Splitwise, Patel et al., ISCA 2024) conversation
  prompts have a median of ~1,020 tokens and outputs ~129, coding prompts
  ~1,500 and outputs ~13. Both are drawn lognormal here (BurstGPT fits
  Zipf to request lengths: a long right tail either way), capped at
  context limits.
- Arrivals are burstier than Poisson: BurstGPT (Wang et al., 10.31 M Azure
  OpenAI requests over 213 days) fits inter-arrival times with a Gamma
  distribution whose shape is below 1 (coefficient of variation above 1).
  Here a Gamma renewal process, its rate following a diurnal curve
  (compressed to one "day" an hour, as in the synthetic trace).
- Small services idle: ON/OFF periods, the OFF ones 30-240 s, the gaps a
  scale-to-zero policy must decide about.

The service model is token-based: a request takes its prefill (prompt
tokens / prefill throughput) plus one decode step per output token, and a
replica runs `max_concurrency` sequences at once with continuous batching (a
sequence joins as soon as another leaves), so a request's seconds in a
replica do not depend on who else is there: the decode step is taken at
the full batch, the replica's worst case.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    """One request: when it arrives, and how long it keeps one of a replica's slots."""

    at: float
    service_s: float


@dataclass(frozen=True)
class TokenModel:
    """A replica's speed: prefill tokens per second, and seconds per decode step at its full batch.

    An 8B model on one H100 at a batch of 8: prefill ~8,000 tokens/s, a
    decode step ~30 ms. A 1,020-token prompt with a 129-token answer:
    1020 / 8000 + 129 x 0.03 = 0.13 + 3.87 = 4.0 s in a replica.
    """

    prefill_tokens_per_s: float = 8000.0
    decode_step_s: float = 0.03

    def service_s(self, prompt_tokens: int, output_tokens: int) -> float:
        return prompt_tokens / self.prefill_tokens_per_s + output_tokens * self.decode_step_s


@dataclass(frozen=True)
class LlmProfile:
    """The statistics of one LLM service's traffic.

    Attributes:
        name: What it stands for.
        mean_rps: Arrival rate averaged over a day (while ON).
        diurnal: Peak-to-mean swing of the daily curve: 0.5 goes from 0.5x to 1.5x the mean.
        gamma_shape: Shape of the Gamma inter-arrival times; below 1 is burstier than Poisson
            (coefficient of variation 1 / sqrt(shape): 0.5 -> 1.41).
        prompt_median, prompt_sigma: Lognormal prompt tokens (sigma of the log).
        output_median, output_sigma: Lognormal output tokens.
        max_tokens: Cap on either (the context limit).
        on_s: Mean seconds of an ON period (exponential); 0: always on.
        off_s: (shortest, longest) seconds of an OFF period, log-uniform between.
    """

    name: str
    mean_rps: float
    diurnal: float
    gamma_shape: float
    prompt_median: float
    prompt_sigma: float
    output_median: float
    output_sigma: float
    max_tokens: int = 4096
    on_s: float = 0.0
    off_s: tuple[float, float] = (30.0, 240.0)


# A chat assistant: steady, Splitwise's conversation lengths, 2-6 req/s over the day.
CHAT = LlmProfile("llm-chat", mean_rps=4.0, diurnal=0.5, gamma_shape=0.5, prompt_median=1020, prompt_sigma=0.9,
                  output_median=129, output_sigma=1.0, max_tokens=1400)
# A code-completion service: Splitwise's coding lengths (long prompts, short answers), burstier
# arrivals, and ON/OFF use with idle gaps of 30-240 s: ~40 % of the hour idle.
CODE = LlmProfile("llm-code", mean_rps=6.0, diurnal=0.5, gamma_shape=0.25, prompt_median=1500,
                  prompt_sigma=1.0, output_median=13, output_sigma=1.3, max_tokens=4096, on_s=150.0)

PROFILES = {p.name: p for p in (CHAT, CODE)}


def llm(profile: LlmProfile, hours: float, seed: int, model: TokenModel = TokenModel()) -> list[Request]:
    """Requests of `profile` for `hours`, reproducible from `seed`."""
    rng = random.Random(seed)
    duration = hours * 3600.0
    out: list[Request] = []
    t = 0.0
    on_until = _on_period(rng, profile, 0.0)
    while True:
        rate = profile.mean_rps * (1 - profile.diurnal * math.cos(2 * math.pi * t / 3600))
        t += rng.gammavariate(profile.gamma_shape, 1 / (profile.gamma_shape * max(rate, 1e-6)))
        if t >= on_until:  # an idle gap, then the next ON period
            lo, hi = profile.off_s
            t = on_until + math.exp(rng.uniform(math.log(lo), math.log(hi)))
            on_until = _on_period(rng, profile, t)
            continue
        if t >= duration:
            return out
        prompt = _tokens(rng, profile.prompt_median, profile.prompt_sigma, profile.max_tokens)
        output = _tokens(rng, profile.output_median, profile.output_sigma, profile.max_tokens)
        out.append(Request(t, model.service_s(prompt, output)))


def _on_period(rng: random.Random, profile: LlmProfile, start: float) -> float:
    return math.inf if profile.on_s <= 0 else start + rng.expovariate(1 / profile.on_s)


def _tokens(rng: random.Random, median: float, sigma: float, cap: int) -> int:
    return max(1, min(cap, round(rng.lognormvariate(math.log(median), sigma))))


# --- the synthetic trace ------------------------------------------------------------------------

SYNTHETIC_SERVICE_S = 0.1  # a GPU forward pass of a small model


def synthetic_rates(hours: float, seed: int) -> list[float]:
    """Arrival rate (req/s) per second: diurnal base, sudden bursts, and idle gaps long enough for zero.

    The "day" is compressed to 1 h so a 2 h trace has two. Base 20..120 req/s;
    ~6 bursts an hour of 20-90 s at 3-5x; ~2 idle gaps an hour of 3-8 minutes.
    """
    rng = random.Random(seed)
    n = int(hours * 3600)
    rate = [20 + 100 * (0.5 - 0.5 * math.cos(2 * math.pi * t / 3600)) for t in range(n)]
    for _ in range(int(6 * hours)):
        start, length, factor = rng.randrange(n), rng.randint(20, 90), rng.uniform(3, 5)
        for t in range(start, min(n, start + length)):
            rate[t] *= factor
    for _ in range(int(2 * hours)):
        start, length = rng.randrange(n), rng.randint(180, 480)
        for t in range(start, min(n, start + length)):
            rate[t] = 0.0
    return rate


def poisson(rate: list[float], seed: int, service_s: float = SYNTHETIC_SERVICE_S) -> list[Request]:
    """Poisson arrivals for per-second rates, each request taking `service_s`."""
    rng = random.Random(seed + 1)
    out: list[Request] = []
    for second, r in enumerate(rate):
        t = float(second)
        while r > 0:
            t += rng.expovariate(r)
            if t >= second + 1:
                break
            out.append(Request(t, service_s))
    return out


def synthetic(hours: float, seed: int) -> list[Request]:
    """The synthetic trace: 100 ms requests on `synthetic_rates`."""
    return poisson(synthetic_rates(hours, seed), seed)
