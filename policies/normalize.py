"""The normalization pipeline: from a recommendation to the replicas the controller writes.

An ordered list of named stages, each a pure function returning ``(replicas, Reason, message)``,
as Kubernetes' HPA does it: stabilization windows → rate limits → min/max → GPU budget →
scale-to-zero rules. Any policy (ours, or a custom one) only *proposes*; these rails apply to all.

Stabilization follows HPA: scaling down uses the highest recommendation of the last
``scale_down_window_s`` (default 300 s), scaling up the lowest of the last ``scale_up_window_s``
(default 0 s). Example: recommendations 6, 4, 3 over the last five minutes and current 6 → the
pool stays at 6 until the 6 leaves the window. One difference: what the scale-down window holds is
the *capacity* each recommendation asked for, counted in replicas at this tick's per-replica
capacity and never more than it asked for — ``min(r, ⌈r · c_then / c_now⌉)``. HPA's metric is
the load itself; ours is load divided by an estimate of what one replica serves, and that
estimate moves (a new sample of observed lengths, the error budget). Holding the replica count
would keep for 300 s every replica a one-tick dip of the estimate asked for. Example: 6 replicas
recommended at 0.82 req/s each, 5 since the estimate is back at 0.99 → the 6 holds
⌈6 · 0.82 / 0.99⌉ = ⌈4.97⌉ = 5, and the pool shrinks now instead of 300 s later. A fall of the
estimate holds no more than was asked for: this tick's recommendation already sizes the demand
at the lower capacity. Scale-up is limited to ``max(current + 4,
current·2)`` per tick (HPA's default policies). The one exception to the scale-down window is a
pool proven idle for ``idle_before_zero_s`` whose recommendation is zero: that proof is the wait
before zero, as KEDA's cooldown is, and the window does not add its 300 s to it. A pool seen for
the first time (no history: a new policy or pool, not a restart, whose history the controller
restores) does not shrink for one start-up horizon, start-up + one tick, capped at the window:
the first metrics windows alone may not take away capacity that could not come back in time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from policies.reasons import Reason
from policies.types import PolicyConfig, PoolLimits, PoolState, Recommendation, Stage


@dataclass(frozen=True, slots=True)
class StageInput:
    """Everything a stage may look at besides the replicas proposed so far."""

    now: float
    current: int
    gpus_per_replica: int
    gpus_available: int | None  # for this pool after the other pools' claims; None = unlimited
    limits: PoolLimits
    config: PolicyConfig
    state: PoolState
    idle: bool  # positive evidence: demand observed as zero this tick
    queued: int  # requests waiting at the gateway for this pool's model
    capacity_rps: float | None = None  # per replica this tick, > 0; None when there is none


def proven_idle(x: StageInput) -> bool:
    """The pool may go to zero: observed idle (no demand, nothing running, nothing queued) for at
    least ``idle_before_zero_s`` without a break."""
    since = x.state.idle_since
    return (
        x.limits.scale_to_zero
        and x.idle
        and since is not None
        and x.now - since >= x.config.idle_before_zero_s
    )


def held_now(rec: Recommendation, capacity_rps: float | None) -> int:
    """What a past recommendation holds in a scale-down window at this tick's capacity per replica
    (the module docstring): ``min(r, ⌈r · c_then / c_now⌉)``; its replicas where either capacity
    is unknown (a hold on missing data, no finite positive estimate). Capacities are > 0."""
    then = rec.capacity_rps
    if then is None or capacity_rps is None:
        return rec.replicas
    return min(rec.replicas, math.ceil(rec.replicas * then / capacity_rps - 1e-9))


def stabilize(replicas: int, x: StageInput) -> tuple[int, Reason, str]:
    cfg = x.config
    history = x.state.history
    if replicas == 0 and proven_idle(x):
        # the idleness proof is the wait before zero (KEDA's cooldown): a recommendation of
        # zero is not held again by the scale-down window, which the proof already outlasts
        return 0, Reason.Unchanged, ""
    until = x.state.first_look_until
    if replicas < x.current and until is not None and x.now < until:
        return (
            x.current,
            Reason.ScaleDownStabilized,
            f"first look at the pool: holding {x.current} replicas for one start-up horizon "
            f"({until - x.now:.0f}s more)",
        )
    if replicas < x.current and cfg.scale_down_window_s > 0:
        since = x.now - cfg.scale_down_window_s
        holds = [(held_now(h, x.capacity_rps), h) for h in history if h.t > since]
        if holds:
            most, top = max(holds, key=lambda w: w[0])
            held = min(most, x.current)
            if held > replicas:
                message = f"highest recommendation in {cfg.scale_down_window_s:g}s: {most}"
                if most < top.replicas:
                    message += (
                        f" ({top.replicas} at {top.capacity_rps:.3g} rps per replica,"
                        f" {x.capacity_rps:.3g} now)"
                    )
                return held, Reason.ScaleDownStabilized, message
    if replicas > x.current and cfg.scale_up_window_s > 0:
        window = [h.replicas for h in history if h.t > x.now - cfg.scale_up_window_s] + [replicas]
        held = max(min(window), x.current)
        if held < replicas:
            return (
                held,
                Reason.ScaleUpStabilized,
                (f"lowest recommendation in the last {cfg.scale_up_window_s:g}s is {min(window)}"),
            )
    return replicas, Reason.Unchanged, ""


def rate_limit(replicas: int, x: StageInput) -> tuple[int, Reason, str]:
    cfg = x.config
    cur = x.current
    if replicas > cur > 0:
        cap = max(
            cur + cfg.scale_up_max_pods, math.ceil(cur * (1 + cfg.scale_up_max_percent / 100))
        )
        if replicas > cap:
            return cap, Reason.ScaleUpLimit, f"at most {cap} from {cur} in one step"
    if replicas < cur:
        floor = math.floor(cur * (1 - cfg.scale_down_max_percent / 100))
        if replicas < floor:
            return floor, Reason.ScaleDownLimit, f"at least {floor} from {cur} in one step"
    return replicas, Reason.Unchanged, ""


def bounds(replicas: int, x: StageInput) -> tuple[int, Reason, str]:
    lim = x.limits
    if replicas > lim.max_replicas:
        return lim.max_replicas, Reason.TooManyReplicas, f"capped at max {lim.max_replicas}"
    if replicas < lim.min_replicas:
        return lim.min_replicas, Reason.TooFewReplicas, f"raised to min {lim.min_replicas}"
    return replicas, Reason.Unchanged, ""


def gpu_budget(replicas: int, x: StageInput) -> tuple[int, Reason, str]:
    if x.gpus_available is None:
        return replicas, Reason.Unchanged, ""
    fit = max(0, x.gpus_available // x.gpus_per_replica)
    if replicas > fit:
        return (
            fit,
            Reason.GPUBudget,
            (f"{x.gpus_available} GPUs left for this pool: at most {fit} replicas"),
        )
    return replicas, Reason.Unchanged, ""


def scale_to_zero(replicas: int, x: StageInput) -> tuple[int, Reason, str]:
    """Zero only on positive evidence of idleness for long enough; wake on queued demand."""
    if replicas > 0:
        return replicas, Reason.Unchanged, ""
    if x.gpus_available is not None and x.gpus_available < x.gpus_per_replica:
        return 0, Reason.Unchanged, ""  # the budget stage decided; keeping warm would break it
    if x.queued > 0:
        return 1, Reason.WakeUp, f"{x.queued} requests queued at the gateway"
    if x.current == 0:
        return 0, Reason.Unchanged, ""
    if not x.limits.scale_to_zero:
        return max(1, x.limits.min_replicas), Reason.KeepWarm, "scale-to-zero is disabled"
    since = x.state.idle_since
    if not x.idle or since is None:
        return 1, Reason.KeepWarm, "no positive evidence of idleness"
    idle_for = x.now - since
    if not proven_idle(x):
        return (
            1,
            Reason.KeepWarm,
            (f"idle for {idle_for:.0f}s of the {x.config.idle_before_zero_s:g}s required"),
        )
    return 0, Reason.ScaleToZero, f"idle for {idle_for:.0f}s"


PIPELINE = (
    ("stabilization", stabilize),
    ("rate-limit", rate_limit),
    ("bounds", bounds),
    ("gpu-budget", gpu_budget),
    ("scale-to-zero", scale_to_zero),
)


def normalize(recommendation: int, x: StageInput) -> tuple[int, tuple[Stage, ...]]:
    """Run every stage in order; the last stage that changed something gives the reason."""
    replicas = max(0, recommendation)
    stages = []
    for name, stage in PIPELINE:
        replicas, reason, message = stage(replicas, x)
        stages.append(Stage(name, replicas, reason, message))
    return replicas, tuple(stages)
