"""Training window models from Prometheus: when to train, and one training run.

Why this module exists: ``POST /capacity`` answers from the newest window model in a registry,
and in a cluster nothing but the predictor itself is there to fill it. So ``serve`` retrains
the window models on a cadence from the same Prometheus the controller reads, and
``train-windows`` runs the same pipeline once from the command line. Two parts:

* **When** (pure, no clock): :func:`window_training_due` and :func:`next_due_at` decide from a
  :class:`WindowTrainingPolicy`, the :class:`WindowTrainingState` of the last attempt and the
  time ``now`` given by the caller. The first run is due at once; after a published model the
  next is due ``every_s`` later; after a failure ``min(retry_s, every_s)`` later (a Prometheus
  that is still starting must not cost an hour of learning). ``every_s = 0`` disables it.
  Example: every 3600 s, retry 300 s; start at t = 0 → run (Prometheus unreachable) → due at
  300 → run (published) → due at 3900.
* **One run** (:func:`train_windows`): read ``[start_s, end_s]`` with a
  :class:`~predictor.prometheus_dataset.PrometheusWindowSource`, fit
  (:func:`~predictor.window_models.fit_window_model`) and publish atomically to a
  :class:`~predictor.window_registry.WindowModelRegistry`. Every way it can end is a
  :class:`WindowTrainingResult` with a message; nothing is published unless at least one
  (accelerator, role) is ready, so the model already serving keeps serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from predictor.outcomes import NotReady
from predictor.prometheus_dataset import PrometheusError, WindowDataset
from predictor.window_models import WindowLatencyModel, WindowModelConfig, fit_window_model
from predictor.window_registry import WindowModelRegistry


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


class WindowTrainingResult(StrEnum):
    """How a training run ended. Append-only: values are metric labels."""

    PUBLISHED = "published"
    """A model with at least one ready (accelerator, role) was published."""
    PROMETHEUS_UNAVAILABLE = "prometheus_unavailable"
    """Prometheus was unreachable, timed out or overloaded: retrying may help."""
    PROMETHEUS_REJECTED = "prometheus_rejected"
    """Prometheus refused a query or answered nonsense: retrying will not help."""
    NO_WINDOWS = "no_windows"
    """The range held no usable (pod, window) row."""
    NOT_READY = "not_ready"
    """No (accelerator, role) had enough windows or passed the monotonicity checks."""
    WRITE_FAILED = "write_failed"
    """The registry could not be written."""


@dataclass(frozen=True, slots=True)
class WindowTrainingPolicy:
    """When ``serve`` trains window models (seconds).

    ``every_s``: between runs after a published model (0 disables training);
    ``lookback_s``: how much history each run reads, ending at the run's ``now``;
    ``retry_s``: between runs after a failed one (capped by ``every_s``).
    """

    every_s: float = 3600.0
    lookback_s: float = 21600.0
    retry_s: float = 300.0

    def __post_init__(self) -> None:
        if self.every_s < 0:
            raise ValueError(f"every_s must be ≥ 0 (0 disables), got {self.every_s}")
        if self.lookback_s <= 0:
            raise ValueError(f"lookback_s must be > 0, got {self.lookback_s}")
        if self.retry_s <= 0:
            raise ValueError(f"retry_s must be > 0, got {self.retry_s}")

    @property
    def enabled(self) -> bool:
        return self.every_s > 0


@dataclass(frozen=True, slots=True)
class WindowTrainingState:
    """The last attempt: when it started and whether it published (``None``: none yet)."""

    last_attempt_at: float | None = None
    last_published: bool = False


def next_due_at(policy: WindowTrainingPolicy, state: WindowTrainingState) -> float | None:
    """When the next run is due (epoch seconds; ``-inf`` = at once), or ``None`` if disabled."""
    if not policy.enabled:
        return None
    if state.last_attempt_at is None:
        return float("-inf")
    wait = policy.every_s if state.last_published else min(policy.retry_s, policy.every_s)
    return state.last_attempt_at + wait


def window_training_due(
    policy: WindowTrainingPolicy, state: WindowTrainingState, now: float
) -> bool:
    """Whether a run should start at ``now``."""
    due = next_due_at(policy, state)
    return due is not None and now >= due


def training_range(policy: WindowTrainingPolicy, now: float) -> tuple[float, float]:
    """The window ends a run at ``now`` reads: ``[now − lookback_s, now]``."""
    return now - policy.lookback_s, now


class WindowSource(Protocol):
    """What a run needs of :class:`~predictor.prometheus_dataset.PrometheusWindowSource`."""

    queries_sent: int

    def fetch(self, start_s: float, end_s: float) -> WindowDataset: ...


@dataclass(frozen=True)
class WindowTrainingReport:
    """One run: its result and message, and what it read, fitted and published."""

    result: WindowTrainingResult
    message: str
    started_at: float
    start_s: float
    end_s: float
    version: str | None = None
    dataset: WindowDataset | None = None
    model: WindowLatencyModel | None = None

    @property
    def published(self) -> bool:
        return self.result is WindowTrainingResult.PUBLISHED


def train_windows(
    source: WindowSource,
    start_s: float,
    end_s: float,
    fit: WindowModelConfig,
    registry: WindowModelRegistry,
    now: float,
) -> WindowTrainingReport:
    """Read ``[start_s, end_s]``, fit, and publish when something is ready (see the module doc).

    Prometheus errors become a result (never raised); ``now`` stamps the report and the
    published version.
    """

    def ended(
        result: WindowTrainingResult,
        message: str,
        dataset: WindowDataset | None = None,
        model: WindowLatencyModel | None = None,
        version: str | None = None,
    ) -> WindowTrainingReport:
        return WindowTrainingReport(result, message, now, start_s, end_s, version, dataset, model)

    try:
        dataset = source.fetch(start_s, end_s)
    except PrometheusError as exc:
        if exc.retryable:
            return ended(
                WindowTrainingResult.PROMETHEUS_UNAVAILABLE, f"{exc} (temporary, retry later)"
            )
        return ended(WindowTrainingResult.PROMETHEUS_REJECTED, f"{exc} (permanent)")
    if len(dataset) == 0:
        drops = ", ".join(f"{k.value} {v}" for k, v in dataset.drops.items()) or "no series"
        between = f"between {_iso(start_s)} and {_iso(end_s)}"
        message = f"no usable windows {between} ({drops})"
        return ended(WindowTrainingResult.NO_WINDOWS, message, dataset)
    model = fit_window_model(dataset, fit)
    if not model.is_ready:
        reasons = "; ".join(s.message for s in model.segments.values() if isinstance(s, NotReady))
        return ended(
            WindowTrainingResult.NOT_READY,
            f"no (accelerator, role) could be trained ({reasons})",
            dataset,
            model,
        )
    try:
        version = registry.publish(model, dataset, now)
    except OSError as exc:
        return ended(
            WindowTrainingResult.WRITE_FAILED,
            f"{registry.root}: cannot write the model ({exc.strerror})",
            dataset,
            model,
        )
    ready = sum(not isinstance(s, NotReady) for s in model.segments.values())
    return ended(
        WindowTrainingResult.PUBLISHED,
        f"{ready} of {len(model.segments)} segments ready",
        dataset,
        model,
        version,
    )


__all__ = [
    "WindowSource",
    "WindowTrainingPolicy",
    "WindowTrainingReport",
    "WindowTrainingResult",
    "WindowTrainingState",
    "next_due_at",
    "train_windows",
    "training_range",
    "window_training_due",
]
