"""The SLO policy: one pure function from what is observed to what every pool should be.

``decide(snapshot, state, config, now)`` runs, per model: forecast demand over the start-up
horizon (upper quantile) → capacity of one replica of each variant at the SLO (from the
predictor, with headroom) → the cheapest variant mix per role (P/D sized from the same demand) →
the normalization pipeline per pool → shedding and routing weights. It reads no clock, does no
I/O and never logs; the control loop turns its output into actions and log lines.

Replaying the same tick is idempotent: an observation at a time the state has already seen is
not folded in again, so ``decide`` on (snapshot, state') after (snapshot, state) returns the same
decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from policies.budget import update_budget
from policies.forecast import update_forecast, upper_forecast
from policies.normalize import StageInput, normalize
from policies.reasons import Reason
from policies.sizing import Variant, cheapest_mix, mix_capacity, mix_cost
from policies.types import (
    BudgetState,
    Capacity,
    ClusterSnapshot,
    Decision,
    DemandMix,
    Diagnostics,
    ForecastState,
    ModelSnapshot,
    PolicyConfig,
    PolicyState,
    PoolDecision,
    PoolLimits,
    PoolSnapshot,
    PoolState,
    Recommendation,
    SLOTarget,
    Stage,
)


def _first_hop(
    pools: Sequence[PoolSnapshot],
) -> list[tuple[float, float, float, float | None]]:
    """(request rate, mean input, mean output, prefix-hit ratio) of the windows that describe
    the demand's shape: not decode pools (they see prompts without their prefix hits), and only
    windows with lengths."""
    out = []
    for p in pools:
        load = p.load
        if p.role == "decode" or load is None or load.request_rps <= 0:
            continue
        if load.mean_input_tokens is None or load.mean_output_tokens is None:
            continue
        out.append(
            (
                load.request_rps,
                load.mean_input_tokens,
                load.mean_output_tokens,
                load.prefix_hit_ratio,
            )
        )
    return out


def _first_hop_rps(pools: Sequence[PoolSnapshot]) -> float:
    return sum(row[0] for row in _first_hop(pools))


def demand_mix(
    pools: Sequence[PoolSnapshot], previous: DemandMix | None, default: DemandMix
) -> DemandMix:
    """Demand shape from the pools' windows (request-weighted), else the last known one."""
    weight = isl = osl = hit = 0.0
    hit_weight = 0.0
    for w, mean_in, mean_out, hit_ratio in _first_hop(pools):
        weight += w
        isl += w * mean_in
        osl += w * mean_out
        if hit_ratio is not None:
            hit += w * hit_ratio
            hit_weight += w
    if weight <= 0:
        return previous or default
    return DemandMix(isl / weight, osl / weight, hit / hit_weight if hit_weight else 0.0)


def smooth_mix(
    previous: DemandMix | None,
    weight: float,
    observed: DemandMix,
    requests: float,
    dt: float,
    half_life_s: float,
) -> tuple[DemandMix, float]:
    """Request-weighted, exponentially forgetting mean of the demand shape.

    ``W' = W·2^(−dt/half_life) + n`` and ``mix' = mix + (n / W')·(observed − mix)`` for ``n``
    requests new this tick: a cumulative mean while little has been seen (the first windows'
    few, short requests do not set the shape alone), an EWMA with the given half-life once
    traffic is steady. A prefill pool's capacity is steep in the shape — prompt lengths and the
    prefix-hit ratio, which dips whenever new replicas start with cold caches — and a
    recommendation driven by one noisy window is held for the whole scale-down stabilization
    window. Example: half-life 120 s, tick 15 s, steady 60 requests a tick → ``W`` = 60 /
    (1 − 0.917) = 723 and each window moves the mix by 60 / 723 = 8.3 %: a hit ratio of 0.50
    and a window reading 0.20 → 0.475. Returns the mix and ``W'``.
    """
    if previous is None or half_life_s <= 0:
        return observed, requests
    w = weight * 2.0 ** (-dt / half_life_s) + requests
    a = requests / w if w > 0 else 1.0

    def mean(old: float, new: float) -> float:
        return old + a * (new - old)

    mix = DemandMix(
        mean(previous.input_tokens, observed.input_tokens),
        mean(previous.output_tokens, observed.output_tokens),
        mean(previous.prefix_hit_ratio, observed.prefix_hit_ratio),
    )
    return mix, w


def _groups(pools: Sequence[PoolSnapshot]) -> list[list[PoolSnapshot]]:
    """Variants that share demand: P/D sides, or the aggregated/EP serving pools."""
    prefill = [p for p in pools if p.role == "prefill"]
    decode = [p for p in pools if p.role == "decode"]
    serving = [p for p in pools if p.role in ("aggregated", "expert-parallel")]
    if prefill and decode:
        return [prefill, decode, *([serving] if serving else [])]
    return [g for g in (serving, prefill, decode) if g]


def _variants(
    group: Sequence[PoolSnapshot],
    caps: Mapping[str, Capacity],
    config: PolicyConfig,
) -> list[Variant]:
    out = []
    for p in group:
        lim = config.limits.get(p.name, PoolLimits())
        out.append(
            Variant(
                pool=p.name,
                accelerator=p.accelerator,
                capacity_rps=caps[p.name].rps * (1.0 - config.headroom),
                price_per_replica_hour=p.price_per_gpu_hour * p.gpus_per_replica,
                gpus_per_replica=p.gpus_per_replica,
                min_replicas=0,
                max_replicas=lim.max_replicas,
            )
        )
    return out


def _choose(
    key: str,
    variants: list[Variant],
    demand: float,
    inventory: Mapping[str, int],
    state: PolicyState,
    config: PolicyConfig,
) -> tuple[dict[str, int], Reason]:
    choice, _met = cheapest_mix(variants, demand, inventory)
    reason = Reason.DemandForecast if len(variants) == 1 else Reason.VariantMix
    prev = state.variant_choice.get(key)
    if len(variants) > 1 and prev and set(prev) == set(choice) and dict(prev) != choice:
        keeps = mix_capacity(variants, prev) >= demand - 1e-9
        if keeps and mix_cost(variants, prev) <= mix_cost(variants, choice) * (
            1 + config.mix_hysteresis
        ):
            return dict(prev), Reason.MixHysteresis
    if demand <= 0:
        reason = Reason.NoDemand
    return choice, reason


def _remember(
    prev: PoolState, rec: Recommendation, config: PolicyConfig
) -> tuple[Recommendation, ...]:
    """History with ``rec`` replacing any entry at its time, trimmed to the windows."""
    window = max(config.scale_down_window_s, config.scale_up_window_s)
    kept = tuple(h for h in prev.history if rec.t - window < h.t < rec.t)
    return (*kept, rec)


def _inventory_left(config: PolicyConfig, claimed: Mapping[str, int]) -> dict[str, int]:
    return {a: n - claimed.get(a, 0) for a, n in config.gpu_inventory.items()}


def _hold(
    p: PoolSnapshot, slo: SLOTarget, message: str, reason: Reason = Reason.HoldOnMissingData
) -> PoolDecision:
    return PoolDecision(
        pool=p.name,
        model=p.model,
        role=p.role,
        accelerator=p.accelerator,
        current=p.replicas,
        raw=p.replicas,
        replicas=p.replicas,
        reason=reason,
        message=message,
        demand_rps=None,
        capacity_rps=None,
        capacity_source="none",
        predicted_ttft_p90_s=None,
        predicted_tpot_p90_s=None,
        slo_ttft_s=slo.ttft_s,
        slo_tpot_s=slo.tpot_s,
    )


def _share(
    demand: float, cap_rps: float, replicas: int, total_cap: float, config: PolicyConfig
) -> float:
    """The part of ``demand`` this pool's recommended replicas are sized to carry."""
    if total_cap <= 0:
        return 0.0
    return demand * cap_rps * (1 - config.headroom) * replicas / total_cap


def _pool_decision(
    p: PoolSnapshot,
    *,
    raw: int,
    mix_reason: Reason,
    prev: PoolState | None,
    model: ModelSnapshot,
    demand: float,
    share: float,
    cap: Capacity,
    mix: DemandMix,
    slo: SLOTarget,
    gpus_left: int | None,
    snapshot: ClusterSnapshot,
    config: PolicyConfig,
    now: float,
    scale: float,
) -> tuple[PoolDecision, PoolState]:
    """Normalize one pool's recommendation and describe the outcome."""
    if prev is None:
        # a pool seen for the first time keeps its size until the loop has watched its demand
        # for one start-up horizon (at most a scale-down window): capacity taken away before
        # then could not come back in time if the first windows undershot. A restarted
        # controller restores its history from the status instead (autoscaler.k8s.controller).
        hold = min(p.startup_s + config.tick_s, config.scale_down_window_s)
        prev = PoolState(first_look_until=now + hold)
    idle = (  # positive evidence only: a pool without a window is not known to be idle
        model.arrival_rps is not None
        and model.arrival_rps <= 0
        and model.queued == 0
        and p.load is not None
        and p.load.running == 0
    )
    idle_since = (prev.idle_since if prev.idle_since is not None else now) if idle else None
    sized = cap.rps if 0 < cap.rps < math.inf else None  # what a window can scale by
    x = StageInput(
        now=now,
        current=p.replicas,
        gpus_per_replica=p.gpus_per_replica,
        gpus_available=gpus_left,
        limits=config.limits.get(p.name, PoolLimits()),
        config=config,
        state=replace(prev, idle_since=idle_since),
        idle=idle,
        queued=model.queued,
        capacity_rps=sized,
    )
    replicas, stages = normalize(raw, x)
    if p.load is None and replicas < p.replicas:
        # no pool shrinks on missing data: the model's demand alone (say 0 rps) may not take a
        # pool whose metrics vanished from 6 replicas to 0; it may still grow on that demand
        message = (
            f"no metrics window for the pool: holding {p.replicas} replicas "
            f"(the demand alone asked for {replicas})"
        )
        stages = (*stages, Stage("missing-window", p.replicas, Reason.HoldOnMissingData, message))
        replicas = p.replicas
    changed = [s for s in stages if s.reason is not Reason.Unchanged]
    if changed:
        reason, message = changed[-1].reason, changed[-1].message
    else:
        reason = mix_reason
        message = f"demand {demand:.2f} rps / {cap.rps:.2f} rps per replica at SLO"
    ttft = tpot = None
    if replicas:
        ttft, tpot = snapshot.capacity.predict(p, mix, share / replicas)
    decision = PoolDecision(
        pool=p.name,
        model=p.model,
        role=p.role,
        accelerator=p.accelerator,
        current=p.replicas,
        raw=raw,
        replicas=replicas,
        reason=reason,
        message=message,
        demand_rps=demand,
        capacity_rps=cap.rps,
        capacity_source=cap.source,
        predicted_ttft_p90_s=ttft,
        predicted_tpot_p90_s=tpot,
        slo_ttft_s=slo.ttft_s,
        slo_tpot_s=slo.tpot_s,
        stages=stages,
        capacity_scale=scale,
    )
    history = _remember(prev, Recommendation(now, raw, sized), config)
    return decision, replace(prev, history=history, idle_since=idle_since)


def decide(
    snapshot: ClusterSnapshot, state: PolicyState, config: PolicyConfig, now: float
) -> tuple[Decision, PolicyState, Diagnostics]:
    """One tick of the SLO policy (see the module docstring)."""
    by_model: dict[str, list[PoolSnapshot]] = {}
    for p in snapshot.pools:
        by_model.setdefault(p.model, []).append(p)
    models = {m.name: m for m in snapshot.models}
    decisions: list[PoolDecision] = []
    pool_states = dict(state.pools)
    forecasts = dict(state.forecasts)
    mixes = dict(state.mixes)
    mix_weights = dict(state.mix_weights)
    choices = dict(state.variant_choice)
    budgets = dict(state.budgets)
    weights: dict[str, dict[str, float]] = {}
    admit: dict[str, bool] = {}
    forecast_out: dict[str, float] = {}
    observed_out: dict[str, float | None] = {}
    claimed: dict[str, int] = {}
    for model_name in sorted(by_model):
        pools = by_model[model_name]
        slo = config.slo[model_name]
        ms = models.get(model_name, ModelSnapshot(model_name, None, 0))
        observed_out[model_name] = ms.arrival_rps
        if ms.arrival_rps is None:
            for p in pools:
                decisions.append(_hold(p, slo, "no demand data for the model this tick"))
                claimed[p.accelerator] = (
                    claimed.get(p.accelerator, 0) + p.replicas * p.gpus_per_replica
                )
                prev = pool_states.get(p.name)
                if prev is not None:
                    pool_states[p.name] = replace(
                        prev, history=_remember(prev, Recommendation(now, p.replicas), config)
                    )
            admit[model_name] = True
            continue
        prev_fc = forecasts.get(model_name)
        fc: ForecastState
        replayed = prev_fc is not None and now <= prev_fc.last_t
        if prev_fc is not None and replayed:
            fc = prev_fc  # a replayed tick: do not fold the observation in twice
        else:
            fc = update_forecast(prev_fc, ms.arrival_rps, now)
        forecasts[model_name] = fc
        horizon = max((p.startup_s for p in pools), default=0.0) + config.tick_s
        demand = upper_forecast(
            fc, horizon, config.tick_s, config.forecast_quantile, config.idle_before_zero_s
        )
        demand += ms.queued / max(horizon, config.tick_s)  # drain what waits at the gateway
        forecast_out[model_name] = demand
        prev_mix = mixes.get(model_name)
        if prev_mix is not None and replayed:
            mix = prev_mix
        else:
            seen = demand_mix(pools, prev_mix, config.default_mix)
            mix, mix_weights[model_name] = smooth_mix(
                prev_mix,
                mix_weights.get(model_name, 0.0),
                seen,
                _first_hop_rps(pools) * config.tick_s,
                config.tick_s,
                config.mix_half_life_s,
            )
        mixes[model_name] = mix
        caps = {p.name: snapshot.capacity.capacity(p, mix, slo) for p in pools}
        scale = 1.0
        if config.learn_from_attainment:
            prev_budget = budgets.get(model_name, BudgetState())
            first_hop = [p for p in pools if p.role != "decode"]
            ready_cap = sum(p.ready * caps[p.name].rps for p in first_hop)
            used = ms.arrival_rps / (ready_cap * prev_budget.scale) if ready_cap > 0 else 0.0
            per_replica = sum(caps[p.name].rps for p in first_hop)
            budget = update_budget(prev_budget, pools, slo, now, used, config.tick_s, per_replica)
            budgets[model_name] = budget
            scale = budget.scale
            caps = {name: replace(c, rps=c.rps * scale) for name, c in caps.items()}
        served_now = math.inf
        model_weights: dict[str, float] = {}
        for group in _groups(pools):
            key = f"{model_name}/{group[0].role}"
            variants = _variants(group, caps, config)
            choice, mix_reason = _choose(
                key, variants, demand, _inventory_left(config, claimed), state, config
            )
            choices[key] = choice
            total_cap = sum(choice[v.pool] * v.capacity_rps for v in variants)
            group_ready_cap = 0.0
            for p in group:
                decision, pool_states[p.name] = _pool_decision(
                    p,
                    raw=choice[p.name],
                    mix_reason=mix_reason,
                    prev=pool_states.get(p.name),
                    model=ms,
                    demand=demand,
                    share=_share(demand, caps[p.name].rps, choice[p.name], total_cap, config),
                    cap=caps[p.name],
                    mix=mix,
                    slo=slo,
                    gpus_left=_inventory_left(config, claimed).get(p.accelerator),
                    snapshot=snapshot,
                    config=config,
                    now=now,
                    scale=scale,
                )
                decisions.append(decision)
                claimed[p.accelerator] = (
                    claimed.get(p.accelerator, 0) + decision.replicas * p.gpus_per_replica
                )
                cap = caps[p.name]
                group_ready_cap += p.ready * cap.rps
                if group[0].role in ("aggregated", "expert-parallel"):
                    model_weights[p.name] = p.ready * cap.rps
            served_now = min(served_now, group_ready_cap)
        total_w = sum(model_weights.values())
        if total_w > 0:
            weights[model_name] = {k: v / total_w for k, v in model_weights.items()}
        admit[model_name] = served_now >= ms.arrival_rps
    new_state = PolicyState(
        pools=pool_states,
        forecasts=forecasts,
        mixes=mixes,
        mix_weights=mix_weights,
        variant_choice=choices,
        budgets=budgets,
    )
    return (
        Decision(pools=tuple(decisions), routing_weights=weights, admit_sheddable=admit),
        new_state,
        Diagnostics(forecast_rps=forecast_out, observed_rps=observed_out, mix=mixes),
    )
