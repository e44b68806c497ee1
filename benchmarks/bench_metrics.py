"""How much the simulated engine pays for its vLLM metrics, per call.

The engine updates one ``VllmMetrics`` per pod on its hot path (an ITL observation per decode step
per running sequence, a TTFT per request, an iteration-size observation per step), so these costs
multiply by millions per simulated hour. Run: ``.venv/bin/python benchmarks/bench_metrics.py``.
Numbers are the best of 5 repeats, in nanoseconds (or microseconds) per call, on whatever CPU runs
it; prometheus_client's own ``Histogram.observe`` is measured alongside for scale.
"""

from __future__ import annotations

import tempfile
import timeit
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client import Histogram as ClientHistogram

from simulator.metrics import (
    ITL_BUCKETS,
    GatewayMetrics,
    Histogram,
    OpenMetricsWriter,
    VllmMetrics,
    render_prometheus_text,
)


def per_call(stmt: str, number: int, env: dict[str, object]) -> float:
    """Best-of-5 seconds per execution of ``stmt``."""
    return min(timeit.repeat(stmt, globals=env, number=number, repeat=5)) / number


def main() -> None:
    pod = VllmMetrics("llama", extra_labels={"pod": "p0"})
    for i in range(1000):
        pod.time_to_first_token.observe(0.05 + i * 1e-4)
        pod.inter_token_latency.observe_arithmetic(0.02, 1e-5, 50, weight=32)
    hist = Histogram(ITL_BUCKETS)
    client = ClientHistogram("x", "x", buckets=ITL_BUCKETS, registry=CollectorRegistry())
    env: dict[str, object] = {
        "pod": pod,
        "hist": hist,
        "client": client,
        "render": render_prometheus_text,
    }

    rows: list[tuple[str, float, str]] = [
        ("counter += n (attribute)", per_call("pod.prompt_tokens += 17", 1_000_000, env), "ns"),
        ("request_success('stop')", per_call("pod.request_success('stop')", 1_000_000, env), "ns"),
        ("Histogram.observe", per_call("hist.observe(0.0321)", 1_000_000, env), "ns"),
        ("prometheus_client Histogram.observe",
         per_call("client.observe(0.0321)", 200_000, env), "ns"),
        (
            "observe_arithmetic k=200 w=64, 3 buckets",
            per_call("hist.observe_arithmetic(0.02, 0.0002, 200, 64)", 100_000, env),
            "ns",
        ),
        (
            "same stretch as a naive loop of observe",
            per_call("for j in range(200): hist.observe(0.02 + j * 0.0002, 64)", 2_000, env),
            "ns",
        ),
        ("VllmMetrics.snapshot", per_call("pod.snapshot()", 20_000, env), "us"),
        ("VllmMetrics.samples", per_call("pod.samples()", 2_000, env), "us"),
        ("render_prometheus_text, 1 pod", per_call("render([pod])", 1_000, env), "us"),
    ]  # fmt: skip

    pods = [VllmMetrics("llama", extra_labels={"pod": f"p{i}"}) for i in range(50)]
    gateway = GatewayMetrics("pool", "llama")
    gateway.set_queue_size(3)
    with tempfile.TemporaryDirectory() as tmp:
        writer = OpenMetricsWriter(Path(tmp) / "bench.om")
        writes = 40
        write_s = min(
            timeit.repeat(
                "w.write(sources, next(ts))",
                globals={"w": writer, "sources": [*pods, gateway], "ts": iter(range(10**9))},
                number=writes // 5 or 1,
                repeat=5,
            )
        ) / (writes // 5 or 1)
        rows.append(("OpenMetricsWriter.write, per pod", write_s / len(pods), "us"))
        points = sum(len(b.indices) for f in writer._families.values() for b in f.series.values())
        lines = sum(len(b.values) for f in writer._families.values() for b in f.series.values())
        close_s = timeit.timeit(writer.close, number=1)
        rows.append(("OpenMetricsWriter.close, per sample line", close_s / max(lines, 1), "ns"))
        size = (Path(tmp) / "bench.om").stat().st_size
    print(f"{'operation':<48} {'per call':>12}")
    for name, seconds, unit in rows:
        scale = 1e9 if unit == "ns" else 1e6
        print(f"{name:<48} {seconds * scale:>9.1f} {unit}")
    print(
        f"(OpenMetrics file: {lines} sample lines in {points} series-points, {size / 1e6:.1f} MB)"
    )


if __name__ == "__main__":
    main()
