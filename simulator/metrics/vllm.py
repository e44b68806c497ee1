"""One simulated vLLM pod's Prometheus metrics, in vLLM V1's exact names, labels and buckets.

Why it exists: the controller's PromQL, the predictor's dataset builder and the dashboards are
written against what a real vLLM server exports (``shared/reference/vllm-metrics.md``, read from
``vllm/v1/metrics/loggers.py``). If the simulator exported anything else, every claim measured on
it would be about a different system. So this module copies vLLM's families one for one — name,
type, HELP text, ``model_name``/``engine`` labels, bucket edges — and nothing else.

The engine holds one :class:`VllmMetrics` per pod and updates it on its hot path: gauges and
counters are plain attributes it assigns or increments, histograms are :class:`Histogram` objects
(``observe`` is one ``bisect``). Reading happens elsewhere and is cheap:
:meth:`VllmMetrics.snapshot` copies the values into an immutable :class:`MetricsSnapshot`, which
the controller diffs over a window (rates, window quantiles) and which the text and OpenMetrics
renderers turn into series.

Version choice: vLLM ≥ 0.11 exports per-step inter-token latency as
``vllm:inter_token_latency_seconds``; ≤ 0.10 exported the same histogram as
``vllm:time_per_output_token_seconds`` and had no ``vllm:request_time_per_output_token_seconds``.
``itl_name`` picks which vLLM to look like (:data:`ITL_NAME` or :data:`LEGACY_ITL_NAME`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from simulator.metrics.histogram import Histogram, HistogramSnapshot
from simulator.metrics.samples import (
    FamilySamples,
    LabelTuple,
    MetricFamily,
    Sample,
    SeriesGroup,
    check_label_names,
    flatten,
    format_value,
    label_set,
)

__all__ = [
    "FINISHED_REASONS",
    "ITERATION_TOKENS_BUCKETS",
    "ITL_BUCKETS",
    "ITL_NAME",
    "LEGACY_ITL_NAME",
    "REQUEST_LATENCY_BUCKETS",
    "TTFT_BUCKETS",
    "Histogram",
    "HistogramSnapshot",
    "MetricsSnapshot",
    "VllmMetrics",
    "build_1_2_5_buckets",
]

TTFT_BUCKETS: Final[tuple[float, ...]] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
"""``vllm:time_to_first_token_seconds``."""

ITL_BUCKETS: Final[tuple[float, ...]] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
"""Inter-token latency, its legacy name, and ``vllm:request_time_per_output_token_seconds``."""

REQUEST_LATENCY_BUCKETS: Final[tuple[float, ...]] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
"""E2E latency and the per-phase request times (queue, inference, prefill, decode)."""

ITERATION_TOKENS_BUCKETS: Final[tuple[float, ...]] = (
    1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
)  # fmt: skip
"""``vllm:iteration_tokens_total`` (a histogram despite the name): tokens per engine step."""

ITL_NAME: Final = "vllm:inter_token_latency_seconds"
"""Per-step inter-token latency in vLLM ≥ 0.11 (the default)."""

LEGACY_ITL_NAME: Final = "vllm:time_per_output_token_seconds"
"""The same histogram's name in vLLM ≤ 0.10 (hidden in 0.11/0.12, removed in 0.13)."""

FINISHED_REASONS: Final[tuple[str, ...]] = ("stop", "length", "abort")
"""``finished_reason`` values vLLM pre-creates (``str(FinishReason)``), exported even at zero."""


def build_1_2_5_buckets(max_value: int) -> tuple[float, ...]:
    """1, 2, 5, 10, 20, 50, … up to and including ``max_value`` (vLLM's ``build_1_2_5_buckets``).

    >>> build_1_2_5_buckets(100)
    (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
    """
    out: list[float] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_value:
                return tuple(out)
            out.append(float(value))
        exponent += 1


# (attribute, metric name, vLLM's HELP text), in vLLM's registration order.
_GAUGES: Final = (
    ("num_requests_running", "vllm:num_requests_running",
     "Number of requests in model execution batches."),
    ("num_requests_waiting", "vllm:num_requests_waiting",
     "Number of requests waiting to be processed."),
    ("kv_cache_usage_perc", "vllm:kv_cache_usage_perc",
     "KV-cache usage. 1 means 100 percent usage."),
)  # fmt: skip
_COUNTERS: Final = (
    ("prefix_cache_queries", "vllm:prefix_cache_queries",
     "Prefix cache queries, in terms of number of queried tokens."),
    ("prefix_cache_hits", "vllm:prefix_cache_hits",
     "Prefix cache hits, in terms of number of cached tokens."),
    ("num_preemptions", "vllm:num_preemptions", "Cumulative number of preemption from the engine."),
    ("prompt_tokens", "vllm:prompt_tokens", "Number of prefill tokens processed."),
    ("generation_tokens", "vllm:generation_tokens", "Number of generation tokens processed."),
)  # fmt: skip
_REQUEST_SUCCESS: Final = MetricFamily(
    "vllm:request_success", "counter", "Count of successfully processed requests."
)
_TOKENS: Final[tuple[float, ...]] = ()  # marker: 1-2-5 buckets up to max_model_len
_HISTOGRAMS: Final[tuple[tuple[str, str, str, tuple[float, ...]], ...]] = (
    ("request_prompt_tokens", "vllm:request_prompt_tokens",
     "Number of prefill tokens processed.", _TOKENS),
    ("request_generation_tokens", "vllm:request_generation_tokens",
     "Number of generation tokens processed.", _TOKENS),
    ("iteration_tokens", "vllm:iteration_tokens_total",
     "Histogram of number of tokens per engine_step.", ITERATION_TOKENS_BUCKETS),
    ("time_to_first_token", "vllm:time_to_first_token_seconds",
     "Histogram of time to first token in seconds.", TTFT_BUCKETS),
    ("inter_token_latency", ITL_NAME, "Histogram of inter-token latency in seconds.", ITL_BUCKETS),
    ("request_time_per_output_token", "vllm:request_time_per_output_token_seconds",
     "Histogram of time_per_output_token_seconds per request.", ITL_BUCKETS),
    ("e2e_request_latency", "vllm:e2e_request_latency_seconds",
     "Histogram of e2e request latency in seconds.", REQUEST_LATENCY_BUCKETS),
    ("request_queue_time", "vllm:request_queue_time_seconds",
     "Histogram of time spent in WAITING phase for request.", REQUEST_LATENCY_BUCKETS),
    ("request_inference_time", "vllm:request_inference_time_seconds",
     "Histogram of time spent in RUNNING phase for request.", REQUEST_LATENCY_BUCKETS),
    ("request_prefill_time", "vllm:request_prefill_time_seconds",
     "Histogram of time spent in PREFILL phase for request.", REQUEST_LATENCY_BUCKETS),
    ("request_decode_time", "vllm:request_decode_time_seconds",
     "Histogram of time spent in DECODE phase for request.", REQUEST_LATENCY_BUCKETS),
)  # fmt: skip
_LEGACY_ITL_HELP: Final = "Histogram of time per output token in seconds."
_RESERVED_LABELS: Final = ("model_name", "engine", "finished_reason", "le")


_Keys = tuple[tuple[str, LabelTuple], ...]


def _histogram_keys(name: str, labels: LabelTuple, bounds: tuple[float, ...]) -> _Keys:
    """Exposition keys of one histogram series: every ``_bucket`` (``+Inf`` last), then
    ``_count`` and ``_sum`` — prometheus_client's order."""
    base = dict(labels)
    keys = [(name + "_bucket", label_set(base, le=format_value(b))) for b in bounds]
    keys.append((name + "_bucket", label_set(base, le="+Inf")))
    keys.append((name + "_count", labels))
    keys.append((name + "_sum", labels))
    return tuple(keys)


class _Layout:
    """What a pod's exposition looks like, computed once: families, label sets, sample keys."""

    __slots__ = (
        "counters",
        "created_s",
        "gauges",
        "histograms",
        "identity",
        "reason_keys",
    )

    def __init__(
        self,
        identity: LabelTuple,
        itl_name: str,
        token_buckets: tuple[float, ...],
        created_s: float,
    ) -> None:
        self.identity = identity
        self.created_s = created_s
        self.gauges: tuple[tuple[str, MetricFamily, _Keys], ...] = tuple(
            (attr, MetricFamily(name, "gauge", help_), ((name, identity),))
            for attr, name, help_ in _GAUGES
        )
        self.counters: tuple[tuple[str, MetricFamily, _Keys], ...] = tuple(
            (attr, MetricFamily(name, "counter", help_), ((name + "_total", identity),))
            for attr, name, help_ in _COUNTERS
        )
        legacy = itl_name == LEGACY_ITL_NAME
        histograms: list[tuple[str, MetricFamily, _Keys]] = []
        for attr, default_name, default_help, buckets in _HISTOGRAMS:
            name, help_ = default_name, default_help
            if attr == "inter_token_latency":
                name = itl_name
                help_ = _LEGACY_ITL_HELP if legacy else default_help
            elif attr == "request_time_per_output_token" and legacy:
                continue  # vLLM <= 0.10 had no per-request TPOT histogram
            bounds = buckets or token_buckets
            family = MetricFamily(name, "histogram", help_)
            histograms.append((attr, family, _histogram_keys(name, identity, bounds)))
        self.histograms = tuple(histograms)
        self.reason_keys: dict[str, tuple[LabelTuple, _Keys]] = {}

    def request_success_keys(self, reason: str) -> tuple[LabelTuple, _Keys]:
        cached = self.reason_keys.get(reason)
        if cached is None:
            labels = label_set(dict(self.identity), finished_reason=reason)
            cached = (labels, ((_REQUEST_SUCCESS.name + "_total", labels),))
            self.reason_keys[reason] = cached
        return cached


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """One pod's metrics frozen at one instant, as a controller would read them from Prometheus.

    Counters and histograms are cumulative since the pod started; :meth:`since` turns two
    snapshots into the increase over the window between them (what ``increase()``/``rate()``
    see), and :meth:`HistogramSnapshot.quantile` on that increase is ``histogram_quantile`` over
    the window. :meth:`collect` / :meth:`samples` render the snapshot as scraped series.
    """

    num_requests_running: int
    num_requests_waiting: int
    kv_cache_usage_perc: float
    prompt_tokens: int
    generation_tokens: int
    num_preemptions: int
    prefix_cache_queries: int
    prefix_cache_hits: int
    request_success: tuple[tuple[str, int], ...]
    time_to_first_token: HistogramSnapshot
    inter_token_latency: HistogramSnapshot
    e2e_request_latency: HistogramSnapshot
    request_queue_time: HistogramSnapshot
    request_inference_time: HistogramSnapshot
    request_prefill_time: HistogramSnapshot
    request_decode_time: HistogramSnapshot
    request_time_per_output_token: HistogramSnapshot
    request_prompt_tokens: HistogramSnapshot
    request_generation_tokens: HistogramSnapshot
    iteration_tokens: HistogramSnapshot
    _layout: _Layout = field(repr=False, compare=False)

    @property
    def identity(self) -> LabelTuple:
        """``model_name``, ``engine`` and the extra labels, sorted by name."""
        return self._layout.identity

    @property
    def created_s(self) -> float:
        """The value exported as every counter's and histogram's ``_created``."""
        return self._layout.created_s

    @property
    def finished_requests(self) -> int:
        """``sum(vllm:request_success_total)`` over every finished reason."""
        return sum(n for _, n in self.request_success)

    def finished(self, reason: str) -> int:
        """``vllm:request_success_total{finished_reason=reason}`` (0 when never seen)."""
        return dict(self.request_success).get(reason, 0)

    def since(self, older: MetricsSnapshot) -> MetricsSnapshot:
        """Counters and histograms as increases since ``older``; gauges as of this snapshot.

        A counter that went down means the pod restarted; as PromQL's ``increase`` does, the
        whole current value then counts as the increase. Snapshots of two different series
        (another pod, model or engine) cannot be diffed.
        """
        if older.identity != self.identity:
            raise ValueError(f"cannot diff snapshots of {older.identity} and {self.identity}")

        def inc(new: int, old: int) -> int:
            return new - old if new >= old else new

        old_reasons = dict(older.request_success)
        return MetricsSnapshot(
            num_requests_running=self.num_requests_running,
            num_requests_waiting=self.num_requests_waiting,
            kv_cache_usage_perc=self.kv_cache_usage_perc,
            prompt_tokens=inc(self.prompt_tokens, older.prompt_tokens),
            generation_tokens=inc(self.generation_tokens, older.generation_tokens),
            num_preemptions=inc(self.num_preemptions, older.num_preemptions),
            prefix_cache_queries=inc(self.prefix_cache_queries, older.prefix_cache_queries),
            prefix_cache_hits=inc(self.prefix_cache_hits, older.prefix_cache_hits),
            request_success=tuple(
                (reason, inc(n, old_reasons.get(reason, 0))) for reason, n in self.request_success
            ),
            time_to_first_token=self.time_to_first_token.since(older.time_to_first_token),
            inter_token_latency=self.inter_token_latency.since(older.inter_token_latency),
            e2e_request_latency=self.e2e_request_latency.since(older.e2e_request_latency),
            request_queue_time=self.request_queue_time.since(older.request_queue_time),
            request_inference_time=self.request_inference_time.since(older.request_inference_time),
            request_prefill_time=self.request_prefill_time.since(older.request_prefill_time),
            request_decode_time=self.request_decode_time.since(older.request_decode_time),
            request_time_per_output_token=self.request_time_per_output_token.since(
                older.request_time_per_output_token
            ),
            request_prompt_tokens=self.request_prompt_tokens.since(older.request_prompt_tokens),
            request_generation_tokens=self.request_generation_tokens.since(
                older.request_generation_tokens
            ),
            iteration_tokens=self.iteration_tokens.since(older.iteration_tokens),
            _layout=self._layout,
        )

    def collect(self) -> list[FamilySamples]:
        """Every exported family with its series, in vLLM's registration order."""
        layout = self._layout
        identity = layout.identity
        out: list[FamilySamples] = []
        for attr, family, keys in layout.gauges:
            out.append(FamilySamples(family, [SeriesGroup(identity, keys, (getattr(self, attr),))]))
        for attr, family, keys in layout.counters:
            out.append(FamilySamples(family, [SeriesGroup(identity, keys, (getattr(self, attr),))]))
        groups = []
        for reason, n in self.request_success:
            labels, keys = layout.request_success_keys(reason)
            groups.append(SeriesGroup(labels, keys, (n,)))
        out.append(FamilySamples(_REQUEST_SUCCESS, groups))
        for attr, family, keys in layout.histograms:
            hist: HistogramSnapshot = getattr(self, attr)
            cumulative = hist.cumulative()
            values = [*cumulative, cumulative[-1], hist.sum]
            out.append(FamilySamples(family, [SeriesGroup(identity, keys, values)]))
        return out

    def samples(self) -> list[Sample]:
        """Every series as it would be scraped (without the ``_created`` gauges)."""
        return flatten(self.collect())


class VllmMetrics:
    """The metrics of one simulated vLLM engine, updated in place by the engine.

    Gauges (assign): ``num_requests_running``, ``num_requests_waiting``, ``kv_cache_usage_perc``
    (a fraction in 0–1, as vLLM exports it).
    Counters (increment): ``prompt_tokens``, ``generation_tokens``, ``num_preemptions``,
    ``prefix_cache_queries``, ``prefix_cache_hits`` (the last two in tokens), and
    :meth:`request_success` per finished reason.
    Histograms (:class:`Histogram`, call ``observe``/``observe_arithmetic``):
    ``time_to_first_token``, ``inter_token_latency``, ``e2e_request_latency``,
    ``request_queue_time``, ``request_inference_time``, ``request_prefill_time``,
    ``request_decode_time``, ``request_time_per_output_token``, ``request_prompt_tokens``,
    ``request_generation_tokens``, ``iteration_tokens``.

    Every series carries ``model_name`` and ``engine`` (the engine-core index as a string) plus
    ``extra_labels`` — e.g. ``{"pod": ..., "namespace": ...}``, the labels Prometheus's
    Kubernetes service discovery would attach, so in-memory samples and OpenMetrics files can tell
    pods apart. ``created_s`` is the value of the ``_created`` series (the pod's start time).
    """

    __slots__ = (
        "_layout",
        "e2e_request_latency",
        "engine",
        "extra_labels",
        "generation_tokens",
        "inter_token_latency",
        "iteration_tokens",
        "itl_name",
        "kv_cache_usage_perc",
        "max_model_len",
        "model_name",
        "num_preemptions",
        "num_requests_running",
        "num_requests_waiting",
        "prefix_cache_hits",
        "prefix_cache_queries",
        "prompt_tokens",
        "request_decode_time",
        "request_generation_tokens",
        "request_inference_time",
        "request_prefill_time",
        "request_prompt_tokens",
        "request_queue_time",
        "request_success_counts",
        "request_time_per_output_token",
        "time_to_first_token",
    )

    def __init__(
        self,
        model_name: str,
        engine: str = "0",
        max_model_len: int = 8192,
        extra_labels: Mapping[str, str] | None = None,
        itl_name: str = ITL_NAME,
        *,
        created_s: float = 0.0,
    ) -> None:
        if itl_name not in (ITL_NAME, LEGACY_ITL_NAME):
            raise ValueError(
                f"itl_name must be {ITL_NAME!r} or {LEGACY_ITL_NAME!r}, not {itl_name!r}"
            )
        if max_model_len < 1:
            raise ValueError("max_model_len must be at least 1")
        self.model_name = model_name
        self.engine = str(engine)
        self.max_model_len = max_model_len
        self.itl_name = itl_name
        self.extra_labels = check_label_names(extra_labels or {}, _RESERVED_LABELS)
        identity = label_set(self.extra_labels, model_name=model_name, engine=self.engine)
        token_buckets = build_1_2_5_buckets(max_model_len)
        self._layout = _Layout(identity, itl_name, token_buckets, created_s)

        self.num_requests_running: int = 0
        self.num_requests_waiting: int = 0
        self.kv_cache_usage_perc: float = 0.0

        self.prompt_tokens: int = 0
        self.generation_tokens: int = 0
        self.num_preemptions: int = 0
        self.prefix_cache_queries: int = 0
        self.prefix_cache_hits: int = 0
        self.request_success_counts: dict[str, int] = dict.fromkeys(FINISHED_REASONS, 0)

        self.time_to_first_token = Histogram(TTFT_BUCKETS)
        self.inter_token_latency = Histogram(ITL_BUCKETS)
        self.request_time_per_output_token = Histogram(ITL_BUCKETS)
        self.e2e_request_latency = Histogram(REQUEST_LATENCY_BUCKETS)
        self.request_queue_time = Histogram(REQUEST_LATENCY_BUCKETS)
        self.request_inference_time = Histogram(REQUEST_LATENCY_BUCKETS)
        self.request_prefill_time = Histogram(REQUEST_LATENCY_BUCKETS)
        self.request_decode_time = Histogram(REQUEST_LATENCY_BUCKETS)
        self.request_prompt_tokens = Histogram(token_buckets)
        self.request_generation_tokens = Histogram(token_buckets)
        self.iteration_tokens = Histogram(ITERATION_TOKENS_BUCKETS)

    @property
    def identity(self) -> LabelTuple:
        """``model_name``, ``engine`` and the extra labels, sorted by name."""
        return self._layout.identity

    @property
    def created_s(self) -> float:
        """The value of every ``_created`` series."""
        return self._layout.created_s

    def request_success(self, finished_reason: str = "stop", n: int = 1) -> None:
        """Count ``n`` finished requests (``vllm:request_success_total{finished_reason=…}``).

        vLLM's reasons are ``stop``, ``length`` and ``abort`` (newer releases add ``error`` and
        ``repetition``); any other string becomes a new series on first use.
        """
        counts = self.request_success_counts
        counts[finished_reason] = counts.get(finished_reason, 0) + n

    def record_finished_request(
        self,
        *,
        finish_reason: str,
        arrival_s: float,
        queued_s: float,
        scheduled_s: float,
        first_token_s: float,
        last_token_s: float,
        prompt_tokens: int,
        generation_tokens: int,
        finished_s: float | None = None,
    ) -> None:
        """Record a finished request exactly as vLLM's ``update_from_finished_request`` does.

        From the request's timestamps (seconds, any common clock): e2e = finished − arrival
        (``finished_s`` defaults to ``last_token_s``), queue = scheduled − queued, prefill =
        first token − scheduled, decode = last token − first token, inference = last token −
        scheduled (preemptions fall inside these intervals, as in vLLM), and the per-request
        TPOT = decode / (generation_tokens − 1), or 0 for a single generated token. Also counts
        ``vllm:request_success_total{finished_reason}`` and the prompt/generation length
        histograms. Per-token signals are the engine's to record as they happen: TTFT (first
        token − arrival) when the prefill completes, one ITL per later decode step per sequence,
        ``prompt_tokens`` += the whole prompt length at the first token, ``generation_tokens`` per
        token, and ``iteration_tokens`` once per engine step with the prompt tokens of the
        prefills that completed in it plus the tokens it generated.
        """
        decode_s = last_token_s - first_token_s
        end_s = last_token_s if finished_s is None else finished_s
        self.request_success(finish_reason)
        self.e2e_request_latency.observe(end_s - arrival_s)
        self.request_queue_time.observe(scheduled_s - queued_s)
        self.request_prefill_time.observe(first_token_s - scheduled_s)
        self.request_inference_time.observe(last_token_s - scheduled_s)
        self.request_decode_time.observe(decode_s)
        self.request_prompt_tokens.observe(prompt_tokens)
        self.request_generation_tokens.observe(generation_tokens)
        self.request_time_per_output_token.observe(
            decode_s / (generation_tokens - 1) if generation_tokens > 1 else 0.0
        )

    def snapshot(self) -> MetricsSnapshot:
        """Copy every value (≈ 20 µs); safe to take from another thread while the engine runs."""
        return MetricsSnapshot(
            num_requests_running=self.num_requests_running,
            num_requests_waiting=self.num_requests_waiting,
            kv_cache_usage_perc=self.kv_cache_usage_perc,
            prompt_tokens=self.prompt_tokens,
            generation_tokens=self.generation_tokens,
            num_preemptions=self.num_preemptions,
            prefix_cache_queries=self.prefix_cache_queries,
            prefix_cache_hits=self.prefix_cache_hits,
            request_success=tuple(self.request_success_counts.copy().items()),
            time_to_first_token=self.time_to_first_token.snapshot(),
            inter_token_latency=self.inter_token_latency.snapshot(),
            e2e_request_latency=self.e2e_request_latency.snapshot(),
            request_queue_time=self.request_queue_time.snapshot(),
            request_inference_time=self.request_inference_time.snapshot(),
            request_prefill_time=self.request_prefill_time.snapshot(),
            request_decode_time=self.request_decode_time.snapshot(),
            request_time_per_output_token=self.request_time_per_output_token.snapshot(),
            request_prompt_tokens=self.request_prompt_tokens.snapshot(),
            request_generation_tokens=self.request_generation_tokens.snapshot(),
            iteration_tokens=self.iteration_tokens.snapshot(),
            _layout=self._layout,
        )

    def samples(self) -> list[Sample]:
        """Every series as it would be scraped now (exposition names; no ``_created``)."""
        return self.snapshot().samples()
