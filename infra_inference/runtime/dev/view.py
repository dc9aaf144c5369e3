"""The live view of `infra-inference dev`: replicas, in flight, queue, p95, answers, from the stack's metrics."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table

from infra_inference.decide.autoscaling.observe import quantile
from infra_inference.runtime.metrics import prom
from infra_inference.wire import metrics as names

P95 = 0.95


@dataclass(frozen=True)
class Snapshot:
    desired: int
    ready: int
    inflight: int
    queued: int
    answered: dict[str, int]
    p95_ms: float | None

    def line(self, elapsed_s: float) -> str:
        p95 = "-" if self.p95_ms is None else f"{self.p95_ms:.0f} ms"
        codes = " ".join(f"{c}:{n}" for c, n in sorted(self.answered.items())) or "-"
        return (f"t={elapsed_s:5.1f}s  replicas {self.ready}/{self.desired}  in flight {self.inflight:3d}  "
                f"queued {self.queued:3d}  p95 {p95:>7}  answered {codes}")

    def table(self, url: str, elapsed_s: float) -> Table:
        t = Table(title=f"infra-inference dev  {url}  t={elapsed_s:.0f}s", show_header=True)
        for column in ("replicas (ready/desired)", "in flight", "queued", "p95", "answered"):
            t.add_column(column)
        t.add_row(f"{self.ready}/{self.desired}", str(self.inflight), str(self.queued),
                  "-" if self.p95_ms is None else f"{self.p95_ms:.0f} ms",
                  " ".join(f"{c}: {n}" for c, n in sorted(self.answered.items())) or "-")
        return t


class Sampler:
    """Turns successive scrapes into snapshots; p95 is over the answers since the previous scrape."""

    def __init__(self) -> None:
        self._buckets: dict[float, float] = {}
        self._last_p95: float | None = None

    def snapshot(self, gateway_text: str, autoscaler_text: str) -> Snapshot:
        g = prom.parse(gateway_text) if gateway_text else {}
        a = prom.parse(autoscaler_text) if autoscaler_text else {}
        buckets = prom.buckets(g, names.REQUEST_DURATION)
        delta = {le: c - self._buckets.get(le, 0.0) for le, c in buckets.items()}
        self._buckets = buckets
        p95 = quantile(P95, delta)
        if p95 is not None:
            self._last_p95 = p95 * 1000
        answered = {labels["code"]: int(v) for labels, v in g.get(names.REQUESTS_TOTAL, [])}
        return Snapshot(int(prom.total(a, names.DESIRED_REPLICAS)),
                        int(prom.total(a, names.READY_REPLICAS)),
                        int(prom.total(g, names.INFLIGHT_REQUESTS)),
                        int(prom.total(g, names.QUEUE_DEPTH)), answered, self._last_p95)
