"""Readers for the measured performance data the calibration is fitted to.

The measurements live outside the package, in ``<repo>/../shared/data/calibration`` (see
``shared/data/SOURCES.md`` for origin and license). Each reader returns small frozen records in
SI units, so the fitting code never sees milliseconds or file layouts:

* Splitwise (``splitwise_perf_model.csv``): vLLM-era Llama-2-70B prefill and decode step times
  on A100/H100 at TP 2/4/8 — median over the repeats of each configuration;
* Vidur (``vidur_mlp``): per-operator times of the linear layers vs tokens — the matmul roofline;
* Vidur (``vidur_network``): NCCL all-reduce and send/recv times vs message size;
* inference-perf (``inference_perf_h100_llama3_8b/summary_by_stage.csv``): a real rate sweep of
  Llama-3-8B on one H100 with vLLM 0.11;
* Argonne LLM-Inference-Bench (``argonne/All_results.csv``): whole-batch latencies across vendors
  (input length = output length); ``Fig_22_all_results_TTFT_ITL.csv``: the time to first token of
  16 prompts of 1,024 tokens and the latency of the same batch generating 1,024 tokens.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from statistics import median

HARDWARE_IDS = {"a100-80gb": "a100", "h100-80gb": "h100"}
"""Splitwise hardware names → catalog ids (the power-capped ``h100-80gb-pcap`` is left out)."""

VIDUR_LINEAR_OPS = (
    "input_layernorm",
    "attn_pre_proj",
    "attn_rope",
    "attn_post_proj",
    "post_attention_layernorm",
    "mlp_up_proj",
    "mlp_act",
    "mlp_down_proj",
    "add",
)
"""Vidur's per-layer operators outside attention (the embedding lookup is left out)."""


def default_data_dir() -> Path:
    """``<repo root>/../shared/data``, where CI and the workspace keep the shared measurements."""
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@dataclass(frozen=True, slots=True)
class SplitwiseRun:
    """One Splitwise configuration: ``batch`` prompts of ``prompt`` tokens, ``tokens`` generated.

    ``prefill_s`` is the prefill of the whole batch in one step; ``decode_s`` one decode step of
    the batch, whose context averages ``prompt + tokens/2`` per sequence.
    """

    hardware: str
    tp: int
    prompt: int
    batch: int
    tokens: int
    prefill_s: float
    decode_s: float
    repeats: int

    @property
    def prefill_features(self) -> tuple[int, float, int, int]:
        """``(P, A, D, K)`` of the prefill step."""
        p = self.batch * self.prompt
        return p, self.batch * self.prompt * self.prompt / 2, 0, 0

    @property
    def decode_features(self) -> tuple[int, float, int, int]:
        """``(P, A, D, K)`` of the decode step."""
        ctx = round(self.batch * (self.prompt + self.tokens / 2))
        return 0, 0.0, self.batch, ctx


def read_splitwise(data_dir: Path, model: str = "llama2-70b") -> list[SplitwiseRun]:
    """Splitwise runs of ``model`` on a100/h100: one record per configuration, median of repeats."""
    groups: dict[tuple[str, int, int, int, int], list[tuple[float, float]]] = defaultdict(list)
    with (data_dir / "calibration" / "splitwise_perf_model.csv").open() as f:
        for row in csv.DictReader(f):
            hw = HARDWARE_IDS.get(row["hardware"])
            if row["model"] != model or hw is None:
                continue
            key = (
                hw,
                int(row["tensor_parallel"]),
                int(row["prompt_size"]),
                int(row["batch_size"]),
                int(row["token_size"]),
            )
            groups[key].append((float(row["prompt_time"]) / 1e3, float(row["token_time"]) / 1e3))
    return [
        SplitwiseRun(
            *key,
            prefill_s=median(p for p, _ in times),
            decode_s=median(d for _, d in times),
            repeats=len(times),
        )
        for key, times in sorted(groups.items())
    ]


@dataclass(frozen=True, slots=True)
class LinearLayerSample:
    """Vidur: one layer's linear operators (summed) on ``tokens`` tokens, seconds."""

    tokens: int
    seconds: float


def read_vidur_linear(
    data_dir: Path, hardware: str, model: str, tp: int, op_scale: Mapping[str, float] | None = None
) -> list[LinearLayerSample]:
    """Per-layer linear-operator time vs tokens (median over rows), each op optionally scaled.

    ``op_scale`` rescales an operator by a weight/FLOP ratio, e.g. Llama-2-7B's fused QKV
    projection ×0.5 for Llama-3-8B's grouped-query attention (see :mod:`.fitting`).
    """
    scale = dict(op_scale or {})
    by_tokens: dict[int, list[float]] = defaultdict(list)
    path = data_dir / "calibration" / "vidur_mlp" / hardware / model / "mlp.csv"
    with path.open() as f:
        for row in csv.DictReader(f):
            if int(row["num_tensor_parallel_workers"]) != tp:
                continue
            ms = sum(
                float(row[f"time_stats.{op}.median"]) * scale.get(op, 1.0)
                for op in VIDUR_LINEAR_OPS
            )
            by_tokens[int(row["num_tokens"])].append(ms / 1e3)
    return [LinearLayerSample(n, median(v)) for n, v in sorted(by_tokens.items())]


@dataclass(frozen=True, slots=True)
class CollectiveSample:
    """Vidur: one NCCL collective of ``size_bytes`` among ``workers`` GPUs, seconds (median)."""

    workers: int
    size_bytes: int
    seconds: float


def read_vidur_network(
    data_dir: Path, system: str, collective: str, *, cross_node: bool = False
) -> list[CollectiveSample]:
    """NCCL timings of ``system`` (``h100_dgx``/``a100_dgx``); intra-node unless ``cross_node``.

    Intra-node means all workers on one node; cross-node ``send_recv`` has one device per node.
    """
    by_key: dict[tuple[int, int], list[float]] = defaultdict(list)
    path = data_dir / "calibration" / "vidur_network" / system / f"{collective}.csv"
    with path.open() as f:
        for row in csv.DictReader(f):
            workers, per_node = int(row["num_workers"]), int(row["devices_per_node"])
            if (per_node < workers) != cross_node:
                continue
            key = (workers, int(row["size"]))
            by_key[key].append(float(row[f"time_stats.{collective}.median"]) / 1e3)
    return [CollectiveSample(w, s, median(v)) for (w, s), v in sorted(by_key.items())]


@dataclass(frozen=True, slots=True)
class SweepStage:
    """One stage of the inference-perf rate sweep (client-side, as measured).

    ``decode_step_s`` is the time between a request's tokens seen by the client,
    ``(request_latency_p50 − ttft_p50)/(output_len − 1)``: the client's own ITL median and
    time-per-output-token are distorted by streamed token bursts and are not used.
    """

    variant: str
    stage: int
    requested_rps: float
    achieved_rps: float
    prompt_tokens: float
    output_tokens: float
    ttft_p50_s: float
    ttft_mean_s: float
    latency_p50_s: float
    latency_mean_s: float

    @property
    def decode_step_s(self) -> float:
        return (self.latency_p50_s - self.ttft_p50_s) / (self.output_tokens - 1)

    @property
    def saturated(self) -> bool:
        """The load generator outran the server (the achieved rate fell below the requested)."""
        return self.achieved_rps < 0.95 * self.requested_rps


def read_inference_perf(data_dir: Path) -> list[SweepStage]:
    path = data_dir / "calibration" / "inference_perf_h100_llama3_8b" / "summary_by_stage.csv"
    with path.open() as f:
        return [
            SweepStage(
                variant=row["variant"],
                stage=int(row["stage"]),
                requested_rps=float(row["requested_rate"]),
                achieved_rps=float(row["achieved_rate"]),
                prompt_tokens=float(row["prompt_len_mean"]),
                output_tokens=float(row["output_len_mean"]),
                ttft_p50_s=float(row["time_to_first_token_median_s"]),
                ttft_mean_s=float(row["time_to_first_token_mean_s"]),
                latency_p50_s=float(row["request_latency_median_s"]),
                latency_mean_s=float(row["request_latency_mean_s"]),
            )
            for row in csv.DictReader(f)
        ]


ARGONNE_HARDWARE = {
    "Nvidia H100 GPU": "h100",
    "Nvidia A100 GPU": "a100",
    "AMD MI300X GPU": "mi300x",
}
"""Argonne hardware names → catalog ids. Argonne's A100 is the 40 GB part of ALCF's Polaris (its
70B runs slow down 2–4× from 16 prompts of 512 tokens on: the KV cache of 4 × 40 GB holds about
10k tokens), not the catalog's A100-80GB; its rows are a cross-check only."""
ARGONNE_MODELS = {
    "meta-llama/Meta-Llama-3-8B": "llama-3-8b",
    "meta-llama/Meta-Llama-3-70B": "llama-3-70b",
    "meta-llama/Llama-2-70b-hf": "llama-2-70b",
}
"""Argonne model names → catalog ids."""


@dataclass(frozen=True, slots=True)
class ArgonneRun:
    """Argonne: ``batch`` requests of ``length`` input and ``length`` output tokens at once."""

    hardware: str
    gpus: int
    framework: str
    model: str
    length: int
    batch: int
    latency_s: float
    throughput_tok_s: float


def read_argonne(data_dir: Path, frameworks: Iterable[str] = ("vLLM",)) -> list[ArgonneRun]:
    wanted = set(frameworks)
    with (data_dir / "calibration" / "argonne" / "All_results.csv").open() as f:
        return [
            ArgonneRun(
                hardware=row["Hardware"],
                gpus=int(row["Num of Hardware"]),
                framework=row["Framework"],
                model=row["Model"],
                length=int(row["Input Output Length"]),
                batch=int(row["Batch Size"]),
                latency_s=float(row["Latency"]),
                throughput_tok_s=float(row["Throughput"]),
            )
            for row in csv.DictReader(f)
            if row["Framework"] in wanted
        ]


@dataclass(frozen=True, slots=True)
class ArgonneTtft:
    """Argonne Fig. 21/22: ``batch`` prompts of ``prompt`` tokens at once (one GPU).

    ``ttft_s`` is the time until the batch's first tokens (the run with ``Output Length`` 1: the
    prefill of every prompt); ``end_latency_s`` the whole-batch latency of the same prompts
    generating ``prompt`` tokens each — the ``All_results.csv`` row of that input = output
    length and batch (the two files agree to the last digit). So ``(end_latency − ttft)/(prompt
    − 1)`` is the mean decode step (inter-token latency) of the batch. ``None`` where Argonne
    gives no end latency.
    """

    hardware: str
    gpus: int
    framework: str
    model: str
    prompt: int
    batch: int
    ttft_s: float
    end_latency_s: float | None

    @property
    def itl_s(self) -> float | None:
        if self.end_latency_s is None:
            return None
        return (self.end_latency_s - self.ttft_s) / (self.prompt - 1)


def read_argonne_ttft(data_dir: Path, frameworks: Iterable[str] = ("vLLM",)) -> list[ArgonneTtft]:
    """The Fig. 22 table (Fig. 21's TTFT plus the end latency); blank separator lines skipped."""
    wanted = set(frameworks)
    path = data_dir / "calibration" / "argonne" / "Fig_22_all_results_TTFT_ITL.csv"
    out = []
    with path.open() as f:
        for raw in csv.DictReader(f):
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            if not row.get("Hardware") or row["Framework"] not in wanted:
                continue
            end = row.get("end_latency", "")
            out.append(
                ArgonneTtft(
                    hardware=row["Hardware"],
                    gpus=int(row["Num of Hardware"]),
                    framework=row["Framework"],
                    model=row["Model"],
                    prompt=int(row["Input Length"]),
                    batch=int(row["Batch Size"]),
                    ttft_s=float(row["TTFT Latency"]),
                    end_latency_s=float(end) if end else None,
                )
            )
    return out
