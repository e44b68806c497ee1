"""Why a pool has the size it has: a public, append-only enum.

Every decision carries one :class:`Reason`; it is exported as the ``reason`` label of
``sloscaler_decision_reason`` and as CRD condition reasons, so values are never renamed or
removed — only appended.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Stable reason codes (CamelCase, as Kubernetes condition reasons)."""

    # recommendation
    DemandForecast = "DemandForecast"  # sized from forecast demand / capacity at SLO
    NoDemand = "NoDemand"  # forecast demand is zero
    HoldOnMissingData = "HoldOnMissingData"  # metrics missing or stale: keep current size
    # normalization stages
    Unchanged = "Unchanged"  # the stage changed nothing
    ScaleDownStabilized = "ScaleDownStabilized"  # a higher recommendation inside the window
    ScaleUpStabilized = "ScaleUpStabilized"  # a lower recommendation inside the up window
    ScaleUpLimit = "ScaleUpLimit"  # rate limit on scale-up
    ScaleDownLimit = "ScaleDownLimit"  # rate limit on scale-down
    TooFewReplicas = "TooFewReplicas"  # raised to min replicas
    TooManyReplicas = "TooManyReplicas"  # capped at max replicas
    GPUBudget = "GPUBudget"  # capped by the GPU inventory / budget
    KeepWarm = "KeepWarm"  # zero wanted but idleness not proven long enough
    ScaleToZero = "ScaleToZero"  # idle for the configured time: scale to zero
    WakeUp = "WakeUp"  # requests queued at the gateway for a pool at zero
    # model-level
    VariantMix = "VariantMix"  # chosen by the cost-optimal variant mix
    MixHysteresis = "MixHysteresis"  # previous mix kept: new one not enough cheaper
