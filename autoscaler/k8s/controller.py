"""The in-cluster controller: one level-based tick over every SLOPolicy.

Why this shape (controller-runtime's reconcile, HPA's loop): each tick re-reads everything —
policies, each pool's ``scale`` subresource, the pods' readiness — builds a snapshot, runs the
same pure decision core the simulator runs (``policies.decide``, one policy state per
SLOPolicy), and writes *absolute* targets. Nothing depends on having seen the previous event, so
a restarted or newly elected controller converges from the cluster alone. The one piece of
decision state that must outlive a leader — each pool's recommendations inside its stabilization
windows — is written to the status every tick and read back by a controller that has not seen
the policy before, so a restart does not shorten a scale-down window.

Per policy, in order:

1. **Validate** — the spec through the pydantic models (defaults applied, cross-field rules);
   every pool's target must exist. A problem sets ``Ready=False`` with a reason
   (``InvalidSpec``, ``TargetNotFound``) naming it, emits one Warning Event, and the tick moves
   on to the next policy: one bad policy never blocks the others or crashes the controller.
2. **Observe** — ``scale`` per pool (current replicas, pod selector), ready pods per namespace
   (one list per namespace, matched by selector), then one metrics-source call for all
   policies: queries grow with neither pods nor pools.
3. **Decide** — ``policies.decide`` with the policy's config and state (a pool without a
   metrics window does not shrink); one log line per pool.
4. **Act**, by ``spec.mode``:
   ``direct`` writes the scale subresource (absolute replicas, conditional on the
   resourceVersion read this tick; on 409 it re-reads and writes once more only if the fresh
   value still differs — never a blind retry); ``hpa`` publishes desired replicas on the
   external metrics board and itself moves a pool between 0 and 1 (HPA leaves a target at 0
   alone and cannot take one to 0); ``advisory`` writes nothing but status, metrics and events.
   Routing weights go to the referenced HTTPRoute's ``backendRefs[].weight`` (not in advisory).
5. **Report** — status (per pool current/ready/desired, reason, predictions; conditions
   ``Ready``, ``ModelReady``, ``MetricsAvailable``, ``ScalingLimited``; ``observedGeneration``),
   an Event per scale change with the decision's reason, and the controller's own metrics.

Errors are this package's (:mod:`autoscaler.k8s.errors`): a retryable failure keeps the last
good decision and is retried next tick; a terminal one is reported on the policy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from autoscaler.clock import Clock
from autoscaler.crd import (
    API_VERSION,
    KIND,
    Pool,
    SLOPolicySpec,
    SLOPolicyStatus,
    parse_spec,
    validation_message,
)
from autoscaler.crd import Recommendation as PersistedRecommendation
from autoscaler.external_metrics import DesiredReplicasBoard
from autoscaler.k8s.client import Cluster, PodView, ScaleView, TargetRef
from autoscaler.k8s.errors import ConflictError, KubernetesError, NotFoundError
from autoscaler.k8s.selectors import Selector, SelectorError, parse_selector
from autoscaler.k8s.sources import (
    CapacitySource,
    ModelStatus,
    PolicyMetricsSource,
    PolicyObservation,
    PolicyRef,
    PoolRef,
)
from autoscaler.k8s.timestamps import parse_rfc3339, rfc3339
from autoscaler.logging import get_logger
from autoscaler.loop import decision_fields
from policies.decide import decide
from policies.reasons import Reason
from policies.types import (
    ClusterSnapshot,
    Decision,
    ModelSnapshot,
    PolicyConfig,
    PolicyState,
    PoolDecision,
    PoolLimits,
    PoolSnapshot,
    PoolState,
    Recommendation,
    SLOTarget,
)

Obj = dict[str, Any]
ConditionStatus = Literal["True", "False", "Unknown"]

LIMITING = frozenset(
    {
        Reason.ScaleUpLimit,
        Reason.ScaleDownLimit,
        Reason.TooFewReplicas,
        Reason.TooManyReplicas,
        Reason.GPUBudget,
    }
)
ROUTE_WEIGHT_SCALE = 1000  # backendRef weights are integers: per-mille of the route's traffic
COMPONENT = "sloscaler"


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    tick_s: float = 15.0  # control interval, s
    namespace: str | None = None  # watch one namespace (None: all)
    identity: str = "sloscaler"  # reportingInstance of Events


class ControllerMetricsSink:
    """What the controller reports about itself; :mod:`autoscaler.controller_metrics`
    implements it with Prometheus metrics. This no-op version is the default."""

    def pool_decision(
        self, policy: PolicyRef, spec: SLOPolicySpec, decision: PoolDecision, ready: int
    ) -> None:
        return None

    def model(self, policy: PolicyRef, status: ModelStatus) -> None:
        return None

    def forget(self, namespace: str, policy: str) -> None:
        return None

    def error(self, kind: str) -> None:
        return None

    def tick(self, seconds: float, policies: int) -> None:
        return None


@dataclass(frozen=True, slots=True)
class _Target:
    pool: Pool
    ref: TargetRef
    scale: ScaleView
    ready: int


@dataclass
class _Work:
    """One valid policy during a tick."""

    raw: Obj
    spec: SLOPolicySpec
    ref: PolicyRef
    targets: dict[str, _Target]


@dataclass
class TickReport:
    """What a tick did (for tests, benchmarks and the tick log line)."""

    policies: int = 0
    invalid: int = 0
    scale_writes: int = 0
    route_writes: int = 0
    status_writes: int = 0
    events: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class PolicyProblemError(Exception):
    """A policy the controller cannot act on; becomes ``Ready=False`` with ``reason``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def policy_config(spec: SLOPolicySpec, tick_s: float) -> PolicyConfig:
    """The decision core's config from a policy's spec (ms → s)."""
    b = spec.behavior
    return PolicyConfig(
        slo={
            spec.model: SLOTarget(
                spec.objectives.ttft_p90_ms / 1000,
                spec.objectives.tpot_p90_ms / 1000,
                spec.objectives.attainment,
            )
        },
        tick_s=tick_s,
        limits={
            p.name: PoolLimits(p.min_replicas, p.max_replicas, p.scale_to_zero) for p in spec.pools
        },
        headroom=b.headroom,
        scale_up_window_s=b.scale_up_stabilization_seconds,
        scale_down_window_s=b.scale_down_stabilization_seconds,
        idle_before_zero_s=b.idle_before_zero_seconds,
    )


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: float,
    generation: int,
) -> list[Obj]:
    """Conditions with ``type_`` set; ``lastTransitionTime`` moves only when status changes."""
    out: list[Obj] = []
    found = False
    for c in conditions:
        if c.get("type") != type_:
            out.append(dict(c))
            continue
        found = True
        changed = c.get("status") != status
        out.append(
            {
                "type": type_,
                "status": status,
                "observedGeneration": generation,
                "lastTransitionTime": rfc3339(now) if changed else c["lastTransitionTime"],
                "reason": reason,
                "message": message,
            }
        )
    if not found:
        out.append(
            {
                "type": type_,
                "status": status,
                "observedGeneration": generation,
                "lastTransitionTime": rfc3339(now),
                "reason": reason,
                "message": message,
            }
        )
    order = {"Ready": 0, "ModelReady": 1, "MetricsAvailable": 2, "ScalingLimited": 3}
    return sorted(out, key=lambda c: order.get(str(c.get("type")), 9))


def _condition(obj: Obj, type_: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == type_:
            return dict(c)
    return None


def route_weights(decision: Decision, spec: SLOPolicySpec) -> dict[str, int]:
    """backendRef name → integer weight (per-mille) from the decision's routing shares."""
    shares = decision.routing_weights.get(spec.model) or {}
    by_pool = {p.name: p for p in spec.pools}
    return {
        by_pool[pool].route_backend: round(share * ROUTE_WEIGHT_SCALE)
        for pool, share in shares.items()
        if pool in by_pool
    }


class Controller:
    """Reconciles every SLOPolicy once per :meth:`tick` (call it only while leading)."""

    def __init__(
        self,
        cluster: Cluster,
        metrics: PolicyMetricsSource,
        capacity: CapacitySource,
        clock: Clock,
        board: DesiredReplicasBoard | None = None,
        config: ControllerConfig | None = None,
        sink: ControllerMetricsSink | None = None,
    ) -> None:
        self.cluster = cluster
        self.metrics = metrics
        self.capacity = capacity
        self.clock = clock
        self.config = config or ControllerConfig()
        self.board = board or DesiredReplicasBoard(clock, stale_after_s=8 * self.config.tick_s)
        self.sink = sink or ControllerMetricsSink()
        self.states: dict[tuple[str, str, str], PolicyState] = {}  # (ns, name, uid) → state
        self.last_decisions: dict[tuple[str, str], Decision] = {}
        self.log = get_logger("sloscaler.controller")

    # --- the tick -------------------------------------------------------------------------------

    def tick(self) -> TickReport:
        start = self.clock.now()
        report = TickReport()
        try:
            policies = self.cluster.list_policies(self.config.namespace)
        except KubernetesError as e:
            report.error(e.kind)
            self.sink.error(e.kind)
            self.log.warning("list_policies_failed", error=str(e), retryable=e.retryable)
            return report
        report.policies = len(policies)
        pods: dict[str, ReadyIndex | KubernetesError] = {}
        work: list[_Work] = []
        for raw in policies:
            try:
                item = self._resolve(raw, pods, start)
            except PolicyProblemError as problem:
                report.invalid += 1
                self._report_invalid(raw, problem, start, report)
                continue
            except KubernetesError as e:
                report.error(e.kind)
                self.sink.error(e.kind)
                self.log.warning("resolve_failed", policy=_name(raw), error=str(e))
                continue
            except Exception as e:  # a bug must cost one policy one tick, not the controller
                report.error("internal")
                self.sink.error("internal")
                self.log.exception("resolve_crashed", policy=_name(raw), error=str(e))
                continue
            work.append(item)
        self._forget_missing(policies)
        observations: Mapping[tuple[str, str], PolicyObservation] = {}
        try:
            observations = self.metrics.observe([w.ref for w in work], start)
        except Exception as e:  # a failing source means "no data", never a crash
            report.error("metrics")
            self.sink.error("metrics")
            self.log.warning("metrics_failed", error=f"{type(e).__name__}: {e}")
        for w in work:
            try:
                self._reconcile(w, observations.get(w.ref.key), start, report)
            except KubernetesError as e:
                report.error(e.kind)
                self.sink.error(e.kind)
                self.log.warning("reconcile_failed", policy=w.ref.name, error=str(e))
            except Exception as e:
                report.error("internal")
                self.sink.error("internal")
                self.log.exception("reconcile_crashed", policy=w.ref.name, error=str(e))
        self.sink.tick(self.clock.now() - start, len(policies))
        return report

    # --- resolve: spec, targets, pods -----------------------------------------------------------

    def _resolve(
        self, raw: Obj, pods: dict[str, ReadyIndex | KubernetesError], now: float
    ) -> _Work:
        md = raw["metadata"]
        ns, name = md["namespace"], md["name"]
        try:
            spec = parse_spec(raw.get("spec"))
        except ValidationError as e:
            raise PolicyProblemError("InvalidSpec", validation_message(e)) from None
        targets: dict[str, _Target] = {}
        refs: list[PoolRef] = []
        for pool in spec.pools:
            ref = TargetRef(ns, pool.scale_target_ref.kind, pool.scale_target_ref.name)
            try:
                scale = self.cluster.get_scale(ref)
            except NotFoundError:
                raise PolicyProblemError(
                    "TargetNotFound", f"pool {pool.name}: scaleTargetRef {ref} not found"
                ) from None
            ready = self._ready_pods(ns, scale.selector, pods)
            targets[pool.name] = _Target(pool, ref, scale, ready)
            refs.append(
                PoolRef(
                    ns,
                    name,
                    pool.name,
                    spec.model,
                    pool.role,
                    pool.accelerator,
                    ref.kind,
                    ref.name,
                    scale.selector,
                    scale.replicas,
                )
            )
        objectives = spec.objectives
        policy = PolicyRef(
            ns,
            name,
            spec.model,
            tuple(refs),
            objectives.ttft_p90_ms / 1000,
            objectives.tpot_p90_ms / 1000,
        )
        return _Work(raw, spec, policy, targets)

    def _ready_pods(
        self, ns: str, selector: str, cache: dict[str, ReadyIndex | KubernetesError]
    ) -> int:
        if not selector:
            return 0
        if ns not in cache:
            try:
                cache[ns] = ReadyIndex(self.cluster.list_pods(ns))
            except KubernetesError as e:
                cache[ns] = e
        index = cache[ns]
        if isinstance(index, KubernetesError):
            raise index
        try:
            sel = parse_selector(selector)
        except SelectorError:
            return 0
        return index.count(sel)

    def _forget_missing(self, policies: Sequence[Obj]) -> None:
        present = {
            (p["metadata"]["namespace"], p["metadata"]["name"], p["metadata"].get("uid", ""))
            for p in policies
        }
        for key in list(self.states):
            if key not in present:
                del self.states[key]
                self.last_decisions.pop(key[:2], None)
                self.board.withdraw(key[0], key[1])
                self.sink.forget(key[0], key[1])

    # --- reconcile one valid policy -------------------------------------------------------------

    def _reconcile(
        self, w: _Work, obs: PolicyObservation | None, now: float, report: TickReport
    ) -> None:
        md = w.raw["metadata"]
        key = (md["namespace"], md["name"], md.get("uid", ""))
        spec = w.spec
        config = policy_config(spec, self.config.tick_s)
        model = self.capacity.capacity_model(w.ref)
        pools = tuple(
            PoolSnapshot(
                name=p.name,
                model=spec.model,
                role=p.role,
                accelerator=p.accelerator,
                gpus_per_replica=p.gpus_per_replica,
                price_per_gpu_hour=p.cost_per_gpu_hour,
                replicas=w.targets[p.name].scale.replicas,
                ready=w.targets[p.name].ready,
                startup_s=p.startup_seconds,
                load=obs.loads.get(p.name) if obs is not None else None,
            )
            for p in spec.pools
        )
        demand = obs.demand if obs is not None else None
        models = (
            (ModelSnapshot(spec.model, demand.arrival_rps, demand.queued),)
            if demand is not None
            else ()
        )
        snapshot = ClusterSnapshot(pools, models, model)
        prior = self.states.get(key) or restored_state(w.raw, [p.name for p in spec.pools])
        decision, state, _diag = decide(snapshot, prior, config, now)
        # after the decision: the status describes the capacity answers it used
        model_status = self.capacity.model_status(w.ref)
        self.states[key] = state
        self.last_decisions[key[:2]] = decision
        failures: list[str] = []
        for d in decision.pools:
            target = w.targets[d.pool]
            self._log_decision(w.ref, d, target, spec.mode, now)
            self.sink.pool_decision(w.ref, spec, d, target.ready)
            try:
                self._act(w, d, target, now, report)
            except KubernetesError as e:
                report.error(e.kind)
                self.sink.error(e.kind)
                failures.append(str(e))
        weights: dict[str, int] = {}
        if spec.gateway is not None:
            weights = route_weights(decision, spec)
            if spec.mode != "advisory" and weights:
                try:
                    self._write_route(w, weights, report)
                except KubernetesError as e:
                    report.error(e.kind)
                    self.sink.error(e.kind)
                    failures.append(str(e))
        self.sink.model(w.ref, model_status)
        status = self._status(w, decision, state, obs, model_status, failures, now)
        self._write_status(w, status, report)

    def _log_decision(
        self, ref: PolicyRef, d: PoolDecision, target: _Target, mode: str, now: float
    ) -> None:
        self.log.info(
            "decision",
            t=round(now, 3),
            namespace=ref.namespace,
            policy=ref.name,
            mode=mode,
            ready=target.ready,
            **decision_fields(d),
        )

    # --- actuation ------------------------------------------------------------------------------

    def _act(
        self, w: _Work, d: PoolDecision, target: _Target, now: float, report: TickReport
    ) -> None:
        mode = w.spec.mode
        current = target.scale.replicas
        if mode == "advisory":
            previous = self._previous_desired(w.raw, d.pool)
            if previous is not None and previous != d.replicas:
                self._event(
                    w,
                    "Normal",
                    d.reason.value,
                    f"pool {d.pool}: recommend {current} → {d.replicas} replicas (advisory): "
                    f"{d.message}",
                    now,
                    report,
                )
            return
        if mode == "hpa":
            pool = target.pool
            self.board.publish(
                w.ref.namespace,
                w.ref.name,
                d.pool,
                d.replicas,
                now,
                accelerator=pool.accelerator,
                role=pool.role,
            )
            if current == 0 and d.replicas > 0:
                self._scale(w, d, target, 1, now, report)
            elif current > 0 and d.replicas == 0:
                self._scale(w, d, target, 0, now, report)
            return
        if d.replicas != current:
            self._scale(w, d, target, d.replicas, now, report)

    def _scale(
        self,
        w: _Work,
        d: PoolDecision,
        target: _Target,
        replicas: int,
        now: float,
        report: TickReport,
    ) -> None:
        """Write absolute ``replicas``; on 409 re-read once and write again only if needed."""
        scale = target.scale
        try:
            self.cluster.set_scale(target.ref, replicas, scale.resource_version)
        except ConflictError:
            report.error("conflict")
            self.sink.error("conflict")
            scale = self.cluster.get_scale(target.ref)
            if scale.replicas == replicas:
                return  # someone else already wrote what we want
            self.cluster.set_scale(target.ref, replicas, scale.resource_version)
        report.scale_writes += 1
        self._event(
            w,
            "Normal",
            d.reason.value,
            f"pool {d.pool}: scaled {target.ref} from {scale.replicas} to {replicas}: {d.message}",
            now,
            report,
        )

    def _write_route(self, w: _Work, weights: Mapping[str, int], report: TickReport) -> None:
        gw = w.spec.gateway
        assert gw is not None
        ns = gw.namespace or w.ref.namespace
        for attempt in range(2):
            route = self.cluster.get_route(ns, gw.name)
            changed = False
            for rule in (route.get("spec") or {}).get("rules") or ():
                for ref in rule.get("backendRefs") or ():
                    want = weights.get(ref.get("name", ""))
                    if want is not None and ref.get("weight", 1) != want:
                        ref["weight"] = want
                        changed = True
            if not changed:
                return
            try:
                self.cluster.replace_route(ns, gw.name, route)
                report.route_writes += 1
                return
            except ConflictError:
                report.error("conflict")
                self.sink.error("conflict")
                if attempt == 1:
                    raise

    # --- status and events ----------------------------------------------------------------------

    @staticmethod
    def _previous_desired(raw: Obj, pool: str) -> int | None:
        for p in (raw.get("status") or {}).get("pools") or ():
            if p.get("name") == pool:
                return int(p.get("desiredReplicas", 0))
        return None

    def _status(
        self,
        w: _Work,
        decision: Decision,
        state: PolicyState,
        obs: PolicyObservation | None,
        model_status: ModelStatus,
        failures: list[str],
        now: float,
    ) -> Obj:
        gen = int(w.raw["metadata"].get("generation", 0))
        shares = decision.routing_weights.get(w.spec.model) or {}
        pools = []
        for d in decision.pools:
            t = w.targets[d.pool]
            pools.append(
                {
                    "name": d.pool,
                    "currentReplicas": t.scale.replicas,
                    "readyReplicas": t.ready,
                    "desiredReplicas": d.replicas,
                    "reason": d.reason.value,
                    "message": d.message,
                    "predictedTTFTP90Ms": _ms(d.predicted_ttft_p90_s),
                    "predictedTPOTP90Ms": _ms(d.predicted_tpot_p90_s),
                    "capacityRps": _finite(d.capacity_rps),
                    "capacityScale": _finite(d.capacity_scale),
                    "demandRps": _finite(d.demand_rps),
                    "routingWeight": _finite(shares.get(d.pool)),
                    "recommendations": persisted_history(state.pools.get(d.pool)),
                }
            )
        conds = list((w.raw.get("status") or {}).get("conditions") or ())
        if failures:
            conds = set_condition(
                conds, "Ready", "False", "ActuationFailed", "; ".join(failures)[:1000], now, gen
            )
        else:
            conds = set_condition(
                conds,
                "Ready",
                "True",
                "Reconciled",
                f"{len(decision.pools)} pools reconciled ({w.spec.mode} mode)",
                now,
                gen,
            )
        conds = set_condition(
            conds,
            "ModelReady",
            "True" if model_status.ready else "False",
            model_status.reason,
            model_status.message,
            now,
            gen,
        )
        missing = [] if obs is not None else ["no metrics for the policy"]
        if obs is not None:
            if obs.demand.arrival_rps is None:
                missing.append("gateway demand")
            missing += [f"pool {name}" for name, load in obs.loads.items() if load is None]
        if missing:
            conds = set_condition(
                conds,
                "MetricsAvailable",
                "False",
                "MetricsMissing",
                "missing: " + ", ".join(missing) + "; holding current sizes where demand is "
                "unknown, and no pool without a window scales down",
                now,
                gen,
            )
        else:
            conds = set_condition(
                conds,
                "MetricsAvailable",
                "True",
                "MetricsAvailable",
                "demand and every pool's window observed",
                now,
                gen,
            )
        limited = [lim for d in decision.pools if (lim := _limit(d, w.spec)) is not None]
        if limited:
            conds = set_condition(
                conds,
                "ScalingLimited",
                "True",
                limited[0][0],
                "; ".join(message for _reason, message in limited),
                now,
                gen,
            )
        else:
            conds = set_condition(
                conds,
                "ScalingLimited",
                "False",
                "WithinLimits",
                "every pool at its recommendation",
                now,
                gen,
            )
        status = {
            "observedGeneration": gen,
            "lastTickTime": rfc3339(now),
            "pools": pools,
            "conditions": conds,
        }
        # the same models validate what we write as what users write
        return SLOPolicyStatus.model_validate(status).model_dump(by_alias=True, exclude_none=True)

    def _write_status(self, w: _Work, status: Obj, report: TickReport) -> None:
        self._put_status(w.raw, status, report)

    def _put_status(self, raw: Obj, status: Obj, report: TickReport) -> None:
        md = raw["metadata"]
        ns, name = md["namespace"], md["name"]
        try:
            self.cluster.replace_policy_status(ns, name, status_body(raw, status))
        except ConflictError:
            report.error("conflict")
            self.sink.error("conflict")
            fresh = self.cluster.get_policy(ns, name)
            if fresh["metadata"].get("uid") != md.get("uid"):
                return  # deleted and re-created: the next tick starts over
            self.cluster.replace_policy_status(ns, name, status_body(fresh, status))
        report.status_writes += 1

    def _report_invalid(
        self, raw: Obj, problem: PolicyProblemError, now: float, report: TickReport
    ) -> None:
        md = raw["metadata"]
        gen = int(md.get("generation", 0))
        previous = _condition(raw, "Ready")
        status = dict(raw.get("status") or {})
        status["conditions"] = set_condition(
            status.get("conditions") or [],
            "Ready",
            "False",
            problem.reason,
            problem.message,
            now,
            gen,
        )
        status["observedGeneration"] = gen
        status["lastTickTime"] = rfc3339(now)
        self.log.warning(
            "invalid_policy",
            namespace=md["namespace"],
            policy=md["name"],
            reason=problem.reason,
            message=problem.message,
        )
        self.sink.error("invalid_policy")
        self.board.withdraw(md["namespace"], md["name"])
        try:
            self._put_status(raw, status, report)
            same = (
                previous is not None
                and previous.get("reason") == problem.reason
                and previous.get("message") == problem.message
            )
            if not same:
                self._event_for(raw, "Warning", problem.reason, problem.message, now, report)
        except KubernetesError as e:
            report.error(e.kind)
            self.sink.error(e.kind)

    def _event(
        self, w: _Work, type_: str, reason: str, message: str, now: float, report: TickReport
    ) -> None:
        try:
            self._event_for(w.raw, type_, reason, message, now, report)
        except KubernetesError as e:  # an Event is best effort; the change itself happened
            report.error(e.kind)
            self.sink.error(e.kind)

    def _event_for(
        self, raw: Obj, type_: str, reason: str, message: str, now: float, report: TickReport
    ) -> None:
        md = raw["metadata"]
        stamp = rfc3339(now)
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{md['name']}.", "namespace": md["namespace"]},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": md["name"],
                "namespace": md["namespace"],
                "uid": md.get("uid"),
                "resourceVersion": md.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.config.identity,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        self.cluster.create_event(md["namespace"], event)
        report.events += 1


def _limit(d: PoolDecision, spec: SLOPolicySpec) -> tuple[str, str] | None:
    """(reason, message) when a bound, not demand, set the pool's size — a normalization stage
    that capped it, or the variant mix already stopped at ``maxReplicas`` while the demand
    asked for more."""
    if d.reason in LIMITING:
        return d.reason.value, f"pool {d.pool}: {d.message}"
    pool = next(p for p in spec.pools if p.name == d.pool)
    if d.replicas >= pool.max_replicas and d.demand_rps is not None and d.capacity_rps:
        served = d.capacity_rps * (1 - spec.behavior.headroom) * d.replicas
        if d.demand_rps > served:
            return (
                Reason.TooManyReplicas.value,
                f"pool {d.pool}: at maxReplicas {pool.max_replicas}, serving "
                f"{served:.2f} of {d.demand_rps:.2f} rps demanded",
            )
    return None


def status_body(raw: Obj, status: Obj) -> Obj:
    """The body of a ``status`` subresource PUT: the object's identity, the ``resourceVersion``
    it was read at (the write's precondition: 409 if the policy changed since) and the new
    status — not the spec, annotations or managedFields, which a status update ignores (the API
    server keeps the stored ones), so they are neither re-serialized nor re-sent every tick."""
    md = raw["metadata"]
    identity = {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in md}
    return {
        "apiVersion": raw.get("apiVersion", API_VERSION),
        "kind": raw.get("kind", KIND),
        "metadata": identity,
        "status": status,
    }


class ReadyIndex:
    """Ready pods of one namespace counted per distinct label set, so each pool's selector is
    matched against the namespace's few label sets instead of every pod (pools × label sets, not
    pools × pods), and indexed by label pair, so a selector with an equality (``app=x``) or set
    (``app in (x,y)``) requirement looks at only the label sets carrying one of its values.

    Worked example: 2,000 pods of 100 Deployments, 100 pools. Counting per label set makes 100
    × 100 = 10,000 matches; the pair index makes 100 × 1 = 100."""

    __slots__ = ("_by_pair", "_counts")

    def __init__(self, pods: Sequence[PodView]) -> None:
        counts: dict[frozenset[tuple[str, str]], int] = {}
        for p in pods:
            if p.ready:
                key = frozenset(p.labels.items())
                counts[key] = counts.get(key, 0) + 1
        self._counts = [(dict(key), n) for key, n in counts.items()]
        self._by_pair: dict[tuple[str, str], list[int]] = {}
        for i, (labels, _n) in enumerate(self._counts):
            for pair in labels.items():
                self._by_pair.setdefault(pair, []).append(i)

    def count(self, selector: Selector) -> int:
        """Ready pods whose labels match ``selector``."""
        narrowing = next((r for r in selector.requirements if r.op in ("=", "in")), None)
        if narrowing is None:
            candidates: Iterable[int] = range(len(self._counts))
        else:
            candidates = sorted(
                {i for v in narrowing.values for i in self._by_pair.get((narrowing.key, v), ())}
            )
        total = 0
        for i in candidates:
            labels, n = self._counts[i]
            if selector.matches(labels):
                total += n
        return total


def _name(raw: Obj) -> str:
    md = raw.get("metadata") or {}
    return f"{md.get('namespace')}/{md.get('name')}"


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def _ms(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x * 1000, 3)


def persisted_history(state: PoolState | None) -> list[Obj]:
    """A pool's stabilization history for its status, without the entries a later one makes moot.

    Scale-up stabilization reads the lowest recommendation after ``now - window``, scale-down the
    highest capacity (``policies.normalize.held_now``: more replicas or more capacity per replica
    hold more). An entry followed by one with the same replicas and at least its capacity per
    replica therefore never decides a window the later one does not (a hold on missing data has
    no capacity and counts as the most), and is left out. Example: (0 s, 6 at 1.0), (15 s, 4 at
    1.0), (30 s, 6 at 1.2), (45 s, 6 at 0.9) is written without the first entry: at 320 s a 300 s
    window holds as much from (30 s, 6 at 1.2) as the whole history would.
    """
    history = state.history if state is not None else ()
    best: dict[int, float] = {}
    kept = []
    for rec in reversed(history):
        cap = math.inf if rec.capacity_rps is None else rec.capacity_rps
        if cap > best.get(rec.replicas, -math.inf):
            best[rec.replicas] = cap
            kept.append(rec)
    return [
        {"time": rfc3339(rec.t, micro=True), "replicas": rec.replicas}
        | ({} if rec.capacity_rps is None else {"capacityRps": float(f"{rec.capacity_rps:.6g}")})
        for rec in reversed(kept)
    ]


def restored_state(raw: Obj, pools: Sequence[str]) -> PolicyState:
    """The recommendation history a previous leader wrote into ``raw``'s status.

    Read once, by a controller that has not seen the policy before; a pool with no entries (a
    new policy, a new pool) is left out, and the decision core treats it as seen for the first
    time (``policies.normalize``). Entries that do not parse (a hand-edited status) leave that
    pool out too, never fatal.
    """
    restored: dict[str, PoolState] = {}
    for entry in (raw.get("status") or {}).get("pools") or ():
        name = entry.get("name")
        if name not in pools:
            continue
        try:
            history = tuple(
                sorted(
                    Recommendation(parse_rfc3339(r.time), r.replicas, r.capacity_rps)
                    for r in map(
                        PersistedRecommendation.model_validate, entry.get("recommendations") or ()
                    )
                )
            )
        except (TypeError, ValueError):  # ValidationError is a ValueError
            continue
        if history:
            restored[name] = PoolState(history=history)
    return PolicyState(pools=restored)
