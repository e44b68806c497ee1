"""Timing and capacity of one vLLM server: step-time model, accelerator/model catalog, transports.

The simulator's engine asks three questions of this package: how long a step with this batch
takes (:class:`StepTimeModel`), how much KV cache and which price a given accelerator × model ×
GPU count has (:func:`load_catalog`), and how long a P/D KV transfer takes (:func:`transport`).
The answers are calibrated to public measurements by ``python -m simulator.perf.calibrate``;
``docs/calibration.md`` shows the method and how well they match.
"""

from simulator.perf.catalog import (
    AcceleratorSpec,
    Catalog,
    CatalogError,
    ModelSpec,
    ServingProfile,
    load_catalog,
)
from simulator.perf.model import StepTimeModel, prefill_attn_pairs
from simulator.perf.transport import TransportProfile, transport

__all__ = [
    "AcceleratorSpec",
    "Catalog",
    "CatalogError",
    "ModelSpec",
    "ServingProfile",
    "StepTimeModel",
    "TransportProfile",
    "load_catalog",
    "prefill_attn_pairs",
    "transport",
]
