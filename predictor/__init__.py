"""Latency models for LLM serving: learned per accelerator, calibrated, served llm-d-compatibly.

The predictor learns TTFT and TPOT from request samples (the gateway's posts, or CSV files),
keeps them in a load-stratified buffer, fits monotone quantile models per accelerator and role
(a linear queueing term, a LightGBM location and quantile maps), calibrates them with split
conformal prediction per load stratum, stores them as versioned artifacts, answers
``Prediction | NotReady`` in process or over llm-d's HTTP API, retrains on a cadence and when new
samples show drift, and turns models — request-level ones, or window models learned from
Prometheus — into the capacity of one replica at an SLO (with an analytic fallback while no model
is ready).

It imports nothing else of sloscaler's; ``docs/predictor.md`` describes it end to end.
"""

from predictor.features import FeatureColumns, PodType, RequestFeatures, Target
from predictor.models import LatencyModel, Layout, ModelConfig, fit_latency_model
from predictor.outcomes import LatencyQuantiles, NotReady, NotReadyReason, Prediction
from predictor.samples import RequestSamples

__all__ = [
    "FeatureColumns",
    "LatencyModel",
    "LatencyQuantiles",
    "Layout",
    "ModelConfig",
    "NotReady",
    "NotReadyReason",
    "PodType",
    "Prediction",
    "RequestFeatures",
    "RequestSamples",
    "Target",
    "fit_latency_model",
]
