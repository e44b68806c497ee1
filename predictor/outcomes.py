"""What a latency model answers: a :class:`Prediction` or an explicit :class:`NotReady`.

Why this module exists: "no model" must never read as "zero latency". Every caller (the gateway
scorer, shedding, capacity planning, the HTTP service) gets either a full prediction or a reason it
cannot have one, and the reasons are a stable, append-only enum so they can become metric labels
and condition messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from predictor.features import PodType


class NotReadyReason(StrEnum):
    """Why no prediction is available. Append-only: values are exported as labels."""

    NO_MODEL = "NoModel"
    TOO_FEW_SAMPLES = "TooFewSamples"
    NOT_MONOTONE = "NotMonotone"
    UNKNOWN_ACCELERATOR = "UnknownAccelerator"
    UNKNOWN_SEGMENT = "UnknownSegment"
    INVALID_ARTIFACT = "InvalidArtifact"
    INVALID_INPUT = "InvalidInput"
    INFEASIBLE = "Infeasible"


@dataclass(frozen=True, slots=True)
class NotReady:
    """No answer, and why (``message`` names the segment, count or feature involved)."""

    reason: NotReadyReason
    message: str


@dataclass(frozen=True, slots=True)
class LatencyQuantiles:
    """Predicted latency of one target in milliseconds: quantiles (ascending) and the mean."""

    quantiles: tuple[float, ...]
    values_ms: tuple[float, ...]
    mean_ms: float

    def at(self, quantile: float) -> float:
        """The value at ``quantile`` (which must be one the model was trained for)."""
        for q, v in zip(self.quantiles, self.values_ms, strict=True):
            if abs(q - quantile) < 1e-9:
                return v
        raise KeyError(f"quantile {quantile} not among {self.quantiles}")


@dataclass(frozen=True, slots=True)
class Prediction:
    """TTFT and TPOT for one request on one pod, calibrated, with the quantile that serves."""

    accelerator: str
    pod_type: PodType
    ttft: LatencyQuantiles
    tpot: LatencyQuantiles
    serving_quantile: float

    @property
    def ttft_ms(self) -> float:
        """TTFT at the serving quantile (what llm-d's ``ttft_ms`` field carries)."""
        return self.ttft.at(self.serving_quantile)

    @property
    def tpot_ms(self) -> float:
        """TPOT at the serving quantile (what llm-d's ``tpot_ms`` field carries)."""
        return self.tpot.at(self.serving_quantile)
