"""`infra-inference dev MODEL`: the whole service on this machine, with a live view and an optional demo load."""

from __future__ import annotations

import asyncio
import sys
import time

import typer
from rich.console import Console
from rich.live import Live

from infra_inference.runtime.dev.load import DEMO_PHASES, LoadResult, run_phases
from infra_inference.runtime.dev.stack import DevStack
from infra_inference.runtime.dev.view import Sampler
from infra_inference.specs.autoscale import ScalingSpec

VIEW_PERIOD_S = 0.5
# The decider idles 12 learned cold starts before zero: 12 x 1 s on an idle laptop, 12 x 5-8 s where
# replicas start slowly on a loaded machine.
DEMO_SETTLE_TIMEOUT_S = 120.0


def dev(
    model: str = typer.Argument("echo", help="What `serve --model` takes: echo, safetensors-mlp, pkg.mod:Class."),
    model_name: str = typer.Option("", help="Name in URLs (default: the model's)."),
    metric: str = typer.Option("concurrency", help="concurrency | throughput | latency | cpu-utilization | ..."),
    target: float | None = typer.Option(None, help="Per replica; default 70 % of max_concurrency in flight."),
    min_replicas: int = typer.Option(0, "--min"),
    max_replicas: int = typer.Option(4, "--max"),
    scale_to_zero_after: float = typer.Option(10.0, "--scale-to-zero-after", help="Idle seconds; 0 = never."),
    max_concurrency: int = typer.Option(8, help="Requests in flight per replica."),
    echo_delay_ms: float = typer.Option(50.0, help="echo: compute per batch, standing in for a GPU."),
    stable_window: float = typer.Option(10.0, help="Stable window, seconds."),
    port: int = typer.Option(8080, help="Gateway port (0: any free one)."),
    demo: bool = typer.Option(False, help="Send a short generated load (idle, trickle, burst, idle), wait for "
                                          "zero replicas, print a summary and exit (non-zero if any request failed)."),
) -> None:
    """Run gateway, autoscaler and replicas as local processes: the same code paths as in a cluster."""
    policy = ScalingSpec.parse({
        "metric": metric, "target": target, "min_replicas": min_replicas, "max_replicas": max_replicas,
        "scale_to_zero_after_s": scale_to_zero_after if min_replicas == 0 else 0,
        "stable_window_s": stable_window, "panic_window_s": min(2.0, stable_window),
        "scale_down_window_s": stable_window,
    }, subject="dev")
    policy = policy.model_copy(update={"target": policy.resolved_target(max_concurrency)})
    serve_args = ["--model", model, "--echo-delay-ms", f"{echo_delay_ms:g}"]
    if model_name:
        serve_args += ["--model-name", model_name]
    served = model_name or model.rsplit(":", 1)[-1].lower()
    console = Console()
    with DevStack(policy, serve_args, max_concurrency, port=port, model=served) as stack:
        console.print(f"gateway: {stack.url}/v2/models/{served}/infer   "
                      f"(autoscaler metrics: http://127.0.0.1:{stack.metrics_port}/metrics)")
        result = LoadResult()
        try:
            asyncio.run(_watch(stack, console, result if demo else None))
        except KeyboardInterrupt:
            pass
    if demo:
        console.print(f"demo: {sum(result.codes.values())} requests, answers {dict(result.codes)}, "
                      f"first answer from zero after {result.first_answer_s or 0:.2f}s")
        sys.exit(1 if result.failed else 0)


async def _watch(stack: DevStack, console: Console, demo: LoadResult | None) -> None:
    """The live view until Ctrl-C, or with a demo, until the load is over and replicas are back at zero."""
    sampler, start = Sampler(), time.monotonic()
    load = asyncio.create_task(run_phases(stack.url, stack.model, DEMO_PHASES, demo)) if demo else None
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    last_line = ""
    if live:
        live.start()
    try:
        while True:
            await asyncio.sleep(VIEW_PERIOD_S)
            snap = sampler.snapshot(*await asyncio.gather(asyncio.to_thread(stack.gateway_metrics),
                                                          asyncio.to_thread(stack.autoscaler_metrics)))
            elapsed = time.monotonic() - start
            if live:
                live.update(snap.table(stack.url, elapsed), refresh=True)
            else:
                line = snap.line(elapsed)
                if line[line.index("replicas"):] != last_line:  # on changes, not every tick
                    console.print(line, highlight=False, soft_wrap=True)
                    last_line = line[line.index("replicas"):]
            if load is not None and load.done():
                if snap.desired == 0 and snap.ready == 0:
                    return
                if elapsed > DEMO_SETTLE_TIMEOUT_S + sum(s for s, _ in DEMO_PHASES):
                    console.print("demo: replicas did not return to zero in time")
                    return
    finally:
        if live:
            live.stop()
