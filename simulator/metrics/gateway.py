"""The simulated inference gateway's metrics, in the Gateway API Inference Extension's names.

Why it exists: two of the controller's signals live in the gateway, not in vLLM. Requests held in
the endpoint picker's (EPP's) flow-control queue are demand no pod has seen yet — the only evidence
that wakes a pool scaled to zero — and requests the EPP rejects for lack of capacity are the
shedding the controller must account for. A real EPP exports both; the simulated gateway exports
the same series so the controller's PromQL runs unchanged against either.

Names and labels are those of ``pkg/epp/metrics/metrics.go`` in
kubernetes-sigs/gateway-api-inference-extension (v1.x):

* ``inference_extension_flow_control_queue_size`` (gauge) — labels ``fairness_id``, ``priority``,
  ``inference_pool``, ``model_name``, ``target_model_name``. llm-d's EPP also exports it as
  ``llm_d_epp_flow_control_queue_size`` (same labels) and marks the old name deprecated;
  ``queue_size_name`` picks either.
* ``inference_objective_request_total`` (counter) — ``model_name``, ``target_model_name``: requests
  the EPP scheduled. As in the EPP, a rejected request does not count here.
* ``inference_objective_request_error_total`` (counter) — ``model_name``, ``target_model_name``,
  ``error_code``. A request shed because the pool is saturated carries
  ``error_code="InferencePoolResourceExhausted"`` (the EPP answers it with HTTP 429).

The EPP is a Go program: its client library prints labels sorted by name and no ``_created``
series, which is what :class:`GatewayMetrics` reproduces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from simulator.metrics.samples import (
    FamilySamples,
    LabelTuple,
    MetricFamily,
    Sample,
    SeriesGroup,
    check_label_names,
    flatten,
    label_set,
)

__all__ = [
    "DEFAULT_FAIRNESS_ID",
    "LLMD_QUEUE_SIZE_NAME",
    "QUEUE_SIZE_NAME",
    "RESOURCE_EXHAUSTED",
    "GatewayMetrics",
    "GatewaySnapshot",
]

QUEUE_SIZE_NAME: Final = "inference_extension_flow_control_queue_size"
LLMD_QUEUE_SIZE_NAME: Final = "llm_d_epp_flow_control_queue_size"
REQUEST_TOTAL_NAME: Final = "inference_objective_request"
REQUEST_ERROR_NAME: Final = "inference_objective_request_error"
RESOURCE_EXHAUSTED: Final = "InferencePoolResourceExhausted"
"""``error_code`` of a request the EPP shed for lack of capacity (HTTP 429)."""
DEFAULT_FAIRNESS_ID: Final = "default-flow"
"""The EPP's fairness id for requests without an ``x-gateway-inference-fairness-id`` header."""

_QUEUE_HELP: Final = (
    "[ALPHA] Current number of requests being actively managed by the EPP flow control layer, "
    "from the start of the EnqueueAndWait call until a final outcome is reached."
)
_REQUESTS: Final = MetricFamily(
    REQUEST_TOTAL_NAME,
    "counter",
    "[ALPHA] Counter of inference objective requests broken out for each model and target model.",
    exports_created=False,
)
_ERRORS: Final = MetricFamily(
    REQUEST_ERROR_NAME,
    "counter",
    "[ALPHA] Counter of inference objective requests errors broken out for each model and "
    "target model.",
    exports_created=False,
)
_RESERVED: Final = (
    "fairness_id",
    "priority",
    "inference_pool",
    "model_name",
    "target_model_name",
    "error_code",
)

_Keys = tuple[tuple[str, LabelTuple], ...]


class _GatewayLayout:
    __slots__ = ("_cache", "base", "identity", "model_labels", "queue_family", "requests_keys")

    def __init__(self, pool: str, model: str, target: str, extra: dict[str, str], qname: str):
        self.model_labels = label_set(extra, model_name=model, target_model_name=target)
        self.base = {**extra, "model_name": model, "target_model_name": target}
        self.identity = label_set(self.base, inference_pool=pool)
        self.queue_family = MetricFamily(qname, "gauge", _QUEUE_HELP, exports_created=False)
        self.requests_keys: _Keys = ((REQUEST_TOTAL_NAME + "_total", self.model_labels),)
        self._cache: dict[object, tuple[LabelTuple, _Keys]] = {}

    def queue_keys(self, fairness_id: str, priority: int) -> tuple[LabelTuple, _Keys]:
        key = ("q", fairness_id, priority)
        cached = self._cache.get(key)
        if cached is None:
            labels = label_set(dict(self.identity), fairness_id=fairness_id, priority=str(priority))
            cached = (labels, ((self.queue_family.name, labels),))
            self._cache[key] = cached
        return cached

    def error_keys(self, code: str) -> tuple[LabelTuple, _Keys]:
        key = ("e", code)
        cached = self._cache.get(key)
        if cached is None:
            labels = label_set(self.base, error_code=code)
            cached = (labels, ((REQUEST_ERROR_NAME + "_total", labels),))
            self._cache[key] = cached
        return cached


@dataclass(frozen=True, slots=True)
class GatewaySnapshot:
    """The gateway's metrics frozen at one instant."""

    queue_sizes: tuple[tuple[tuple[str, int], int], ...]
    """``((fairness_id, priority), requests queued)`` per flow-control band."""
    requests_total: int
    request_errors: tuple[tuple[str, int], ...]
    """``(error_code, count)``."""
    _layout: _GatewayLayout = field(repr=False, compare=False)

    @property
    def identity(self) -> LabelTuple:
        """Pool, model and target model (plus extra labels), sorted by name."""
        return self._layout.identity

    @property
    def created_s(self) -> float:
        """Go's text exposition has no ``_created`` series; always 0."""
        return 0.0

    @property
    def queue_size(self) -> int:
        """Requests in the flow-control queue over every band."""
        return sum(n for _, n in self.queue_sizes)

    @property
    def shed_total(self) -> int:
        """Requests rejected with ``InferencePoolResourceExhausted``."""
        return dict(self.request_errors).get(RESOURCE_EXHAUSTED, 0)

    def collect(self) -> list[FamilySamples]:
        """The families that have series, sorted by name as client_golang's ``Gather`` does.

        A Go metric vector with no children is not exported at all, so the request counter appears
        with the first scheduled request, the error counter with the first rejected one and the
        queue gauge with the first band set — absent, not zero, as on a real EPP.
        """
        layout = self._layout
        errors = []
        for code, n in self.request_errors:
            labels, keys = layout.error_keys(code)
            errors.append(SeriesGroup(labels, keys, (n,)))
        queues = []
        for (fairness_id, priority), n in self.queue_sizes:
            labels, keys = layout.queue_keys(fairness_id, priority)
            queues.append(SeriesGroup(labels, keys, (n,)))
        requests = []
        if self.requests_total:
            requests.append(
                SeriesGroup(layout.model_labels, layout.requests_keys, (self.requests_total,))
            )
        families = [
            FamilySamples(layout.queue_family, queues),
            FamilySamples(_ERRORS, errors),
            FamilySamples(_REQUESTS, requests),
        ]
        families.sort(key=lambda fam: fam.family.text_name)
        return [fam for fam in families if fam.groups]

    def samples(self) -> list[Sample]:
        """Every series as it would be scraped."""
        return flatten(self.collect())


class GatewayMetrics:
    """Flow-control queue depth, scheduled requests and shed requests of one InferencePool.

    The simulated gateway calls :meth:`set_queue_size` whenever its queue changes (or increments
    ``queue_sizes`` itself), :meth:`record_scheduled` when it routes a request to a pod, and
    :meth:`record_shed` when admission control rejects one. The label sets follow the EPP; a band
    (``fairness_id``, ``priority``) appears on first use and then stays, as a Go ``GaugeVec``
    child does.
    """

    __slots__ = ("_layout", "model_name", "pool", "queue_sizes", "request_errors", "requests_total")

    def __init__(
        self,
        pool: str,
        model_name: str,
        target_model_name: str | None = None,
        extra_labels: Mapping[str, str] | None = None,
        queue_size_name: str = QUEUE_SIZE_NAME,
    ) -> None:
        if queue_size_name not in (QUEUE_SIZE_NAME, LLMD_QUEUE_SIZE_NAME):
            raise ValueError(
                f"queue_size_name must be {QUEUE_SIZE_NAME!r} or {LLMD_QUEUE_SIZE_NAME!r}"
            )
        self.pool = pool
        self.model_name = model_name
        target = model_name if target_model_name is None else target_model_name
        extra = check_label_names(extra_labels or {}, _RESERVED)
        self._layout = _GatewayLayout(pool, model_name, target, extra, queue_size_name)
        self.queue_sizes: dict[tuple[str, int], int] = {}
        self.requests_total: int = 0
        self.request_errors: dict[str, int] = {}

    @property
    def identity(self) -> LabelTuple:
        """Pool, model and target model (plus extra labels), sorted by name."""
        return self._layout.identity

    @property
    def queue_size(self) -> int:
        """Requests in the flow-control queue over every band."""
        return sum(self.queue_sizes.values())

    @property
    def shed_total(self) -> int:
        """Requests rejected so far with ``InferencePoolResourceExhausted``."""
        return self.request_errors.get(RESOURCE_EXHAUSTED, 0)

    def set_queue_size(
        self, size: int, priority: int = 0, fairness_id: str = DEFAULT_FAIRNESS_ID
    ) -> None:
        """Set the number of requests queued in band (``fairness_id``, ``priority``)."""
        self.queue_sizes[(fairness_id, priority)] = size

    def record_scheduled(self, n: int = 1) -> None:
        """Count ``n`` requests the gateway routed to a pod."""
        self.requests_total += n

    def record_shed(self, n: int = 1, error_code: str = RESOURCE_EXHAUSTED) -> None:
        """Count ``n`` rejected requests (by default: shed because the pool is saturated)."""
        errors = self.request_errors
        errors[error_code] = errors.get(error_code, 0) + n

    def snapshot(self) -> GatewaySnapshot:
        """Copy every value; safe to render on another thread."""
        return GatewaySnapshot(
            queue_sizes=tuple(self.queue_sizes.copy().items()),
            requests_total=self.requests_total,
            request_errors=tuple(self.request_errors.copy().items()),
            _layout=self._layout,
        )

    def samples(self) -> list[Sample]:
        """Every series as it would be scraped now."""
        return self.snapshot().samples()
