"""Per-replica capacity at the SLO from an accelerator profile, learned demand shape and
observed latency.

The profile-based answer is *offline profiling done numerically*: the calibrated engine model of
the pool's (accelerator, model, parallelism, engine flags) serves Poisson arrivals whose prompt and
output lengths are drawn from the demand actually observed (the request samples the gateway
reports; a lognormal around the window means until there are enough), and bisection finds the
largest rate at which the share of requests meeting both objectives stays at the attainment
target — what Dynamo's planner obtains by benchmarking each engine configuration ahead of time,
here for every profile in the catalog. Attainment falls monotonically with load, so bisection is
exact up to its tolerance.

Observation corrects it, Dynamo-style: per pool, ``cf = observed p90 / profiled p90`` at the load
the pool actually served (both through the same histogram buckets and ``histogram_quantile``),
smoothed, and the objective the profile must meet is divided by it. Example: the profile gives
p90 TTFT 0.40 s at 2 rps per replica, 0.50 s is observed → cf = 1.25, so capacity is sought for a
TTFT objective of 1.0 s / 1.25 = 0.8 s.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from policies.types import Capacity, DemandMix, PoolSnapshot, SLOTarget
from simulator.engine import Engine, EngineConfig, Seq, prefix_block_keys
from simulator.metrics import VllmMetrics
from simulator.perf.catalog import ServingProfile
from simulator.workload import RequestSpec

PROFILE_REQUESTS = 2000  # requests per profiled load point
LIGHT_LOAD_RPS = 0.02  # "idle": the attainment floor no amount of replicas improves
WARMUP_FRACTION = 0.2  # first share of them is not measured
SAMPLE_SIZE = 2000  # lengths drawn for a lognormal profile
RECENT_REQUESTS = 8000  # observed requests whose lengths make up a learned profile
SIGMA_INPUT = 0.8  # lognormal spreads used before real samples exist
SIGMA_OUTPUT = 0.7
MIN_SAMPLES = 1000  # observed requests needed before their lengths replace the lognormal
RESAMPLE_EVERY_S = 300.0  # how often the observed lengths are looked at again
MIN_OBSERVATIONS = 100  # finished requests a window needs before it corrects the profile
CF_MIN, CF_MAX = 0.7, 1.5  # bounds of one window's correction ratio


@dataclass(frozen=True, slots=True)
class PoolProfile:
    """What profiling one pool needs: its serving profile, engine flags and role."""

    profile: ServingProfile
    engine: EngineConfig
    role: str
    kv_transfer_s_per_token: float = 0.0  # P/D: KV transfer time per prompt token


@dataclass(frozen=True, slots=True)
class LengthSample:
    """Prompt and output lengths to profile with, and the share of prompts cached."""

    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    prefix_hit: float

    @classmethod
    def lognormal(cls, mix: DemandMix) -> LengthSample:
        """Draws around the mix's means, rounded to a 25 % grid so nearby mixes share one."""
        rng = np.random.default_rng(7)

        def draw(mean: float, sigma: float) -> tuple[int, ...]:
            mean = 1.25 ** round(math.log(max(mean, 1.0), 1.25))
            mu = math.log(mean) - sigma * sigma / 2
            vals = np.clip(np.round(rng.lognormal(mu, sigma, SAMPLE_SIZE)), 1, 1 << 20)
            return tuple(int(v) for v in vals)

        return cls(
            draw(mix.input_tokens, SIGMA_INPUT),
            draw(mix.output_tokens, SIGMA_OUTPUT),
            round(mix.prefix_hit_ratio * 10) / 10,
        )


@dataclass(frozen=True, slots=True)
class ProfilePoint:
    """Per-request latencies of one replica under one Poisson load (after warm-up)."""

    ttft: np.ndarray  # seconds, client-observed
    tpot: np.ndarray  # seconds; 0 for one-token answers
    completed: float  # fraction of the measured requests that completed
    ttft_p90_hist: float = math.inf  # histogram_quantile(0.9) of vllm:time_to_first_token
    itl_p90_hist: float = math.inf  # histogram_quantile(0.9) of vllm:inter_token_latency

    def attainment(self, ttft_s: float, tpot_s: float, role: str) -> float:
        if self.completed < 0.999:
            return 0.0
        if role == "prefill":
            ok = self.ttft <= ttft_s
        elif role == "decode":
            ok = self.tpot <= tpot_s
        else:
            ok = (self.ttft <= ttft_s) & (self.tpot <= tpot_s)
        return float(ok.mean())

    def p90(self) -> tuple[float, float]:
        if self.completed < 0.999:
            return math.inf, math.inf
        return float(np.percentile(self.ttft, 90)), float(np.percentile(self.tpot, 90))


@lru_cache(maxsize=8192)
def profile_point(pp: PoolProfile, lengths: LengthSample, rps: float) -> ProfilePoint:
    """Serve ``PROFILE_REQUESTS`` Poisson arrivals at ``rps`` on one replica of ``pp``."""
    rng = np.random.default_rng(12345)
    n = PROFILE_REQUESTS
    arrivals = np.cumsum(rng.exponential(1.0 / rps, n))
    pick = rng.integers(0, len(lengths.inputs), n)
    limit = pp.engine.max_model_len
    done: list[Seq] = []
    prof = pp.profile
    metrics = VllmMetrics("profile")
    eng = Engine(prof.step, prof.kv_blocks, pp.engine, metrics, done.append)
    role = pp.role
    for i in range(n):
        t = float(arrivals[i])
        isl = lengths.inputs[pick[i]]
        osl = lengths.outputs[pick[i]] if role != "prefill" else 1
        if isl + osl > limit:  # the server would reject it; it says nothing about capacity
            isl, osl = max(1, limit // 2), max(1, min(osl, limit // 2))
        shared = int(lengths.prefix_hit * isl)
        spec = RequestSpec(
            t,
            isl,
            osl,
            prefix_ids=(0,) if shared >= 16 else (),
            prefix_unit_tokens=shared if shared >= 16 else 0,
        )
        while eng.next_event_time() <= t:
            eng.run_stretch()
        eng.advance(t)
        keys = prefix_block_keys(spec, pp.engine.block_size) if spec.prefix_ids else []
        eng.add(Seq(i, spec, t, spec.output_tokens, keys, remote_kv=role == "decode"))
        if eng.num_waiting > 4 * pp.engine.max_num_seqs:
            return ProfilePoint(np.zeros(0), np.zeros(0), 0.0)  # overloaded: stop early
    horizon = float(arrivals[-1]) + 300.0
    while eng.has_work and eng.now < horizon:
        eng.run_stretch()
    start = int(n * WARMUP_FRACTION)
    ok = [s for s in done if s.rid >= start and s.finish_reason == "stop"]
    ttft = np.array([s.first_token_t - s.arrival for s in ok]) + prof.frontend_overhead_s
    if role == "decode":
        ttft += pp.kv_transfer_s_per_token * np.array([s.spec.input_tokens for s in ok])
    tpot = np.array(
        [(s.finish_t - s.first_token_t) / (s.out - 1) if s.out > 1 else 0.0 for s in ok]
    )
    return ProfilePoint(
        ttft,
        tpot,
        len(ok) / (n - start),
        metrics.time_to_first_token.snapshot().quantile(0.9),
        metrics.inter_token_latency.snapshot().quantile(0.9),
    )


def capacity_at_slo(pp: PoolProfile, lengths: LengthSample, slo: SLOTarget) -> float:
    """Largest rps per replica at which load costs at most ``1 − slo.attainment`` of requests
    their SLO (bisection to 5 %).

    Requests that miss even on an idle replica (a 14k-token prompt against a 1 s TTFT) cannot be
    helped by more replicas, so they are the floor, not the budget: with 0.5 % missing at light
    load and a 0.99 target, load may add 1 % more. Example: floor 0.995 → capacity is the highest
    rate whose attainment is still ≥ 0.985.
    """
    floor = profile_point(pp, lengths, LIGHT_LOAD_RPS).attainment(slo.ttft_s, slo.tpot_s, pp.role)
    if floor <= 0:
        return 0.0
    need = floor - (1.0 - slo.attainment)

    def meets(rps: float) -> bool:
        point = profile_point(pp, lengths, float(f"{rps:.3g}"))
        return point.attainment(slo.ttft_s, slo.tpot_s, pp.role) >= need

    lo, hi = 0.0, 0.25
    while meets(hi):
        lo, hi = hi, hi * 2
        if hi > 1e4:
            return lo
    while hi - lo > 0.05 * hi:
        mid = (lo + hi) / 2
        if meets(mid):
            lo = mid
        else:
            hi = mid
    return float(f"{lo:.3g}")


def _grid(rps: float) -> float:
    """Round a load to a grid of 10 points per decade (≈ 26 % apart), so the profiles asked for
    by ``predict`` and ``observe`` are few and cached. Example: 1.37 → 1.26, 1.5 → 1.58."""
    return float(f"{10 ** (round(math.log10(max(rps, 0.01)) * 10) / 10):.3g}")


@dataclass
class ProfileCapacityModel:
    """``policies.types.CapacityModel`` from profiles, observed lengths and observed latency."""

    pools: dict[str, PoolProfile]
    learn_latency: bool = True
    correction: dict[str, tuple[float, float]] = field(default_factory=dict)  # pool → (ttft, tpot)
    smoothing: float = 0.1
    _recent: dict[str, deque[tuple[int, int]]] = field(default_factory=dict)
    _samples: dict[str, tuple[float, LengthSample]] = field(default_factory=dict)

    def observe_requests(self, model: str, requests: Iterable[tuple[int, int]], now: float) -> None:
        """Record finished requests' (input tokens, output tokens)."""
        recent = self._recent.setdefault(model, deque(maxlen=RECENT_REQUESTS))
        recent.extend(requests)
        made = self._samples.get(model)
        if len(recent) >= MIN_SAMPLES and (made is None or now - made[0] >= RESAMPLE_EVERY_S):
            rng = np.random.default_rng(len(recent))
            rows = list(recent)
            idx = rng.integers(0, len(rows), SAMPLE_SIZE)
            self._samples[model] = (
                now,
                LengthSample(tuple(rows[i][0] for i in idx), tuple(rows[i][1] for i in idx), 0.0),
            )

    def lengths(self, model: str, mix: DemandMix) -> LengthSample:
        """Observed lengths when there are enough, else a lognormal around the mix; the prefix
        hit ratio always comes from the mix (the first-hop pools' prefix-cache counters)."""
        made = self._samples.get(model)
        if made is None:
            return LengthSample.lognormal(mix)
        hit = round(mix.prefix_hit_ratio * 10) / 10
        sample = made[1]
        return (
            sample if sample.prefix_hit == hit else LengthSample(sample.inputs, sample.outputs, hit)
        )

    def _cf(self, pool: str) -> tuple[float, float]:
        return self.correction.get(pool, (1.0, 1.0))

    def capacity(self, pool: PoolSnapshot, mix: DemandMix, slo: SLOTarget) -> Capacity:
        pp = self.pools[pool.name]
        lengths = self.lengths(pool.model, mix)
        cf_ttft, cf_tpot = self._cf(pool.name)
        target = SLOTarget(slo.ttft_s / cf_ttft, slo.tpot_s / cf_tpot, slo.attainment)
        rps = capacity_at_slo(pp, lengths, target)
        t90, p90 = profile_point(pp, lengths, rps).p90() if rps > 0 else (math.inf, math.inf)
        corrected = pool.model in self._samples or (cf_ttft, cf_tpot) != (1.0, 1.0)
        source = "profile-corrected" if corrected else "profile"
        return Capacity(rps, t90 * cf_ttft, p90 * cf_tpot, source)

    def predict(
        self, pool: PoolSnapshot, mix: DemandMix, rps_per_replica: float
    ) -> tuple[float, float]:
        pp = self.pools[pool.name]
        t90, p90 = profile_point(pp, self.lengths(pool.model, mix), _grid(rps_per_replica)).p90()
        cf_ttft, cf_tpot = self._cf(pool.name)
        return t90 * cf_ttft, p90 * cf_tpot

    def observe(self, pool: PoolSnapshot, mix: DemandMix, now: float | None = None) -> None:
        """Fold the pool's observed p90s against the profile's at the same per-replica load.

        Both sides go through the same histogram buckets and ``histogram_quantile``, so bucket
        interpolation does not bias the ratio. Windows with fewer than ``MIN_OBSERVATIONS``
        finished requests teach nothing. ``now`` is unused: the correction is an average over
        windows, not over time (models that learn on a cadence need it).
        """
        load = pool.load
        if not self.learn_latency or load is None or pool.ready == 0:
            return
        if load.ttft_p90_s is None or load.itl_p90_s is None:
            return
        if load.request_rps * load.window_s < MIN_OBSERVATIONS:
            return
        pp = self.pools[pool.name]
        point = profile_point(
            pp, self.lengths(pool.model, mix), _grid(load.request_rps / pool.ready)
        )
        old = self._cf(pool.name)
        new = list(old)
        pairs = ((load.ttft_p90_s, point.ttft_p90_hist), (load.itl_p90_s, point.itl_p90_hist))
        for i, (obs, pred) in enumerate(pairs):
            if math.isfinite(pred) and pred > 0 and math.isfinite(obs):
                ratio = min(CF_MAX, max(CF_MIN, obs / pred))
                new[i] = (1 - self.smoothing) * old[i] + self.smoothing * ratio
        self.correction[pool.name] = (new[0], new[1])
