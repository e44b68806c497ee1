"""Simulator adapters for the baselines: each reads the simulated cluster the way its upstream's
metrics pipeline would, calls the pure decision in ``policies.baselines``, and writes replicas.

Why adapters and not re-implementations inside the simulator: every contender must see the same
pods, the same start-up delays and the same gateway as ``slo`` does, through the same
``simulator.control.Controller`` seam; only *what* each reads differs, as it does upstream:

- ``hpa-kv`` — one HPA per pool on the per-pod gauge ``vllm:kv_cache_usage_perc`` (target 0.8),
  synced every 15 s. Pods still loading weights expose no metrics (HPA's *missing* pods);
  pending and draining pods are ignored.
- ``keda-queue`` — one ScaledObject per pool; the trigger's query is the pool's
  ``sum(vllm:num_requests_waiting)`` plus, for pools that take requests from the gateway, the
  model's flow-control queue (``inference_extension_flow_control_queue_size``): without it a
  pool at zero has no pods to report waiting requests and could never activate. Scenario pools
  start warm, so each ScaledObject starts as if just active (``lastActiveTime`` = 0).
- ``wva-saturation`` — per model, every 60 s, from each ready pod's peak KV usage and queue over
  the last minute (samples every 15 s, Prometheus' scrape interval); its desired replicas reach
  the pools through an HPA each (``External`` metric, ``AverageValue: 1``, default behaviour),
  WVA's documented deployment; 0 ↔ 1 WVA writes itself.
- ``dynamo-throughput`` — per P/D pair or aggregated pool, every 180 s, from the interval's
  request count (the gateway's), mean lengths and mean TTFT/ITL of the finished requests (the
  frontend's histograms); offline profiles measured on the pool's own engine model
  (:func:`prefill_profile`, :func:`decode_profile`), as Dynamo's profiler would on hardware.

Scale to zero is allowed to a baseline exactly where the scenario allows it to ``slo``
(``policy.params.scale_to_zero``); elsewhere the floor is ``max(1, min_replicas)``. Where a
baseline asks for more replicas than the scenario's GPU inventory holds, the extra pods are
*unschedulable*: the baseline sees them as pending (it wrote ``spec.replicas``), the simulator
never starts them — as a Kubernetes cluster out of GPUs behaves.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from policies.baselines.dynamo import (
    DecodeProfile,
    DecodeRow,
    DynamoConfig,
    DynamoState,
    IntervalMetrics,
    PrefillProfile,
    plan,
    plan_aggregated,
)
from policies.baselines.hpa import (
    HPAConfig,
    HPAState,
    PodMetric,
    PodPhase,
    external_average_value_replicas,
    hpa_reconcile,
    pods_metric_replicas,
)
from policies.baselines.keda import KedaConfig, KedaState, keda_step
from policies.baselines.wva import (
    ReplicaMetrics,
    SaturationConfig,
    VariantState,
    analyze,
    saturation_targets,
    scale_to_zero_target,
)
from simulator.control import ClusterView, ControlActions, FinishedRequest, PoolView
from simulator.engine import Engine, EngineConfig, Seq
from simulator.metrics import VllmMetrics
from simulator.perf.catalog import ServingProfile
from simulator.scenario import Scenario
from simulator.workload import RequestSpec

SYNC_S = 15.0  # HPA sync period and Prometheus scrape interval
_EPS = 1e-9
_K8S_PHASE: dict[str, PodPhase] = {
    "pending": "pending",
    "loading": "running",  # container running, no /metrics until the weights are loaded
    "ready": "running",
    "draining": "terminating",
}


def replica_floor(scenario: Scenario, pool: str) -> int:
    """0 where the scenario lets ``slo`` scale the pool to zero, else ``max(1, min_replicas)``."""
    spec = next(p for p in scenario.pools if p.name == pool)
    zero = scenario.policy.params.get("scale_to_zero", ())
    return 0 if pool in zero and spec.min_replicas == 0 else max(1, spec.min_replicas)


@dataclass
class Actuator:
    """``spec.replicas`` per pool as the baseline wrote them, and what the cluster can run.

    GPUs of an accelerator are granted to pools in scenario order; pods beyond the inventory
    stay unschedulable (counted in :meth:`unschedulable`, never started)."""

    spec: dict[str, int]
    gpus: dict[str, int]  # pool → GPUs per replica
    accelerator: dict[str, str]
    inventory: Mapping[str, int]

    @classmethod
    def for_scenario(cls, scenario: Scenario) -> Actuator:
        return cls(
            {p.name: p.replicas for p in scenario.pools},
            {p.name: p.gpus for p in scenario.pools},
            {p.name: p.accelerator for p in scenario.pools},
            dict(scenario.inventory),
        )

    def schedulable(self) -> dict[str, int]:
        used: dict[str, int] = {}
        out = {}
        for pool, want in self.spec.items():
            acc = self.accelerator[pool]
            limit = self.inventory.get(acc)
            n = want
            if limit is not None:
                n = min(want, max(0, (limit - used.get(acc, 0)) // self.gpus[pool]))
            used[acc] = used.get(acc, 0) + n * self.gpus[pool]
            out[pool] = n
        return out

    def unschedulable(self, pool: str) -> int:
        return self.spec[pool] - self.schedulable()[pool]

    def actions(self) -> ControlActions:
        return ControlActions(replicas=self.schedulable())


def _pod_metrics(pool: PoolView, unschedulable: int, gauge: str) -> list[PodMetric]:
    """The pool's pods as HPA sees them, with ``gauge`` read from the ready ones."""
    pods = []
    for pod in pool.pods:
        phase = _K8S_PHASE[pod.phase]
        value = float(getattr(pod.metrics, gauge)) if pod.phase == "ready" else None
        pods.append(PodMetric(pod.name, phase, value))
    pods += [
        PodMetric(f"{pool.name}-unschedulable-{i}", "pending", None) for i in range(unschedulable)
    ]
    return pods


@dataclass
class _Synced:
    """Runs the baseline only on its own sync grid; off-grid wake-up ticks get no opinion."""

    next_sync_t: float = 0.0

    def due(self, now: float, period: float) -> bool:
        if now + _EPS < self.next_sync_t:
            return False
        self.next_sync_t = now + period
        return True


# ---------------------------------------------------------------------------- hpa-kv
@dataclass
class HPAKVController:
    """``simulator.control.Controller`` with one HPA per pool on mean KV-cache usage."""

    configs: dict[str, HPAConfig]
    actuator: Actuator
    target: float = 0.8
    name: str = "hpa-kv"
    tick_interval_s: float = SYNC_S
    wake_delay_s: float = SYNC_S  # HPA has no wake-up path; the tick is a no-op off the grid
    states: dict[str, HPAState] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    _sync: _Synced = field(default_factory=_Synced)

    def tick(self, view: ClusterView) -> ControlActions:
        if not self._sync.due(view.now, self.tick_interval_s):
            return ControlActions()
        for pool in view.pools:
            cfg = self.configs[pool.name]
            current = self.actuator.spec[pool.name]
            pods = _pod_metrics(pool, self.actuator.unschedulable(pool.name), "kv_cache_usage_perc")
            desired = pods_metric_replicas(current, pods, self.target, cfg.tolerance)
            state = self.states.get(pool.name, HPAState())
            new, reason, self.states[pool.name] = hpa_reconcile(
                current, desired, cfg, state, view.now
            )
            self.actuator.spec[pool.name] = new
            self.reasons[pool.name] = reason.value
        return self.actuator.actions()


def hpa_kv_controller(scenario: Scenario) -> HPAKVController:
    configs = {
        p.name: HPAConfig(min_replicas=max(1, p.min_replicas), max_replicas=p.max_replicas)
        for p in scenario.pools
    }
    return HPAKVController(configs, Actuator.for_scenario(scenario))


# ---------------------------------------------------------------------------- keda-queue
def _first_hop(pool: PoolView, pools: Sequence[PoolView]) -> bool:
    """Whether the gateway hands requests to this pool (not the decode side of P/D)."""
    if pool.role != "decode":
        return True
    return not any(p.model == pool.model and p.role == "prefill" for p in pools)


@dataclass
class KedaQueueController:
    """One ScaledObject per pool on waiting requests (plus the gateway queue, first hop)."""

    configs: dict[str, KedaConfig]
    actuator: Actuator
    name: str = "keda-queue"
    tick_interval_s: float = SYNC_S
    wake_delay_s: float = SYNC_S
    states: dict[str, KedaState] = field(default_factory=dict)
    _sync: _Synced = field(default_factory=_Synced)

    def tick(self, view: ClusterView) -> ControlActions:
        if not self._sync.due(view.now, self.tick_interval_s):
            return ControlActions()
        for pool in view.pools:
            waiting = sum(p.metrics.num_requests_waiting for p in pool.pods if p.phase == "ready")
            if _first_hop(pool, view.pools) and pool.model in view.gateway:
                waiting += view.gateway[pool.model].queue_size
            state = self.states.get(pool.name, KedaState(last_active_t=0.0))
            current = self.actuator.spec[pool.name]
            new, _reason, _hpa, self.states[pool.name] = keda_step(
                float(waiting), current, self.configs[pool.name], state, view.now
            )
            self.actuator.spec[pool.name] = new
        return self.actuator.actions()


def keda_queue_controller(scenario: Scenario) -> KedaQueueController:
    configs = {
        p.name: KedaConfig(
            min_replica_count=replica_floor(scenario, p.name), max_replica_count=p.max_replicas
        )
        for p in scenario.pools
    }
    return KedaQueueController(configs, Actuator.for_scenario(scenario))


# ---------------------------------------------------------------------------- wva-saturation
@dataclass
class WVASaturationController:
    """WVA's saturation V1 per model, every 60 s, on 1-minute peaks of the pods' gauges; its
    ``wva_desired_replicas`` drives one HPA per pool (``External``, ``AverageValue: 1``, default
    behaviour), as WVA is deployed; 0 ↔ 1 WVA writes directly (HPA cannot leave zero)."""

    config: SaturationConfig
    actuator: Actuator
    costs: dict[str, float]  # pool → cost per replica ($/h)
    floors: dict[str, int]
    hpa: dict[str, HPAConfig]
    name: str = "wva-saturation"
    tick_interval_s: float = SYNC_S  # scrape and HPA sync; the analysis runs every 60 s
    wake_delay_s: float = 0.1  # WVA polls the gateway queue every 100 ms for scale from zero
    desired: dict[str, int] = field(default_factory=dict)  # wva_desired_replicas (VA status)
    hpa_states: dict[str, HPAState] = field(default_factory=dict)
    _samples: dict[str, deque[tuple[float, float, float]]] = field(default_factory=dict)
    _successes: dict[str, deque[float]] = field(default_factory=dict)
    _scrape: _Synced = field(default_factory=_Synced)
    _next_analysis_t: float = 0.0

    def tick(self, view: ClusterView) -> ControlActions:
        for r in view.finished:
            self._successes.setdefault(r.pool, deque()).append(view.now)
        changed = self._wake(view)
        if self._scrape.due(view.now, self.tick_interval_s):
            self._record(view)
            if view.now + _EPS >= self._next_analysis_t:
                self._next_analysis_t = view.now + self.config.interval_s
                self._analyse(view)
            self._hpa_sync(view.now)
            changed = True
        return self.actuator.actions() if changed else ControlActions()

    def _wake(self, view: ClusterView) -> bool:
        """Scale from zero: requests held at the gateway for a model whose pools are all at 0
        wake its cheapest pool."""
        changed = False
        for model, gw in view.gateway.items():
            pools = [p for p in view.pools if p.model == model and _first_hop(p, view.pools)]
            if gw.queue_size > 0 and all(self.actuator.spec[p.name] == 0 for p in pools):
                pick = min(pools, key=lambda p: (self.costs[p.name], p.name))
                self.actuator.spec[pick.name] = 1
                self.desired[pick.name] = 1
                changed = True
        return changed

    def _record(self, view: ClusterView) -> None:
        horizon = view.now - self.config.interval_s
        live = set()
        for pool in view.pools:
            for pod in pool.pods:
                if pod.phase != "ready":
                    continue
                live.add(pod.name)
                m = pod.metrics
                q = self._samples.setdefault(pod.name, deque())
                q.append((view.now, m.kv_cache_usage_perc, float(m.num_requests_waiting)))
                while q and q[0][0] <= horizon + _EPS:
                    q.popleft()
        for name in [n for n in self._samples if n not in live]:
            del self._samples[name]
        for done in self._successes.values():
            while done and done[0] <= view.now - self.config.retention_s:
                done.popleft()

    def _analyse(self, view: ClusterView) -> None:
        for model in sorted({p.model for p in view.pools}):
            pools = [p for p in view.pools if p.model == model]
            for group in _variant_groups(pools):
                self._analyse_group(view, group)

    def _analyse_group(self, view: ClusterView, pools: Sequence[PoolView]) -> None:
        metrics = []
        variants = []
        for pool in pools:
            for pod in pool.pods:
                q = self._samples.get(pod.name)
                if pod.phase == "ready" and q:
                    kv = max(s[1] for s in q)
                    waiting = max(s[2] for s in q)
                    metrics.append(ReplicaMetrics(pod.name, pool.name, kv, waiting))
            current = self.actuator.spec[pool.name]
            variants.append(
                VariantState(
                    pool.name,
                    self.costs[pool.name],
                    current,
                    self.desired.get(pool.name, 0),
                    max(0, current - pool.ready),
                )
            )
        targets = saturation_targets(analyze(metrics, self.config), variants)
        for pool in pools:
            target = targets[pool.name]
            if self.floors[pool.name] == 0:
                successes = len(self._successes.get(pool.name, ()))
                known = view.now >= self.config.retention_s
                queued = view.gateway[pool.model].queue_size if pool.model in view.gateway else 0
                current = self.actuator.spec[pool.name]
                target = scale_to_zero_target(target, current, successes if known else None, queued)
                if target == 0 or current == 0:
                    self.actuator.spec[pool.name] = target  # WVA scales 0 ↔ 1 itself
            self.desired[pool.name] = target

    def _hpa_sync(self, now: float) -> None:
        for pool, cfg in self.hpa.items():
            current = self.actuator.spec[pool]
            wanted = self.desired.get(pool)
            metric = (
                None
                if wanted is None
                else external_average_value_replicas(current, wanted, 1.0, cfg.tolerance)
            )
            state = self.hpa_states.get(pool, HPAState())
            new, _reason, self.hpa_states[pool] = hpa_reconcile(current, metric, cfg, state, now)
            self.actuator.spec[pool] = new


def _variant_groups(pools: Sequence[PoolView]) -> list[list[PoolView]]:
    """Pools that are variants of one another: the same role (aggregated and EP together)."""
    groups: dict[str, list[PoolView]] = {}
    for p in pools:
        key = "serving" if p.role in ("aggregated", "expert-parallel") else p.role
        groups.setdefault(key, []).append(p)
    return list(groups.values())


def wva_saturation_controller(scenario: Scenario) -> WVASaturationController:
    specs = {s.name: s for s in scenario.pool_specs()}
    return WVASaturationController(
        SaturationConfig(),
        Actuator.for_scenario(scenario),
        costs={n: s.price_per_gpu_hour * s.gpus_per_replica for n, s in specs.items()},
        floors={p.name: replica_floor(scenario, p.name) for p in scenario.pools},
        hpa={
            p.name: HPAConfig(min_replicas=max(1, p.min_replicas), max_replicas=p.max_replicas)
            for p in scenario.pools
        },
    )


# ---------------------------------------------------------------------------- dynamo-throughput
@lru_cache(maxsize=256)
def _single_request_ttft_s(profile: ServingProfile, engine: EngineConfig, isl: int) -> float:
    """Client TTFT of one request alone on an idle engine (chunked prefill as configured)."""
    done: list[Seq] = []
    eng = Engine(profile.step, profile.kv_blocks, engine, VllmMetrics("profile"), done.append)
    eng.add(Seq(0, RequestSpec(0.0, isl, 1), 0.0, 1, []))
    while eng.has_work:
        eng.run_stretch()
    return done[0].first_token_t + profile.frontend_overhead_s


def _grid(start: int, stop: int) -> list[int]:
    """Powers of two from ``start`` below ``stop``, then ``stop`` itself."""
    out = []
    x = start
    while x < stop:
        out.append(x)
        x *= 2
    return [*out, stop]


@lru_cache(maxsize=64)
def prefill_profile(profile: ServingProfile, engine: EngineConfig) -> PrefillProfile:
    """TTFT and prompt tokens/s per GPU of one request alone, ISL from 64 to the longest prompt
    the engine holds. Example (H100, Llama-3-8B, 8,192-token budget): 2,048 tokens prefill in
    ≈ 74 ms plus the frontend's overhead."""
    longest = min(engine.max_model_len, profile.kv_tokens) - 1
    isl = _grid(64, max(65, longest))
    ttft = [_single_request_ttft_s(profile, engine, n) for n in isl]
    thpt = [n / t / profile.gpus for n, t in zip(isl, ttft, strict=True)]
    return PrefillProfile(tuple(map(float, isl)), tuple(ttft), tuple(thpt))


@lru_cache(maxsize=64)
def decode_profile(profile: ServingProfile, engine: EngineConfig) -> DecodeProfile:
    """Decode-only step time (= ITL) and output tokens/s per GPU by concurrency, per context
    length, up to ``max_num_seqs`` and the KV cache. Example (H100, Llama-3-8B): 64 sequences
    at 1,000 tokens of context step in ≈ 10.6 ms → 64 / 0.0106 ≈ 6,000 tokens/s."""
    rows = []
    top_ctx = max(129, min(engine.max_model_len, profile.kv_tokens))
    for ctx in _grid(128, top_ctx):
        most = min(engine.max_num_seqs, profile.kv_tokens // ctx)
        if most < 1:
            break
        conc = _grid(1, most) if most > 1 else [1]
        itl = [profile.step.step_time(0, 0, n, n * ctx) for n in conc]
        thpt = [n / t / profile.gpus for n, t in zip(conc, itl, strict=True)]
        rows.append(DecodeRow(float(ctx), tuple(map(float, conc)), tuple(itl), tuple(thpt)))
    return DecodeProfile(tuple(rows))


@dataclass
class _PlannerGroup:
    """One planner: a P/D pair of pools, or one aggregated/EP pool."""

    prefill_pool: str | None  # None for aggregated
    decode_pool: str  # the pool requests finish on (the aggregated pool itself)
    model: str
    config: DynamoConfig
    prefill: PrefillProfile
    decode: DecodeProfile
    state: DynamoState = field(default_factory=DynamoState)
    finished: list[FinishedRequest] = field(default_factory=list)

    @property
    def pools(self) -> tuple[str, ...]:
        return (
            (self.decode_pool,)
            if self.prefill_pool is None
            else (
                self.prefill_pool,
                self.decode_pool,
            )
        )


def _interval_metrics(rows: Sequence[FinishedRequest], num_req: float) -> IntervalMetrics | None:
    if not rows:
        return None
    n = len(rows)
    tokens = sum(max(0, r.output_tokens - 1) for r in rows)
    itl = sum(r.tpot_s * max(0, r.output_tokens - 1) for r in rows) / tokens if tokens else 0.0
    duration = sum(r.ttft_s + r.tpot_s * max(0, r.output_tokens - 1) for r in rows) / n
    return IntervalMetrics(
        num_req=num_req,
        isl=sum(r.input_tokens for r in rows) / n,
        osl=sum(r.output_tokens for r in rows) / n,
        ttft_s=sum(r.ttft_s for r in rows) / n,
        itl_s=itl,
        request_duration_s=duration,
    )


@dataclass
class DynamoThroughputController:
    """Dynamo's SLA planner per P/D pair or aggregated pool, every 180 s."""

    groups: list[_PlannerGroup]
    actuator: Actuator
    ceilings: dict[str, int]
    name: str = "dynamo-throughput"
    tick_interval_s: float = 180.0
    wake_delay_s: float = 180.0  # no scale from zero (min 1 replica per pool)
    _offered: dict[str, int] = field(default_factory=dict)  # model → gateway requests so far
    _sync: _Synced = field(default_factory=_Synced)

    def tick(self, view: ClusterView) -> ControlActions:
        for g in self.groups:
            g.finished += [r for r in view.finished if r.pool == g.decode_pool]
        if not self._sync.due(view.now, self.tick_interval_s):
            return ControlActions()
        offered: dict[str, int] = {}
        for model, gw in view.gateway.items():
            total = gw.requests_total + sum(gw.request_errors.values()) + gw.queue_size
            offered[model] = total - self._offered.get(model, 0)
            self._offered[model] = total
        if view.now <= _EPS:
            return ControlActions()  # nothing observed yet
        ready = {p.name: p.ready for p in view.pools}
        for model in {g.model for g in self.groups}:
            mine = [g for g in self.groups if g.model == model]
            done = sum(len(g.finished) for g in mine)
            for g in mine:
                share = len(g.finished) / done if done else 0.0
                self._plan(g, offered.get(model, 0) * share, ready)
        for g in self.groups:
            g.finished = []
        return self.actuator.actions()

    def _plan(self, g: _PlannerGroup, num_req: float, ready: Mapping[str, int]) -> None:
        m = _interval_metrics(g.finished, num_req)
        if g.prefill_pool is None:
            n, g.state = plan_aggregated(
                m, ready[g.decode_pool], g.prefill, g.decode, g.config, g.state
            )
            if n is not None:
                self.actuator.spec[g.decode_pool] = min(self.ceilings[g.decode_pool], n)
            return
        out, g.state = plan(m, ready[g.decode_pool], g.prefill, g.decode, g.config, g.state)
        if out is not None:
            self.actuator.spec[g.prefill_pool] = min(self.ceilings[g.prefill_pool], out.prefill)
            self.actuator.spec[g.decode_pool] = min(self.ceilings[g.decode_pool], out.decode)


def dynamo_throughput_controller(scenario: Scenario) -> DynamoThroughputController:
    specs = {s.name: s for s in scenario.pool_specs()}
    slo_ttft, slo_itl = scenario.slo.ttft_ms / 1000, scenario.slo.tpot_ms / 1000
    groups: list[_PlannerGroup] = []
    for model in sorted({p.model for p in scenario.pools}):
        pools = [specs[p.name] for p in scenario.pools if p.model == model]
        prefill = [p for p in pools if p.role == "prefill"]
        decode = [p for p in pools if p.role == "decode"]
        if prefill and decode:
            pf, dc = prefill[0], decode[0]
            budget = scenario.inventory.get(pf.accelerator)
            if budget is not None and dc.accelerator != pf.accelerator:
                budget = None  # a budget spans one accelerator type
            groups.append(
                _PlannerGroup(
                    pf.name,
                    dc.name,
                    model,
                    DynamoConfig(
                        slo_ttft,
                        slo_itl,
                        prefill_gpus=pf.gpus_per_replica,
                        decode_gpus=dc.gpus_per_replica,
                        max_gpu_budget=budget,
                    ),
                    prefill_profile(pf.profile, pf.engine),
                    decode_profile(dc.profile, dc.engine),
                )
            )
        for p in pools:
            if p.role not in ("aggregated", "expert-parallel"):
                continue
            groups.append(
                _PlannerGroup(
                    None,
                    p.name,
                    model,
                    DynamoConfig(
                        slo_ttft,
                        slo_itl,
                        prefill_gpus=p.gpus_per_replica,
                        decode_gpus=p.gpus_per_replica,
                        max_gpu_budget=scenario.inventory.get(p.accelerator),
                    ),
                    prefill_profile(p.profile, p.engine),
                    decode_profile(p.profile, p.engine),
                )
            )
    return DynamoThroughputController(
        groups, Actuator.for_scenario(scenario), {p.name: p.max_replicas for p in scenario.pools}
    )
