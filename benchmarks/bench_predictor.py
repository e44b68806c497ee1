"""Predictor accuracy (request level) and speed, against llm-d's two latency predictors.

Three models, trained on the same rows and scored by the same metrics (``predictor.metrics``):

* **ours** — per accelerator (or pooled, whichever the held-out split prefers:
  ``train_best_layout``): a non-negative linear queueing term, a monotone LightGBM log-location,
  non-decreasing quantile maps and a mean model, with split-conformal offsets per accelerator and
  waiting-queue stratum (``predictor.boosting``, ``predictor.calibration``);
* **Bayesian ridge** — llm-d's linear predictor, p90 = mean + 1.28·std, one model for the pool
  (and, as an extra row, one per accelerator);
* **unconstrained GBM** — LightGBM's own quantile objective, no monotonicity, no calibration
  (llm-d's XGBoost default), pooled and per accelerator.

**(a) Simulator data.** One simulated vLLM pod per (accelerator, model, GPUs) — H100 Llama-3-8B,
A100×4 Llama-3-70B, MI300X×2 Llama-3-70B — with vLLM V1 defaults (chunked prefill, prefix
caching, 8,192 batched tokens, 256 sequences). Saturation is the completion rate with 256 requests
always in flight; each load level from 10 % to 120 % of it is one fresh pod fed Poisson arrivals
(log-normal ISL ≈ 1,000 / OSL ≈ 200 tokens; half the prompts open with one of 8 shared
512-token system prompts). Every request's features are read from the engine at the moment it is
routed (KV use, waiting, running, prompt tokens left to prefill, context tokens decoding, the
prompt's prefix-cache hit); its TTFT (with the frontend overhead) and TPOT come from the engine.
Train and test runs use different seeds.

**(b) The measured H100 sweep** (inference-perf, Llama-3-8B, vLLM 0.11, 7 stages of 60 s, two
engine variants). Only per-stage aggregates exist: quantiles of TTFT over the stage's requests,
means, lengths — no per-request features. So the models are trained on simulated replays of the
sweep (the calibrated H100 profile, the stage's rates and length distributions, the load
generator's concurrency cap from Little's law on saturated stages) and scored against the
*measured* distribution per stage: coverage = mean over the stage's replayed requests of
``F_measured(p̂90_i)``, pinball = mean of ``∫ ρ_0.9(Q_measured(u) − p̂90_i) du`` (quantile
functions interpolated through the measured percentiles), and the error of the stage's mean TTFT
and mean TPOT. That scores each model's quantiles against real latencies, but not whether it ranks
individual requests right (that needs per-request data the sweep does not have); it also mixes
simulator error into model error, equally for every model.

**Adaptive conformal.** A fourth row is ours with the service's online offset
(``AdaptiveOffset``, step ``ADAPTIVE_STEP``) replayed on each test pod without look-ahead: a
request is predicted when it is routed with the offset as of then, and the offset moves when a
request completes (``AdaptiveReplay``).

Speed: LightGBM's own predict and ours in process on 32 candidate pods (p50/p99), ``/predict/bulk``
with 32 items over loopback HTTP against ``sloscaler predictor serve``, and a full retrain on 1M
synthetic rows.

Run: ``python benchmarks/bench_predictor.py [--json FILE] [--requests-per-level N]
[--skip-sweep] [--skip-speed] [--only-speed]`` (≈ 1.5 minutes on the 2-core development
machine).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from predictor.baselines import BayesianRidgeBaseline, BoostedQuantileBaseline
from predictor.boosting import LOCATION, predict_rows
from predictor.calibration import ADAPTIVE_STEP, AdaptiveOffset, waiting_strata
from predictor.features import NUMERIC_FEATURES, FeatureColumns, Target
from predictor.metrics import ALL, HeldOutMetrics, evaluate_arrays, pinball_loss
from predictor.models import LatencyModel, Layout
from predictor.registry import ModelRegistry
from predictor.samples import RequestSamples
from predictor.synthetic import synthetic_samples
from predictor.training import TrainingConfig, train, train_best_layout
from simulator.engine import Engine, EngineConfig, Seq, prefix_block_keys
from simulator.metrics.vllm import VllmMetrics
from simulator.perf.catalog import load_catalog
from simulator.traces.lengths import LogNormalLengths
from simulator.workload import RequestSpec

SWEEP = (
    Path(__file__).resolve().parents[2] / "shared/data/calibration/inference_perf_h100_llama3_8b"
)
LOADS = tuple(round(0.1 * k, 1) for k in range(1, 13))  # 10 % … 120 % of saturation
PODS = (("h100", "llama-3-8b", 1), ("a100", "llama-3-70b", 4), ("mi300x", "llama-3-70b", 2))
PREFIX_GROUPS, PREFIX_TOKENS, PREFIX_FRACTION = 8, 512, 0.5
SWEEP_VARIANTS = {
    "vllm": EngineConfig(
        max_num_batched_tokens=2048,
        max_num_seqs=128,
        max_model_len=512,
        enable_prefix_caching=False,
        enable_chunked_prefill=False,
    ),
    "vllm+chunking_and_prefix_caching": EngineConfig(
        max_num_batched_tokens=8192,
        max_num_seqs=128,
        max_model_len=512,
        enable_prefix_caching=True,
        enable_chunked_prefill=True,
    ),
}
STAGE_S = 60.0


# ---------------------------------------------------------------------- one simulated pod


@dataclass
class Served:
    """Requests one pod served: features at routing time, outcomes, and the stage of each."""

    features: dict[str, list[float]]
    ttft_ms: list[float]
    tpot_ms: list[float]
    stage: list[int]
    finish_s: list[float]

    @classmethod
    def empty(cls) -> Served:
        return cls({n: [] for n in NUMERIC_FEATURES}, [], [], [], [])

    def samples(self, accelerator: str) -> RequestSamples:
        cols = FeatureColumns.from_arrays(
            {k: np.asarray(v, dtype=np.float64) for k, v in self.features.items()},
            accelerator=accelerator,
        )
        return RequestSamples.build(cols, self.ttft_ms, self.tpot_ms)


def serve(
    accelerator: str,
    model: str,
    gpus: int,
    config: EngineConfig,
    specs: Sequence[tuple[int, RequestSpec]],
    *,
    cap: Callable[[int], int | None] = lambda stage: None,
) -> Served:
    """Feed ``(stage, request)`` pairs (by arrival) to one fresh pod; record every request.

    ``cap(stage)`` limits the requests in flight, as a load generator with a fixed number of
    workers does: an arrival beyond it waits at the client and is sent (and timed) when a request
    finishes.
    """
    profile = load_catalog().profile(accelerator, model, gpus)
    done: list[Seq] = []
    eng = Engine(profile.step, profile.kv_blocks, config, VllmMetrics(model), done.append)
    out = Served.empty()
    held: deque[tuple[int, RequestSpec]] = deque()
    stage_of: dict[int, int] = {}
    sent = 0
    overhead_ms = profile.frontend_overhead_s * 1000.0
    f = out.features

    def send(stage: int, spec: RequestSpec, now: float) -> None:
        nonlocal sent
        eng.advance(now)
        keys = prefix_block_keys(spec, config.block_size) if spec.prefix_ids else []
        hit = eng.prefix_match_tokens(spec, keys) if keys else 0
        f["kv_cache_percentage"].append(eng.kv.usage)
        f["input_token_length"].append(spec.input_tokens)
        f["num_request_waiting"].append(eng.num_waiting)
        f["num_request_running"].append(len(eng.running))
        f["prefill_tokens_in_flight"].append(eng.prefill_tokens_in_flight())
        f["decode_tokens_in_flight"].append(
            sum(s.prompt + s.out for s in eng.running if s.computed >= s.prompt)
        )
        f["prefix_cache_score"].append(hit / max(1, spec.input_tokens))
        f["num_tokens_generated"].append(0.0)
        stage_of[sent] = stage
        eng.add(Seq(sent, spec, now, spec.output_tokens, keys))
        sent += 1

    def release(now: float) -> None:
        while held:
            limit = cap(held[0][0])
            if limit is not None and sent - len(done) >= limit:
                return
            stage, spec = held.popleft()
            send(stage, spec, now)

    for stage, spec in specs:
        while eng.next_event_time() <= spec.arrival_s:
            eng.run_stretch()
            release(eng.now)
        limit = cap(stage)
        if held or (limit is not None and sent - len(done) >= limit):
            held.append((stage, spec))
            release(spec.arrival_s)
        else:
            send(stage, spec, spec.arrival_s)
    while eng.has_work or held:
        if not eng.has_work:
            release(eng.now)
            continue
        eng.run_stretch()
        release(eng.now)
    by_rid = {s.rid: s for s in done}
    for rid in range(sent):
        s = by_rid[rid]
        ok = s.finish_reason == "stop" and s.first_token_t >= 0
        out.ttft_ms.append((s.first_token_t - s.arrival) * 1000.0 + overhead_ms if ok else math.nan)
        tpot = (s.finish_t - s.first_token_t) / (s.out - 1) * 1000.0 if ok and s.out > 1 else None
        out.tpot_ms.append(math.nan if tpot is None else tpot)
        out.stage.append(stage_of[rid])
        out.finish_s.append(s.finish_t)
    return out


def workload(
    rng: np.random.Generator, rate: float, n: int, *, isl: float = 1000.0, osl: float = 200.0
) -> list[RequestSpec]:
    """``n`` Poisson arrivals at ``rate`` with log-normal lengths and shared system prompts."""
    times = np.cumsum(rng.exponential(1.0 / rate, n))
    lengths = LogNormalLengths(isl, osl, max_input_tokens=6_000, max_output_tokens=1_500)
    ins, outs = lengths.sample(rng, n)
    shared = rng.random(n) < PREFIX_FRACTION
    groups = rng.integers(0, PREFIX_GROUPS, n)
    return [
        RequestSpec(
            float(t),
            int(i),
            int(o),
            prefix_ids=(int(g),) if s else (),
            prefix_unit_tokens=PREFIX_TOKENS if s else 0,
        )
        for t, i, o, s, g in zip(times, ins, outs, shared, groups, strict=True)
    ]


def saturation_rps(accelerator: str, model: str, gpus: int, seed: int = 0) -> float:
    """Completions per second with ``max_num_seqs`` requests always in flight (counted between
    the first and the last ``max_num_seqs`` completions, so start-up and drain are left out)."""
    config = EngineConfig()
    rng = np.random.default_rng(seed)
    n, edge = 2_000, config.max_num_seqs
    specs = [(0, replace(r, arrival_s=0.0)) for r in workload(rng, 1.0, n)]
    served = serve(accelerator, model, gpus, config, specs, cap=lambda _: edge)
    finish = np.sort(served.finish_s)
    return float((n - 2 * edge) / (finish[n - edge] - finish[edge]))


@dataclass
class Timeline:
    """When each request was routed and when its latencies became known, and its pod (one
    fresh pod per accelerator and load level)."""

    pod: np.ndarray
    routed_s: np.ndarray
    known_s: np.ndarray


def simulated_samples(
    pods: Sequence[tuple[str, str, int]],
    saturation: dict[str, float],
    per_level: int,
    seed: int,
) -> tuple[RequestSamples, np.ndarray, Timeline]:
    """Requests from every pod at every load level (one fresh pod per level), the load
    (fraction of saturation) each was sent at, and when each was routed and completed."""
    parts, loads, pod, routed, known = [], [], [], [], []
    for k, (acc, model, gpus) in enumerate(pods):
        for j, load in enumerate(LOADS):
            rng = np.random.default_rng([seed, k, j])
            specs = [(j, s) for s in workload(rng, load * saturation[acc], per_level)]
            served = serve(acc, model, gpus, EngineConfig(), specs)
            parts.append(served.samples(acc))
            loads.append(np.full(len(served.stage), load))
            pod.append(np.full(len(served.stage), k * len(LOADS) + j))
            routed.append(
                np.array([spec.arrival_s for _, spec in specs])
            )  # no cap: sent on arrival
            known.append(np.asarray(served.finish_s, dtype=np.float64))
    timeline = Timeline(np.concatenate(pod), np.concatenate(routed), np.concatenate(known))
    return RequestSamples.concat(parts), np.concatenate(loads), timeline


# ---------------------------------------------------------------------- adaptive conformal


@dataclass
class AdaptiveReplay:
    """Ours with the service's adaptive conformal offset (``AdaptiveOffset``), replayed on the
    test pods without look-ahead: each pod's requests in time order, every request predicted
    when it is routed with the offset as of then, the offset updated when a request completes
    (``err = 1`` when its actual exceeded the p90 it was served). Each pod starts from 0."""

    predictions: dict[Target, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def replay(
        cls, model: LatencyModel, rows: RequestSamples, timeline: Timeline, step: float
    ) -> AdaptiveReplay:
        out = {}
        for target in Target:
            p90, mean = p90_and_mean(model, rows, target)
            y = rows.actual(target)
            served = np.full(len(rows), np.nan)
            for pod in np.unique(timeline.pod):
                (idx,) = np.nonzero(timeline.pod == pod)
                served[idx] = _replay_pod(
                    p90[idx], y[idx], timeline.routed_s[idx], timeline.known_s[idx], step
                )
            out[target] = (served, mean)
        return cls(out)

    def predict(self, features: FeatureColumns, target: Target) -> tuple[np.ndarray, np.ndarray]:
        p90, mean = self.predictions[target]
        assert len(p90) == len(features), "replayed on other rows"
        return p90, mean


def _replay_pod(
    p90: np.ndarray, y: np.ndarray, routed: np.ndarray, known: np.ndarray, step: float
) -> np.ndarray:
    """The p90 each request of one pod was served under ACI (see ``AdaptiveReplay``)."""
    state = AdaptiveOffset(level=0.9, step=step)
    served = np.full(len(p90), np.nan)
    by_completion = np.argsort(known, kind="stable")
    done = 0
    for i in np.argsort(routed, kind="stable"):
        while done < len(p90) and known[by_completion[done]] <= routed[i]:
            r = by_completion[done]
            done += 1
            if np.isfinite(y[r]) and np.isfinite(served[r]):
                state = state.update(int(y[r] > served[r]), 1)
        served[i] = p90[i] * math.exp(state.offset)
    return served


# ---------------------------------------------------------------------- the three models

Fitted = LatencyModel | BayesianRidgeBaseline | BoostedQuantileBaseline | AdaptiveReplay
#: Load regimes reported separately: below saturation, and the overload where queues grow.
REGIMES = {"all loads": (0.0, 9.0), "10-100 %": (0.0, 1.0), "110-120 %": (1.05, 9.0)}


def p90_and_mean(
    model: Fitted, rows: RequestSamples, target: Target
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's predicted p90 and mean (ms): calibrated for ours, as-is for the baselines."""
    if not isinstance(model, LatencyModel):
        return model.predict(rows.features, target)
    qs = model.config.quantiles
    log_q, _ = model.predict_log_quantiles(rows.features, target)
    return np.exp(log_q[:, qs.index(0.9)]), model.predict_mean_ms(rows.features, target)


@dataclass
class Contender:
    name: str
    model: Fitted
    fit_s: float


def contenders(train_rows: RequestSamples) -> list[Contender]:
    """Ours (layout chosen on held-out data) and both baselines, pooled and per accelerator."""
    t0 = time.perf_counter()
    ours, _ = train_best_layout(train_rows, TrainingConfig(), now=0.0)
    out = [Contender(f"ours ({ours.model.config.layout.value})", ours.model, 0.0)]
    out[0].fit_s = time.perf_counter() - t0
    for per_acc in (False, True):
        suffix = ", per accelerator" if per_acc else ", one pool model"
        t0 = time.perf_counter()
        ridge = BayesianRidgeBaseline.fit(train_rows, per_accelerator=per_acc)
        out.append(Contender("Bayesian ridge" + suffix, ridge, time.perf_counter() - t0))
        t0 = time.perf_counter()
        gbm = BoostedQuantileBaseline.fit(train_rows, per_accelerator=per_acc)
        out.append(Contender("unconstrained GBM" + suffix, gbm, time.perf_counter() - t0))
    return out


def score(
    fitted: list[Contender], rows: RequestSamples, loads: np.ndarray
) -> dict[str, dict[str, list[HeldOutMetrics]]]:
    """Metrics per regime, model, target and accelerator."""
    out: dict[str, dict[str, list[HeldOutMetrics]]] = {r: {} for r in REGIMES}
    accs = np.asarray(rows.features.accelerator, dtype=object)
    for c in fitted:
        predictions = {t: p90_and_mean(c.model, rows, t) for t in Target}
        for regime, (lo, hi) in REGIMES.items():
            keep = (loads > lo - 1e-9) & (loads < hi + 1e-9)
            metrics: list[HeldOutMetrics] = []
            for t, (p90, mean) in predictions.items():
                metrics += evaluate_arrays(
                    t, tuple(accs[keep]), rows.actual(t)[keep], p90[keep], mean[keep]
                )
            out[regime][c.name] = metrics
    return out


def print_tables(scores: dict[str, dict[str, list[HeldOutMetrics]]], accs: Sequence[str]) -> None:
    for regime, by_model in scores.items():
        for target in Target:
            print(
                f"\n{regime}, {target.value.upper()}: coverage p90 / pinball p90 (ms) / MAPE mean"
            )
            print(f"{'model':<38}" + "".join(f"{a:>26}" for a in (ALL, *accs)))
            for name, metrics in by_model.items():
                cells = []
                for acc in (ALL, *accs):
                    m = next(x for x in metrics if x.target is target and x.accelerator == acc)
                    cells.append(f"{m.coverage_p90:.3f}/{m.pinball_p90:9.2f}/{m.mape_mean:6.2f}")
                print(f"{name:<38}" + "".join(f"{x:>26}" for x in cells))


def coverage_by_waiting(
    model: LatencyModel, rows: RequestSamples, loads: np.ndarray
) -> dict[str, dict[str, dict[str, Any]]]:
    """Ours: p90 coverage per waiting-queue stratum (the calibration's strata), below and above
    saturation, per target — where the overload coverage comes from."""
    strata = waiting_strata(rows.features.values["num_request_waiting"])
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for t in Target:
        p90, _ = p90_and_mean(model, rows, t)
        y = rows.actual(t)
        for regime, keep in (("10-100 %", loads < 1.05), ("110-120 %", loads > 1.05)):
            cells: dict[str, Any] = {}
            for k, label in enumerate(("0", "1", "2-3", "4-7", "8-15", "16-31", ">=32")):
                m = keep & (strata == k) & np.isfinite(y)
                share = float(np.mean(y[m] <= p90[m])) if m.any() else None
                cells[label] = {"n": int(m.sum()), "coverage": share}
            out.setdefault(t.value, {})[regime] = cells
    return out


def verdicts(scores: dict[str, dict[str, list[HeldOutMetrics]]]) -> list[dict[str, Any]]:
    """Ours against the issue's targets, per regime and target (all accelerators pooled):
    coverage in 0.88–0.92, pinball ≥ 20 % below Bayesian ridge, ≤ the unconstrained GBM."""
    out = []

    def headline(name: str, target: Target, models: dict[str, list[HeldOutMetrics]]) -> Any:
        return next(m for m in models[name] if m.target is target and m.accelerator == ALL)

    for regime, by_model in scores.items():
        ours_names = [n for n in by_model if n.startswith("ours")]
        for ours_name, target in ((n, t) for n in ours_names for t in Target):
            ours = headline(ours_name, target, by_model)
            row: dict[str, Any] = {
                "regime": regime,
                "model": ours_name,
                "target": target.value,
                "coverage": round(ours.coverage_p90, 3),
                "coverage_in_band": 0.88 <= ours.coverage_p90 <= 0.92,
            }
            for name in by_model:
                if name == ours_name:
                    continue
                other = headline(name, target, by_model).pinball_p90
                row[f"pinball vs {name}"] = f"{(ours.pinball_p90 / other - 1.0) * 100:+.0f} %"
            out.append(row)
    return out


# ---------------------------------------------------------------------- (b) the H100 sweep


QUANTILE_KEYS = (
    ("min", 0.0), ("p0.1", 0.001), ("p1", 0.01), ("p5", 0.05), ("p10", 0.10), ("p25", 0.25),
    ("median", 0.5), ("p75", 0.75), ("p90", 0.90), ("p95", 0.95), ("p99", 0.99),
    ("p99.9", 0.999), ("max", 1.0),
)  # fmt: skip


@dataclass
class MeasuredStage:
    stage: int
    requested_rps: float
    achieved_rps: float
    throughput_rps: float
    latency_mean_s: float
    ttft_levels: np.ndarray  # u
    ttft_values_s: np.ndarray  # Q(u)
    ttft_mean_s: float
    tpot_mean_s: float  # (latency − TTFT)/(output − 1), means: the server's decode step
    prompt: tuple[np.ndarray, np.ndarray]
    output: tuple[np.ndarray, np.ndarray]

    @property
    def saturated(self) -> bool:
        return self.achieved_rps < 0.95 * self.requested_rps


def _grid(stats: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    levels = np.array([u for k, u in QUANTILE_KEYS])
    values = np.maximum.accumulate(np.array([stats[k] for k, _ in QUANTILE_KEYS]))
    return levels, values


def read_stages(variant: str) -> list[MeasuredStage]:
    stages = []
    for k in range(7):
        data = json.loads((SWEEP / variant / f"stage_{k}_lifecycle_metrics.json").read_text())
        ok = data["successes"]
        lat = ok["latency"]
        levels, ttft = _grid(lat["time_to_first_token"])
        out_mean = ok["output_len"]["mean"]
        stages.append(
            MeasuredStage(
                stage=k,
                requested_rps=data["load_summary"]["requested_rate"],
                achieved_rps=data["load_summary"]["achieved_rate"],
                throughput_rps=ok["throughput"]["requests_per_sec"],
                latency_mean_s=lat["request_latency"]["mean"],
                ttft_levels=levels,
                ttft_values_s=ttft,
                ttft_mean_s=lat["time_to_first_token"]["mean"],
                tpot_mean_s=(lat["request_latency"]["mean"] - lat["time_to_first_token"]["mean"])
                / (out_mean - 1.0),
                prompt=_grid(ok["prompt_len"]),
                output=_grid(ok["output_len"]),
            )
        )
    return stages


def sweep_requests(
    stages: list[MeasuredStage], seed: int, prefix: bool
) -> list[tuple[int, RequestSpec]]:
    """The sweep's arrivals: Poisson at each stage's requested rate for 60 s, lengths drawn from
    the stage's measured length percentiles, a 128-token system prompt shared by 8 groups."""
    rng = np.random.default_rng(seed)
    specs = []
    t0 = 0.0
    for st in stages:
        n = rng.poisson(st.requested_rps * STAGE_S)
        times = np.sort(rng.uniform(t0, t0 + STAGE_S, n))
        ins = np.interp(rng.random(n), *st.prompt).round().astype(int)
        outs = np.maximum(np.interp(rng.random(n), *st.output).round().astype(int), 1)
        groups = rng.integers(0, 8, n)
        for t, i, o, g in zip(times, ins, outs, groups, strict=True):
            spec = RequestSpec(float(t), int(i), int(o), prefix_ids=(int(g),) if prefix else (),
                               prefix_unit_tokens=128 if prefix else 0)  # fmt: skip
            specs.append((st.stage, spec))
        t0 += STAGE_S
    return specs


def replay(stages: list[MeasuredStage], variant: str, seed: int) -> Served:
    """One simulated H100 through the sweep; saturated stages run with the load generator's
    concurrency (throughput × mean latency, Little's law on the measured stage)."""
    caps = {
        st.stage: round(st.throughput_rps * st.latency_mean_s) if st.saturated else None
        for st in stages
    }
    prefix = SWEEP_VARIANTS[variant].enable_prefix_caching
    return serve(
        "h100",
        "llama-3-8b",
        1,
        SWEEP_VARIANTS[variant],
        sweep_requests(stages, seed, prefix),
        cap=lambda stage: caps[stage],
    )


def _cdf(levels: np.ndarray, values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The measured CDF at ``x`` (inverse of the piecewise-linear quantile function)."""
    return np.asarray(np.interp(x, values, levels, left=0.0, right=1.0))


def stage_scores(
    st: MeasuredStage, p90_ms: np.ndarray, mean_ms: np.ndarray, tpot_mean_ms: np.ndarray
) -> dict[str, float]:
    """Stage-level coverage, pinball (ms) and mean errors of one model (module doc)."""
    ok = np.isfinite(p90_ms)
    q = p90_ms[ok] / 1000.0
    u = np.linspace(0.0005, 0.9995, 1000)
    measured = np.interp(u, st.ttft_levels, st.ttft_values_s)
    loss = np.array([pinball_loss(measured, np.full_like(measured, x), 0.9) for x in q])
    return {
        "coverage": float(np.mean(_cdf(st.ttft_levels, st.ttft_values_s, q))),
        "pinball_ms": float(loss.mean() * 1000.0),
        "ttft_mean_error": float(np.nanmean(mean_ms) / 1000.0 / st.ttft_mean_s - 1.0),
        "tpot_mean_error": float(np.nanmean(tpot_mean_ms) / 1000.0 / st.tpot_mean_s - 1.0),
        "predicted_p90_median_ms": float(np.median(p90_ms[ok])),
        "measured_p90_ms": float(np.interp(0.9, st.ttft_levels, st.ttft_values_s) * 1000.0),
    }


def stage_coverage(st: MeasuredStage, p90_ms: np.ndarray) -> float:
    q = p90_ms[np.isfinite(p90_ms)] / 1000.0
    return float(np.mean(_cdf(st.ttft_levels, st.ttft_values_s, q)))


def leave_one_stage_out(
    stages: list[MeasuredStage], p90_by_stage: list[np.ndarray]
) -> list[np.ndarray]:
    """Each stage's p90s times the factor ``e^δ`` that gives 90 % mean coverage on the *other*
    measured stages (δ by bisection; coverage grows with δ). What a deployment gets once the
    gateway posts real samples: one per-accelerator offset learned from measured latencies."""
    out = []
    for k in range(len(stages)):
        others = [(st, np.maximum(p, 1e-3)) for j, (st, p) in enumerate(zip(stages, p90_by_stage,
                  strict=True)) if j != k]  # fmt: skip
        lo, hi = -5.0, 5.0
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            cov = np.mean([stage_coverage(st, p * math.exp(mid)) for st, p in others])
            lo, hi = (mid, hi) if cov < 0.9 else (lo, mid)
        out.append(np.maximum(p90_by_stage[k], 1e-3) * math.exp(hi))
    return out


def _summary(per_stage: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "stages": per_stage,
        "coverage_mean": float(np.mean([s["coverage"] for s in per_stage])),
        "pinball_ms_mean": float(np.mean([s["pinball_ms"] for s in per_stage])),
        "ttft_mean_mape": float(np.mean([abs(s["ttft_mean_error"]) for s in per_stage])),
        "tpot_mean_mape": float(np.mean([abs(s["tpot_mean_error"]) for s in per_stage])),
    }


def sweep_benchmark(train_seeds: Sequence[int], test_seed: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for variant in SWEEP_VARIANTS:
        stages = read_stages(variant)
        train_rows = RequestSamples.concat(
            [replay(stages, variant, s).samples("h100") for s in train_seeds]
        )
        test = replay(stages, variant, test_seed)
        rows = test.samples("h100")
        ours = train(train_rows, TrainingConfig(), now=0.0).model
        models: dict[str, Fitted] = {
            "ours": ours,
            "Bayesian ridge": BayesianRidgeBaseline.fit(train_rows),
            "unconstrained GBM": BoostedQuantileBaseline.fit(train_rows),
        }
        stage_of = np.asarray(test.stage)
        per_model: dict[str, Any] = {}
        for name, fitted in models.items():
            p90, mean = p90_and_mean(fitted, rows, Target.TTFT)
            _, tpot_mean = p90_and_mean(fitted, rows, Target.TPOT)
            masks = [stage_of == st.stage for st in stages]
            p90s = [p90[m] for m in masks]
            shifted = leave_one_stage_out(stages, p90s)
            for label, quantiles in (("", p90s), (", offset from other stages", shifted)):
                per_stage = [
                    {"stage": st.stage, **stage_scores(st, q, mean[m], tpot_mean[m])}
                    for st, q, m in zip(stages, quantiles, masks, strict=True)
                ]
                per_model[name + label] = _summary(per_stage)
        results[variant] = {"train_rows": len(train_rows), "test_rows": len(rows), **per_model}
    return results


# ---------------------------------------------------------------------- speed


def _quiet_heap() -> None:
    """Collect once and freeze what survives: the accuracy runs leave millions of objects in
    this process, and a full collection in the middle of a timed call would be charged to the
    predictor (a gateway's heap is not this benchmark's)."""
    gc.collect()
    gc.freeze()


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    a = np.asarray(samples_s) * 1000.0
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99))}


def _candidates(rows: RequestSamples, start: int) -> dict[str, list[float]]:
    return {n: rows.features.values[n][start : start + 32].tolist() for n in NUMERIC_FEATURES}


def in_process_speed(
    model: LatencyModel, rows: RequestSamples, calls: int = 3_000
) -> dict[str, Any]:
    accelerator = rows.features.accelerator[0]
    seg = next(k for k in model.segments if model.segment_ready(k) is None)
    boosters = model.segments[seg][Target.TTFT]
    matrix = boosters.layout.matrix(rows.features.take(np.arange(32)))  # type: ignore[union-attr]
    booster = boosters.boosters[LOCATION]  # type: ignore[union-attr]
    raw, ours = [], []
    _quiet_heap()
    for i in range(calls):
        t0 = time.perf_counter()
        predict_rows(booster, matrix)
        raw.append(time.perf_counter() - t0)
        batch = _candidates(rows, (i * 32) % (len(rows) - 32))
        t0 = time.perf_counter()
        cols = FeatureColumns.from_arrays(batch, accelerator=accelerator)
        model.predict_serving(cols)
        ours.append(time.perf_counter() - t0)
    return {"lightgbm_predict_32": _percentiles(raw), "ours_predict_serving_32": _percentiles(ours)}


def http_speed(result: Any, rows: RequestSamples, calls: int = 2_000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        registry = ModelRegistry(Path(tmp) / "models")
        registry.publish(result)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        serve_cli = ["predictor", "serve", "--model", str(registry.root), "--port", str(port)]
        cmd = [sys.executable, "-c", "from autoscaler.cli import app; app()", *serve_cli]
        cmd.append("--no-train")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=5.0) as client:
                for _ in range(300):
                    try:
                        if client.get("/readyz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.1)
                else:
                    raise RuntimeError("predictor service did not become ready")
                accelerator = rows.features.accelerator[0]
                times = []
                _quiet_heap()
                for i in range(calls + 100):
                    batch = _candidates(rows, (i * 32) % (len(rows) - 32))
                    items = [
                        {**{k: v[j] for k, v in batch.items()}, "accelerator": accelerator}
                        for j in range(32)
                    ]
                    t0 = time.perf_counter()
                    answer = client.post("/predict/bulk", json={"requests": items})
                    elapsed = time.perf_counter() - t0
                    if answer.status_code != 200 or answer.json()["failed_predictions"]:
                        raise RuntimeError(f"/predict/bulk failed: {answer.text[:300]}")
                    if i >= 100:  # warm-up
                        times.append(elapsed)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return {"http_predict_bulk_32": _percentiles(times)}


def retrain_speed(rows: int = 1_000_000) -> dict[str, Any]:
    data = synthetic_samples(rows, seed=1)
    t0 = time.perf_counter()
    result = train(data, TrainingConfig(), now=0.0)
    elapsed = time.perf_counter() - t0
    layout = result.model.config.layout
    return {
        "retrain_rows": rows,
        "retrain_s": round(elapsed, 1),
        "layout": layout.value if isinstance(layout, Layout) else str(layout),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
    }


# ---------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--json", help="also write every number to this file")
    ap.add_argument("--requests-per-level", type=int, default=2_000, help="training requests")
    ap.add_argument("--skip-sweep", action="store_true", help="leave out (b), the H100 sweep")
    ap.add_argument("--skip-speed", action="store_true", help="leave out the speed figures")
    ap.add_argument(
        "--only-speed", action="store_true", help="only the speed figures (on the (a) model)"
    )
    args = ap.parse_args()
    out: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        }
    }
    started = time.perf_counter()

    t0 = time.perf_counter()
    saturation = {acc: saturation_rps(acc, model, gpus) for acc, model, gpus in PODS}
    n = args.requests_per_level
    train_rows, _, _ = simulated_samples(PODS, saturation, n, seed=1)
    test_rows, test_loads, test_timeline = simulated_samples(PODS, saturation, n, seed=2)
    sim_s = time.perf_counter() - t0
    rounded = {k: round(v, 2) for k, v in saturation.items()}
    print(
        f"(a) simulator: saturation {json.dumps(rounded)} req/s; {len(train_rows)} training and "
        f"{len(test_rows)} test requests simulated in {sim_s:.0f} s"
    )
    if args.only_speed:
        args.skip_sweep = True
    fitted = [] if args.only_speed else contenders(train_rows)
    if fitted:
        assert isinstance(fitted[0].model, LatencyModel)
        aci = AdaptiveReplay.replay(fitted[0].model, test_rows, test_timeline, ADAPTIVE_STEP)
        fitted.insert(1, Contender(f"ours + adaptive conformal, γ {ADAPTIVE_STEP:g}", aci, 0.0))
    scores = score(fitted, test_rows, test_loads) if fitted else {}
    accs = [a for a, _, _ in PODS]
    print_tables(scores, accs)
    by_waiting = coverage_by_waiting(fitted[0].model, test_rows, test_loads) if fitted else {}  # type: ignore[arg-type]
    for target, regimes in by_waiting.items():
        for regime, strata_cells in regimes.items():
            text = "  ".join(
                f"{k}: {c['coverage']:.2f} ({c['n']})" for k, c in strata_cells.items() if c["n"]
            )
            print(f"\nours, {target.upper()} {regime}, p90 coverage by requests waiting: {text}")
    checks = verdicts(scores)
    print("\ntargets (ours; pinball change relative to each baseline, negative = ours lower):")
    for row in checks:
        print("  " + json.dumps(row))
    out["simulator"] = {
        "pods": [{"accelerator": a, "model": m, "gpus": g} for a, m, g in PODS],
        "saturation_rps": saturation,
        "loads": LOADS,
        "train_rows": len(train_rows),
        "test_rows": len(test_rows),
        "fit_seconds": {c.name: round(c.fit_s, 2) for c in fitted},
        "targets": checks,
        "ours_coverage_by_waiting": by_waiting,
        "metrics": {
            regime: {name: [m.to_json() for m in ms] for name, ms in by_model.items()}
            for regime, by_model in scores.items()
        },
    }

    if not args.skip_sweep:
        t0 = time.perf_counter()
        sweep = sweep_benchmark(train_seeds=(11, 12, 13), test_seed=21)
        took = time.perf_counter() - t0
        print(f"\n(b) H100 sweep, scored against the measured stages ({took:.0f} s)")
        for variant, res in sweep.items():
            print(
                f"  {variant}: {res['train_rows']} training / {res['test_rows']} replayed requests"
            )
            for name, r in res.items():
                if not isinstance(r, dict):
                    continue
                print(
                    f"    {name:<20} TTFT coverage {r['coverage_mean']:.3f}  pinball "
                    f"{r['pinball_ms_mean']:8.2f} ms  |mean TTFT error| {r['ttft_mean_mape']:.2f}"
                    f"  |mean TPOT error| {r['tpot_mean_mape']:.2f}"
                )
                cells = " ".join(f"{s['coverage']:.2f}/{s['pinball_ms']:.0f}" for s in r["stages"])
                print(f"      per stage coverage/pinball: {cells}")
        out["sweep"] = sweep

    if not args.skip_speed:
        t0 = time.perf_counter()
        result, _ = train_best_layout(train_rows, TrainingConfig(), now=0.0)
        speed = in_process_speed(result.model, test_rows)
        speed.update(http_speed(result, test_rows))
        speed.update(retrain_speed())
        speed["load_average_1m"] = round(os.getloadavg()[0], 2)
        print(f"\nspeed ({time.perf_counter() - t0:.0f} s): {json.dumps(speed)}")
        out["speed"] = speed

    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(f"\ntotal {out['wall_seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
