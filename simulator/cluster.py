"""The simulated cluster: a discrete-event loop over arrivals, engine steps, pod lifecycles,
KV transfers, metric samples and controller ticks.

Every pod's engine keeps its own time and announces when it next changes state; the loop always
handles the earliest event, so requests, steps and scale actions interleave in true time order
(an engine may finish the step it has already started past the current time, as a real one would).
Runs are deterministic: the only randomness (routing ties and shedding) comes from a seeded
generator, and ties in time are broken by insertion order.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from policies.routing import Endpoint, EndpointScorer, RoutingRequest
from simulator.control import (
    ClusterView,
    ControlActions,
    Controller,
    FinishedRequest,
    LearnsFromRequests,
    PodView,
    PoolView,
)
from simulator.engine import Engine, Seq, prefix_block_keys
from simulator.metrics import GatewayMetrics, VllmMetrics
from simulator.perf.transport import TransportProfile
from simulator.pods import Phase, Pod, Pool, PoolSpec
from simulator.workload import RequestSpec, Trace

QUEUE_TIMEOUT = "FlowControlQueueTimeout"  # error code counted when a held request expires

# request status codes in the records
PENDING, DONE, SHED, FAILED = 0, 1, 2, 3

_EV_POD, _EV_PHASE, _EV_TRANSFER, _EV_TIMEOUT, _EV_SAMPLE, _EV_TICK = range(6)
_PHASE_NAMES = {Phase.PENDING: "pending", Phase.LOADING: "loading", Phase.READY: "ready"}
_PHASE_NAMES[Phase.DRAINING] = "draining"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    scorer: str = "prefix-load"
    queue_timeout_s: float = 300.0
    transport: str = "rdma"


@dataclass(slots=True)
class RequestRecords:
    """Per-request outcomes, one array slot per trace request."""

    arrival: np.ndarray
    first_token: np.ndarray
    finish: np.ndarray
    status: np.ndarray
    out_tokens: np.ndarray
    pool: np.ndarray
    overhead: np.ndarray

    @classmethod
    def empty(cls, n: int) -> RequestRecords:
        return cls(
            arrival=np.zeros(n),
            first_token=np.full(n, np.nan),
            finish=np.full(n, np.nan),
            status=np.zeros(n, dtype=np.int8),
            out_tokens=np.zeros(n, dtype=np.int64),
            pool=np.full(n, -1, dtype=np.int16),
            overhead=np.zeros(n),
        )

    def ttft(self) -> np.ndarray:
        """Client-observed time to first token (NaN where no token came)."""
        return np.asarray(self.first_token - self.arrival + self.overhead)

    def tpot(self) -> np.ndarray:
        """Mean time per output token after the first (0 for one-token answers)."""
        gen = np.maximum(self.out_tokens - 1, 1)
        tp = (self.finish - self.first_token) / gen
        return np.asarray(np.where(self.out_tokens > 1, tp, 0.0))


@dataclass(slots=True)
class Sample:
    """One row of the cluster's time series (taken every ``sample_interval_s``)."""

    t: float
    arrivals: int
    queue: int
    replicas: list[int]
    ready: list[int]
    running: list[int]
    waiting: list[int]
    kv_usage: list[float]


@dataclass(slots=True)
class SimulationOutput:
    trace: Trace
    pools: list[Pool]
    records: RequestRecords
    samples: list[Sample]
    end_s: float
    sample_interval_s: float
    controller: str


SampleHook = Callable[[float, "Cluster"], None]


class Cluster:
    """Pools of simulated vLLM pods behind a gateway, driven by a trace."""

    def __init__(
        self,
        pools: Sequence[PoolSpec],
        trace: Trace,
        scorer: EndpointScorer,
        transport: TransportProfile,
        gateway: GatewayConfig | None = None,
        controller: Controller | None = None,
        seed: int = 0,
        sample_interval_s: float = 10.0,
        default_model: str | None = None,
        sample_hooks: Sequence[tuple[float, SampleHook]] = (),
    ) -> None:
        if not pools:
            raise ValueError("a cluster needs at least one pool")
        self.pools = [Pool(spec, i) for i, spec in enumerate(pools)]
        self.trace = trace
        self.reqs: tuple[RequestSpec, ...] = trace.requests
        self.scorer = scorer
        self.transport = transport
        self.gw = gateway or GatewayConfig()
        self.controller = controller
        self._learner = scorer if isinstance(scorer, LearnsFromRequests) else None
        self.rng = np.random.default_rng(seed)
        self.sample_interval_s = sample_interval_s
        self.default_model = default_model or pools[0].model
        self.now = 0.0
        self.records = RequestRecords.empty(len(self.reqs))
        self.samples: list[Sample] = []
        self._events: list[tuple[float, int, int, object, int]] = []
        self._seq = itertools.count()
        self._by_model: dict[str, list[Pool]] = {}
        for pool in self.pools:
            self._by_model.setdefault(pool.spec.model, []).append(pool)
        self.gateway_metrics = {m: GatewayMetrics(pool=m, model_name=m) for m in self._by_model}
        self._held: dict[str, deque[int]] = {}
        self._held_set: set[int] = set()
        self._weights: dict[str, dict[str, float]] = {}
        self._admit_sheddable: dict[str, bool] = {}
        self._arrivals_since_sample = 0
        self._finished_since_tick: list[FinishedRequest] = []
        self._prefix_keys: dict[int, tuple[int, ...]] = {}
        self._features: dict[int, dict[str, float]] = {}
        self._sample_hooks = list(sample_hooks)
        self._transfers = 0
        self._wake_pending = False
        self._progress: Callable[[float, float], None] | None = None
        self._last = 0.0
        for pool in self.pools:  # initial replicas start warm
            for _ in range(pool.spec.replicas):
                pod = self._new_pod(pool)
                pod.loading_t = pod.ready_t = 0.0
                pod.phase = Phase.READY

    # ------------------------------------------------------------------ events
    def _push(self, t: float, kind: int, obj: object, version: int = 0) -> None:
        heapq.heappush(self._events, (t, next(self._seq), kind, obj, version))

    def _reschedule(self, pod: Pod) -> None:
        pod.version += 1
        t = pod.engine.next_event_time()
        if t < math.inf:
            self._push(t, _EV_POD, pod, pod.version)
        elif pod.phase == Phase.DRAINING:
            self._set_phase(pod, Phase.GONE)

    def run(
        self,
        drain_limit_s: float = 3600.0,
        progress: Callable[[float, float], None] | None = None,
    ) -> SimulationOutput:
        """Replay the trace, then let in-flight work finish (at most ``drain_limit_s`` more)."""
        reqs = self.reqs
        n = len(reqs)
        last = reqs[-1].arrival_s if n else 0.0
        horizon = last + drain_limit_s
        self._push(0.0, _EV_SAMPLE, None)
        if self.controller is not None:
            self._push(0.0, _EV_TICK, None)
        for interval, hook in self._sample_hooks:
            self._push(0.0, _EV_SAMPLE, (interval, hook))
        self._progress = progress
        self._last = last
        i = 0
        events = self._events
        while True:
            next_arrival = reqs[i].arrival_s if i < n else math.inf
            t_ev = events[0][0] if events else math.inf
            if next_arrival <= t_ev:
                if next_arrival == math.inf:
                    break
                self.now = next_arrival
                self._arrive(i)
                i += 1
                continue
            if t_ev > horizon or (next_arrival == math.inf and t_ev > last and self._idle()):
                break
            t, _s, kind, obj, version = heapq.heappop(events)
            self.now = max(self.now, t)
            self._handle(kind, obj, version)
        end = max(self.now, last)
        self._fail_unfinished()
        return SimulationOutput(
            trace=self.trace,
            pools=self.pools,
            records=self.records,
            samples=self.samples,
            end_s=end,
            sample_interval_s=self.sample_interval_s,
            controller=self.controller.name if self.controller else "static",
        )

    def _idle(self) -> bool:
        if self._held_set or self._transfers:
            return False
        return all(not p.engine.has_work for pool in self.pools for p in pool.pods)

    def _handle(self, kind: int, obj: object, version: int) -> None:
        if kind == _EV_POD:
            pod = obj
            assert isinstance(pod, Pod)
            if version != pod.version or pod.phase == Phase.GONE:
                return
            pod.engine.run_stretch()
            self._reschedule(pod)
        elif kind == _EV_PHASE:
            target, phase = cast(tuple[Pod, Phase], obj)
            if target.phase != Phase.GONE and phase > target.phase:
                self._set_phase(target, phase)
        elif kind == _EV_TRANSFER:
            self._transfers -= 1
            self._transfer_done(obj)  # type: ignore[arg-type]
        elif kind == _EV_TIMEOUT:
            self._timeout(obj)  # type: ignore[arg-type]
        elif kind == _EV_SAMPLE:
            if obj is None:
                self._sample()
                if self._progress is not None:
                    self._progress(self.now, self._last)
                self._push(self.now + self.sample_interval_s, _EV_SAMPLE, None)
            else:
                interval, hook = cast(tuple[float, SampleHook], obj)
                self._advance_all()
                hook(self.now, self)
                self._push(self.now + interval, _EV_SAMPLE, obj)
        elif kind == _EV_TICK:
            assert self.controller is not None
            self._tick()
            if obj is None:
                self._push(self.now + self.controller.tick_interval_s, _EV_TICK, None)
            else:
                self._wake_pending = False

    # ------------------------------------------------------------------ pods
    def _new_pod(self, pool: Pool) -> Pod:
        spec = pool.spec
        idx = pool.created
        pool.created += 1
        name = f"{spec.name}-{idx}"
        metrics = VllmMetrics(
            model_name=spec.model,
            max_model_len=spec.engine.max_model_len,
            extra_labels={"pod": name, "pool": spec.name},
        )
        holder: list[Pod] = []
        engine = Engine(
            spec.profile.step,
            spec.profile.kv_blocks,
            spec.engine,
            metrics,
            on_finish=lambda seq: self._on_finish(holder[0], seq),
            now=self.now,
        )
        pod = Pod(name, pool, idx, engine)
        holder.append(pod)
        pool.pods.append(pod)
        return pod

    def _set_phase(self, pod: Pod, phase: Phase) -> None:
        pod.phase = phase
        spec = pod.pool.spec
        if phase == Phase.PENDING:
            self._push(self.now + spec.startup.pending_s, _EV_PHASE, (pod, Phase.LOADING))
        elif phase == Phase.LOADING:
            pod.loading_t = self.now
            load = spec.profile.load_time_s(spec.startup.load_gbps, spec.startup.container_start_s)
            self._push(self.now + load, _EV_PHASE, (pod, Phase.READY))
        elif phase == Phase.READY:
            pod.ready_t = self.now
            pod.engine.now = max(pod.engine.now, self.now)
            self._release_held(spec.model)
        elif phase == Phase.DRAINING:
            if not pod.engine.has_work:
                self._set_phase(pod, Phase.GONE)
        elif phase == Phase.GONE:
            pod.gone_t = self.now
            pod.version += 1
            pool = pod.pool
            if pod in pool.pods:
                pool.pods.remove(pod)
                pool.retired.append(pod)
            for seq in pod.engine.abort_waiting():
                self._requeue(seq)

    def scale(self, pool: Pool, desired: int) -> None:
        """Level-based: create or retire pods until ``desired`` replicas are not draining."""
        desired = max(0, desired)
        if desired != pool.desired:
            pool.scale_events += 1
        pool.desired = desired
        live = [p for p in pool.pods if p.phase < Phase.DRAINING]
        if len(live) < desired:
            # Reclaim draining pods first: they are warm.
            for pod in [p for p in pool.pods if p.phase == Phase.DRAINING]:
                if len(live) >= desired:
                    break
                pod.phase = Phase.READY
                live.append(pod)
                self._release_held(pool.spec.model)
            while len(live) < desired:
                pod = self._new_pod(pool)
                self._set_phase(pod, Phase.PENDING)
                live.append(pod)
        elif len(live) > desired:
            # Retire the cheapest to lose: not-yet-ready pods, then the least loaded ready ones.
            victims = sorted(live, key=lambda p: (p.phase == Phase.READY, p.engine.in_flight))
            for pod in victims[: len(live) - desired]:
                if pod.phase == Phase.READY:
                    self._set_phase(pod, Phase.DRAINING)
                else:
                    self._set_phase(pod, Phase.GONE)

    def _advance_all(self) -> None:
        for pool in self.pools:
            for pod in pool.pods:
                eng = pod.engine
                if eng.has_work and eng.now < self.now:
                    eng.advance(self.now)
                    self._reschedule(pod)

    # ------------------------------------------------------------------ routing
    def _serving_roles(self, model: str) -> tuple[list[Pool], list[Pool]]:
        """(first-hop pools, decode pools) for a model: P/D when it has prefill+decode pools."""
        pools = self._by_model.get(model, [])
        prefill = [p for p in pools if p.spec.role == "prefill"]
        decode = [p for p in pools if p.spec.role == "decode"]
        if prefill and decode:
            return prefill, decode
        return [p for p in pools if p.spec.role in ("aggregated", "expert-parallel")], []

    def _candidates(self, pools: list[Pool], model: str) -> list[Pod]:
        weights = self._weights.get(model)
        if weights and len(pools) > 1:
            ready_pools = [p for p in pools if p.ready_pods and weights.get(p.spec.name, 0) > 0]
            if ready_pools:
                w = np.array([weights[p.spec.name] for p in ready_pools], dtype=float)
                choice = ready_pools[int(self.rng.choice(len(ready_pools), p=w / w.sum()))]
                return choice.ready_pods
        return [pod for p in pools for pod in p.pods if pod.phase == Phase.READY]

    def _endpoint(self, pod: Pod, i: int) -> Endpoint:
        eng = pod.engine
        m = eng.metrics
        scorer = self.scorer
        spec = pod.pool.spec
        prefix = 0.0
        if scorer.needs_prefix_score:
            keys = self._keys(i)
            if keys:
                prefix = eng.prefix_match_tokens(self.reqs[i], keys) / max(
                    1, self.reqs[i].input_tokens
                )
        return Endpoint(
            name=pod.name,
            pool=spec.name,
            accelerator=spec.accelerator,
            pod_type=spec.pod_type,
            kv_cache_percentage=m.kv_cache_usage_perc,
            num_request_waiting=eng.num_waiting,
            num_request_running=len(eng.running),
            prefill_tokens_in_flight=eng.prefill_tokens_in_flight()
            if scorer.needs_tokens_in_flight
            else 0,
            decode_tokens_in_flight=eng.decode_tokens_in_flight()
            if scorer.needs_tokens_in_flight
            else 0,
            prefix_cache_score=prefix,
        )

    def _pick(self, pods: list[Pod], i: int) -> Pod:
        if len(pods) == 1 and not self.scorer.needs_prefix_score:
            return pods[0]
        spec = self.reqs[i]
        views = [self._endpoint(p, i) for p in pods]
        req = RoutingRequest(spec.input_tokens, spec.output_tokens, spec.priority)
        j = self.scorer.pick(req, views)
        e = views[j]
        if self.controller is None and self._learner is None:
            return pods[j]
        self._features[i] = {
            "kv_cache_percentage": e.kv_cache_percentage,
            "num_request_waiting": e.num_request_waiting,
            "num_request_running": e.num_request_running,
            "prefill_tokens_in_flight": e.prefill_tokens_in_flight,
            "decode_tokens_in_flight": e.decode_tokens_in_flight,
            "prefix_cache_score": e.prefix_cache_score,
        }
        return pods[j]

    def _keys(self, i: int) -> tuple[int, ...]:
        keys = self._prefix_keys.get(i)
        if keys is None:
            spec = self.reqs[i]
            keys = prefix_block_keys(spec, 16) if spec.prefix_ids else ()
            if keys:
                self._prefix_keys[i] = keys
        return keys

    def _arrive(self, i: int) -> None:
        spec = self.reqs[i]
        self.records.arrival[i] = spec.arrival_s
        self._arrivals_since_sample += 1
        model = spec.model or self.default_model
        if spec.priority < 0 and not self._admit_sheddable.get(model, True):
            self.records.status[i] = SHED
            self.gateway_metrics[model].record_shed()
            return
        if model not in self._by_model:
            self.records.status[i] = FAILED
            return
        if not self._dispatch(i, model):
            self._hold(i, model)

    def _dispatch(self, i: int, model: str) -> bool:
        first, decode = self._serving_roles(model)
        pods = self._candidates(first, model)
        if not pods:
            return False
        dpod: Pod | None = None
        if decode:
            dpods = self._candidates(decode, model)
            if not dpods:
                return False
            dpod = self._pick(dpods, i)
        pod = self._pick(pods, i)
        spec = self.reqs[i]
        target = 1 if dpod is not None else spec.output_tokens
        seq = Seq(i, spec, self.now, target, self._keys(i), owner=dpod)
        self._submit(pod, seq)
        return True

    def _submit(self, pod: Pod, seq: Seq) -> None:
        if not seq.remote_kv:
            gw = self.gateway_metrics.get(pod.pool.spec.model)
            if gw is not None:
                gw.record_scheduled()
        eng = pod.engine
        eng.advance(self.now)
        eng.add(seq)
        self._reschedule(pod)

    def _hold(self, i: int, model: str) -> None:
        q = self._held.setdefault(model, deque())
        q.append(i)
        self._held_set.add(i)
        at_zero = all(not p.pods for p in self._by_model[model])
        if self.controller is not None and not self._wake_pending and at_zero:
            self._wake_pending = True
            self._push(self.now + self.controller.wake_delay_s, _EV_TICK, "wake")
        self.gateway_metrics[model].set_queue_size(self._queued(model))
        self._push(self.now + self.gw.queue_timeout_s, _EV_TIMEOUT, i)

    def _release_held(self, model: str) -> None:
        q = self._held.get(model)
        while q:
            i = q[0]
            if i not in self._held_set:
                q.popleft()
                continue
            if not self._dispatch(i, model):
                break
            q.popleft()
            self._held_set.discard(i)
        if model in self.gateway_metrics:
            self.gateway_metrics[model].set_queue_size(self._queued(model))

    def _queued(self, model: str) -> int:
        return sum(1 for i in self._held.get(model, ()) if i in self._held_set)

    def _timeout(self, i: int) -> None:
        if i in self._held_set:
            self._held_set.discard(i)
            self.records.status[i] = FAILED
            model = self.reqs[i].model or self.default_model
            gw = self.gateway_metrics[model]
            gw.record_shed(error_code=QUEUE_TIMEOUT)
            gw.set_queue_size(self._queued(model))

    def _requeue(self, seq: Seq) -> None:
        """A request stranded on a deleted pod goes back through the gateway."""
        i = seq.rid
        model = seq.spec.model or self.default_model
        if seq.remote_kv:
            self._transfer_done((seq, None))
        elif not self._dispatch(i, model):
            self._hold(i, model)

    # ------------------------------------------------------------------ completions
    def _on_finish(self, pod: Pod, seq: Seq) -> None:
        i = seq.rid
        rec = self.records
        if seq.finish_reason in ("rejected", "abort"):
            rec.status[i] = FAILED
            return
        dpod = seq.owner
        if isinstance(dpod, Pod) and not seq.remote_kv:
            # prefill done on a prefill pod: ship the KV to the decode pod
            nbytes = seq.spec.input_tokens * pod.pool.spec.profile.model.kv_bytes_per_token
            t = seq.finish_t + self.transport.transfer_time_s(nbytes)
            self._transfers += 1
            self._push(t, _EV_TRANSFER, (seq, dpod))
            return
        rec.first_token[i] = seq.first_token_t
        rec.finish[i] = seq.finish_t
        rec.out_tokens[i] = seq.out
        rec.status[i] = DONE
        rec.pool[i] = pod.pool.index
        rec.overhead[i] = pod.pool.spec.profile.frontend_overhead_s
        if self.controller is not None or self._learner is not None:
            ttft = seq.first_token_t - rec.arrival[i] + rec.overhead[i]
            tpot = (seq.finish_t - seq.first_token_t) / (seq.out - 1) if seq.out > 1 else 0.0
            sample = FinishedRequest(
                pool=pod.pool.spec.name,
                pod=pod.name,
                arrival_s=float(rec.arrival[i]),
                input_tokens=seq.spec.input_tokens,
                output_tokens=seq.out,
                prefix_hit_tokens=seq.prefix_hit_tokens,
                ttft_s=ttft,
                tpot_s=tpot,
                features=self._features.pop(seq.rid, {}),
            )
            if self.controller is not None:
                self._finished_since_tick.append(sample)
            if self._learner is not None:
                self._learner.observe(sample, seq.finish_t)

    def _transfer_done(self, payload: tuple[Seq, Pod | None]) -> None:
        seq, dpod = payload
        i = seq.rid
        model = seq.spec.model or self.default_model
        if dpod is None or dpod.phase not in (Phase.READY, Phase.DRAINING):
            _first, decode = self._serving_roles(model)
            pods = self._candidates(decode, model)
            if not pods:
                self.records.status[i] = FAILED
                return
            dpod = self._pick(pods, i)
        dseq = Seq(i, seq.spec, self.now, seq.spec.output_tokens, [], remote_kv=True)
        self._submit(dpod, dseq)

    def _fail_unfinished(self) -> None:
        """Requests still in flight when the drain limit ran out count as failed."""
        st = self.records.status
        st[st == PENDING] = FAILED

    # ------------------------------------------------------------------ observation
    def _sample(self) -> None:
        self._advance_all()
        s = Sample(
            t=self.now,
            arrivals=self._arrivals_since_sample,
            queue=len(self._held_set),
            replicas=[p.replicas for p in self.pools],
            ready=[len(p.ready_pods) for p in self.pools],
            running=[sum(len(pod.engine.running) for pod in p.pods) for p in self.pools],
            waiting=[sum(pod.engine.num_waiting for pod in p.pods) for p in self.pools],
            kv_usage=[
                float(np.mean([pod.engine.kv.usage for pod in p.ready_pods]))
                if p.ready_pods
                else 0.0
                for p in self.pools
            ],
        )
        self._arrivals_since_sample = 0
        self.samples.append(s)

    def metric_sources(self) -> list[VllmMetrics | GatewayMetrics]:
        """Every live pod's vLLM metrics and the gateway's, for scraping or recording."""
        out: list[VllmMetrics | GatewayMetrics] = [
            pod.engine.metrics for pool in self.pools for pod in pool.pods
        ]
        out.extend(self.gateway_metrics.values())
        return out

    def view(self) -> ClusterView:
        pools = tuple(
            PoolView(
                name=p.spec.name,
                model=p.spec.model,
                role=p.spec.role,
                accelerator=p.spec.accelerator,
                gpus_per_replica=p.spec.gpus_per_replica,
                price_per_gpu_hour=p.spec.price_per_gpu_hour,
                min_replicas=p.spec.min_replicas,
                max_replicas=p.spec.max_replicas,
                desired=p.desired,
                pods=tuple(
                    PodView(
                        pod.name,
                        _PHASE_NAMES[pod.phase],
                        pod.loading_t,
                        pod.ready_t,
                        pod.engine.metrics,
                    )
                    for pod in p.pods
                ),
                startup_estimate_s=p.spec.startup_time_s(),
            )
            for p in self.pools
        )
        finished = self._finished_since_tick
        self._finished_since_tick = []
        return ClusterView(self.now, pools, self.gateway_metrics, finished)

    def _tick(self) -> None:
        assert self.controller is not None
        self._advance_all()
        actions = self.controller.tick(self.view())
        self.apply(actions)

    def apply(self, actions: ControlActions) -> None:
        by_name = {p.spec.name: p for p in self.pools}
        if actions.replicas:
            for name, n in actions.replicas.items():
                self.scale(by_name[name], n)
        if actions.routing_weights is not None:
            self._weights = {m: dict(w) for m, w in actions.routing_weights.items()}
        if actions.admit_sheddable is not None:
            self._admit_sheddable = dict(actions.admit_sheddable)
