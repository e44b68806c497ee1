"""The in-cluster controller's metrics source: every pool's window and every model's demand,
read from Prometheus in a fixed number of batched PromQL queries.

Why this module exists: in a cluster the pods' vLLM metrics and the gateway's queue live in
Prometheus, and the controller must read them the way the simulator's in-memory source
(:class:`autoscaler.sources.SimulatorMetricsSource`) reads its pods, so a policy decides the same
in both worlds. It keeps four promises:

* **Batched.** :data:`QUERIES_PER_TICK` (12) instant queries per tick, each one metric (or one
  instant of the gauges, or one side of the gateway's demand) for every pod of every pool at
  once, aggregated ``by (namespace, pool)`` — their number grows with neither pods nor pools.
* **The same numbers as the in-memory source.** Rates are ``rate(x[W])`` over the window ``W``;
  means are ``rate(x_sum[W]) / rate(x_count[W])``; the p90 TTFT and ITL are Prometheus's
  ``histogram_quantile`` interpolation applied to the per-bucket rates (:func:`bucket_quantile`,
  a port of Prometheus's ``bucketQuantile``), computed here because the TTFT and TPOT miss counts
  need the same bucket rates (:func:`rate_above`). With one scrape per tick and the query at a
  scrape, the window holds exactly the in-memory source's two frames and every number agrees.
* **Pods map to pools by two labels.** Every vLLM series carries ``namespace`` and ``pool``;
  ``pool`` is the pool's ``scaleTargetRef`` name, copied from the pod label
  ``sloscaler.dev/pool`` by the PodMonitor in ``deploy/base/monitoring.yaml`` (target names are
  unique in a namespace; SLOPolicy pool names only within one policy). The gateway's series are
  joined on ``namespace`` and ``model_name`` (the policy's ``spec.model``).
* **No data is never zero.** A failed query — unreachable, timed out, HTTP 5xx/429, HTTP 4xx, an
  answer that is not Prometheus's JSON — makes the whole tick "no data" (no observation for any
  policy: the controller holds every pool and sets ``MetricsAvailable=False``). A pool whose
  series are absent, stale or not a number gets no window (``None``), a model whose gateway
  series are gets no demand (``arrival_rps=None``). Every such outcome is counted by
  :class:`MetricsFault` in :attr:`PrometheusMetricsSource.faults` and handed to ``on_fault`` (the
  controller's ``sloscaler_metrics_source_errors_total{reason}``).

The one zero that is evidence, not absence: a pool whose target the API server reports at 0
replicas and that has no fresh series gets an empty window (no traffic, nothing running) —
exactly what the in-memory source reports for a pool without pods.

Offered demand at the gateway, as in the in-memory source: requests scheduled + requests
rejected + growth of the flow-control queue over the window. Example: over a 60 s window
``increase(inference_objective_request_total[60s])`` = 600, the error counter's increase = 5 and
the queue went from 10 (``offset 60s``) to 12 → (600 + 5 + 2) / 60 ≈ 10.1 rps.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise
from typing import Final, Protocol

import httpx

from autoscaler.http_faults import CALL_ERRORS, call_fault, status_fault
from autoscaler.k8s.sources import PolicyObservation, PolicyRef
from autoscaler.logging import get_logger
from autoscaler.sources import Demand, rate_above
from policies.types import LoadWindow
from predictor.prometheus_queries import (
    ITL_NAME,
    LEGACY_ITL_NAME,
    Selector,
    check_label_name,
    format_duration,
)

QUANTITY_LABEL: Final = "quantity"
"""The label :func:`tagged` adds so one answer can carry several quantities."""

QUEUE_NAMES: Final[tuple[str, ...]] = (
    "llm_d_epp_flow_control_queue_size",
    "inference_extension_flow_control_queue_size",
)
"""The EPP's flow-control queue gauge: llm-d's name first (it exports both, same values)."""


class MetricsFault(StrEnum):
    """Why a tick, a pool's window or a model's demand has no data. Append-only: the values are
    the ``reason`` label of ``sloscaler_metrics_source_errors_total``."""

    UNREACHABLE = "unreachable"
    """No HTTP answer: connection refused or reset, name not resolved. The tick has no data."""
    TIMEOUT = "timeout"
    """No answer within the client timeout (``--prometheus-timeout``). The tick has no data."""
    SERVER_ERROR = "server_error"
    """HTTP 5xx or 429: Prometheus failed or is overloaded. The tick has no data."""
    REJECTED = "rejected"
    """HTTP 4xx (a query Prometheus refuses, authentication, a wrong path) or an unusable
    address: retrying will not help. The tick has no data."""
    BAD_RESPONSE = "bad_response"
    """HTTP 200 with a body that is not Prometheus's vector answer. The tick has no data."""
    ABSENT = "absent"
    """No series for a pool (or for a model at the gateway), or one it needs is missing."""
    NOT_A_NUMBER = "nan"
    """A value the window or the demand needs is NaN or infinite."""
    STALE = "stale"
    """The newest sample of the pool (or the model's gateway) is older than ``stale_after_s``."""


#: faults that lose the whole tick (the others lose one pool's window or one model's demand)
TICK_FAULTS: Final = frozenset(
    {
        MetricsFault.UNREACHABLE,
        MetricsFault.TIMEOUT,
        MetricsFault.SERVER_ERROR,
        MetricsFault.REJECTED,
        MetricsFault.BAD_RESPONSE,
    }
)


class PrometheusQueryError(Exception):
    """A query got no usable answer; ``reason`` says which kind of failure."""

    def __init__(self, reason: MetricsFault, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# ------------------------------------------------------------------------------ the client


@dataclass(frozen=True, slots=True)
class Sample:
    """One series of an instant-query answer: its labels and its value (NaN kept as NaN)."""

    labels: Mapping[str, str]
    value: float


class InstantQueryClient(Protocol):
    """What the source needs of Prometheus: one instant query evaluated at ``at`` (Unix s)."""

    def query(self, expr: str, at: float) -> list[Sample]:
        """The answer's vector; raises :class:`PrometheusQueryError` on every failure."""
        ...


def parse_vector(body: bytes) -> list[Sample]:
    """``/api/v1/query``'s JSON as samples, or :class:`PrometheusQueryError` (bad response).

    Values are read as Prometheus writes them (``"NaN"``, ``"+Inf"``); a result type other than
    ``vector`` is refused — every query of this source aggregates to an instant vector.
    """
    try:
        doc = json.loads(body)
        if doc.get("status") != "success":
            raise ValueError(f"status {doc.get('status')!r}: {doc.get('error', '')}")
        data = doc["data"]
        if data["resultType"] != "vector":
            raise ValueError(f"result type {data['resultType']!r}, not a vector")
        return [
            Sample({str(k): str(v) for k, v in s["metric"].items()}, float(s["value"][1]))
            for s in data["result"]
        ]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise PrometheusQueryError(
            MetricsFault.BAD_RESPONSE, f"not a Prometheus vector answer: {exc}"
        ) from None


class HttpPrometheusClient:
    """Instant queries over HTTP (``POST /api/v1/query``, form-encoded: long queries fit).

    The one place that knows httpx's exceptions: each becomes a :class:`PrometheusQueryError`
    with its :class:`MetricsFault`. No retries — the next tick is the retry. ``transport`` lets
    tests put a fake at the transport seam.
    """

    def __init__(
        self,
        url: str,
        timeout_s: float = 5.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            timeout=timeout_s, headers=dict(headers or {}), transport=transport
        )

    def query(self, expr: str, at: float) -> list[Sample]:
        try:
            resp = self._http.post(
                f"{self.url}/api/v1/query", data={"query": expr, "time": f"{at:.3f}"}
            )
        except CALL_ERRORS as exc:
            reason, message = call_fault(exc)
            raise PrometheusQueryError(MetricsFault(reason), message) from None
        bad = status_fault(resp)
        if bad is not None:
            raise PrometheusQueryError(MetricsFault(bad[0]), bad[1])
        return parse_vector(resp.content)

    def close(self) -> None:
        self._http.close()


# ------------------------------------------------------------------------------ the queries


class Query(StrEnum):
    """The queries of one tick, by what they read."""

    REQUEST_RATE = "request_rate"
    PROMPT_TOKENS_RATE = "prompt_tokens_rate"
    GENERATION_TOKENS_RATE = "generation_tokens_rate"
    MEAN_INPUT_TOKENS = "mean_input_tokens"
    MEAN_OUTPUT_TOKENS = "mean_output_tokens"
    PREFIX_HIT_RATIO = "prefix_hit_ratio"
    GAUGES = "gauges"
    """Tagged: ``running``, ``waiting``, ``kv_usage``, ``newest_sample_s``."""
    TTFT_BUCKETS = "ttft_buckets"
    ITL_BUCKETS = "itl_buckets"
    TPOT_BUCKETS = "tpot_buckets"
    GATEWAY_OFFERED = "gateway_offered"
    """Tagged: ``scheduled``, ``rejected`` (increases), ``queued_before`` (queue at the start)."""
    GATEWAY_QUEUE = "gateway_queue"
    """Tagged: ``queued`` (now), ``newest_sample_s``."""


QUERIES_PER_TICK: Final = len(Query)
"""12, whatever the number of pods, pools and policies (0 when there is no policy)."""


def tagged(expr: str, quantity: str) -> str:
    """``expr`` with the label ``quantity="<quantity>"`` added to every series.

    ``label_replace(v, "quantity", "running", "", "")``: the empty regex matches the (absent)
    source label, so every series gets the tag; ``a or b`` of tagged vectors keeps both, since
    their label sets differ in the tag.
    """
    return f'label_replace({expr}, "{QUANTITY_LABEL}", "{quantity}", "", "")'


@dataclass(frozen=True, slots=True)
class PoolLabels:
    """Which Prometheus labels carry a series' namespace, pool (scale target name) and model."""

    namespace: str = "namespace"
    pool: str = "pool"
    model: str = "model_name"

    def __post_init__(self) -> None:
        names = (self.namespace, self.pool, self.model, QUANTITY_LABEL, "le")
        for name in names[:3]:
            check_label_name(name)
        if len(set(names)) != len(names):
            raise ValueError(
                f"labels must be distinct from each other and from quantity/le: {names}"
            )


@dataclass(frozen=True, slots=True)
class PrometheusSourceConfig:
    """How the source reads Prometheus. Every duration is in seconds."""

    window_s: float = 60.0
    """The window of rates, means and quantiles (the in-memory source's ``window_s``)."""
    stale_after_s: float = 60.0
    """A pool (or a model's gateway) whose newest sample is older than this is stale. Four
    missed 15 s scrapes; also bounds how old a gauge sample may be to count."""
    quantile: float = 0.9
    """The latency quantile of the window (the SLO's p90)."""
    labels: PoolLabels = field(default_factory=PoolLabels)
    pods: Selector = field(default_factory=Selector)
    """Extra matchers on every vLLM series (e.g. ``Selector({"job": "vllm"})``)."""
    gateway: Selector = field(default_factory=Selector)
    """Extra matchers on every gateway (EPP) series."""

    def __post_init__(self) -> None:
        format_duration(self.window_s)
        format_duration(self.stale_after_s)
        if not 0.0 < self.quantile < 1.0:
            raise ValueError(f"quantile must lie in (0, 1), got {self.quantile}")


@dataclass(frozen=True, slots=True)
class SourceQueries:
    """The PromQL text of every :class:`Query` (pure; ``docs/controller.md`` quotes it).

    With the defaults, the request rate is::

        sum by (namespace, pool) (rate(vllm:request_success_total{pool!=""}[60s]))
    """

    config: PrometheusSourceConfig

    def _pod(self, metric: str) -> str:
        return metric + self.config.pods.render(f'{self.config.labels.pool}!=""')

    def _gw(self, metric: str) -> str:
        return metric + self.config.gateway.render()

    @property
    def _by(self) -> str:
        return f"{self.config.labels.namespace}, {self.config.labels.pool}"

    @property
    def _by_model(self) -> str:
        return f"{self.config.labels.namespace}, {self.config.labels.model}"

    def _w(self) -> str:
        return format_duration(self.config.window_s)

    def _rate(self, metric: str) -> str:
        return f"sum by ({self._by}) (rate({self._pod(metric)}[{self._w()}]))"

    def _ratio(self, numerator: str, denominator: str) -> str:
        return f"{self._rate(numerator)} / {self._rate(denominator)}"

    def _buckets(self, *histograms: str) -> str:
        inner = " or ".join(f"rate({self._pod(h + '_bucket')}[{self._w()}])" for h in histograms)
        return f"sum by ({self._by}, le) ({inner})"

    def _gauge(self, how: str, metric: str) -> str:
        fresh = format_duration(self.config.stale_after_s)
        return f"{how} by ({self._by}) (last_over_time({self._pod(metric)}[{fresh}]))"

    def _queue(self, offset: str = "") -> str:
        return " or ".join(self._gw(n) + offset for n in QUEUE_NAMES)

    def text(self, query: Query) -> str:
        """The PromQL of ``query``."""
        w = self._w()
        gw_requests = self._gw("inference_objective_request_total")
        gw_errors = self._gw("inference_objective_request_error_total")
        # timestamp() reads sample times only of a plain selector (of anything else it returns
        # the evaluation time), so each series gets its own
        newest_gateway_sample = " or ".join(
            f"timestamp({s})" for s in (gw_requests, gw_errors, *map(self._gw, QUEUE_NAMES))
        )
        texts = {
            Query.REQUEST_RATE: lambda: self._rate("vllm:request_success_total"),
            Query.PROMPT_TOKENS_RATE: lambda: self._rate("vllm:prompt_tokens_total"),
            Query.GENERATION_TOKENS_RATE: lambda: self._rate("vllm:generation_tokens_total"),
            Query.MEAN_INPUT_TOKENS: lambda: self._ratio(
                "vllm:request_prompt_tokens_sum", "vllm:request_prompt_tokens_count"
            ),
            Query.MEAN_OUTPUT_TOKENS: lambda: self._ratio(
                "vllm:request_generation_tokens_sum", "vllm:request_generation_tokens_count"
            ),
            Query.PREFIX_HIT_RATIO: lambda: self._ratio(
                "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"
            ),
            Query.GAUGES: lambda: " or ".join(
                (
                    tagged(self._gauge("sum", "vllm:num_requests_running"), "running"),
                    tagged(self._gauge("sum", "vllm:num_requests_waiting"), "waiting"),
                    tagged(self._gauge("avg", "vllm:kv_cache_usage_perc"), "kv_usage"),
                    tagged(
                        f"max by ({self._by}) "
                        f"(timestamp({self._pod('vllm:num_requests_running')}))",
                        "newest_sample_s",
                    ),
                )
            ),
            Query.TTFT_BUCKETS: lambda: self._buckets("vllm:time_to_first_token_seconds"),
            # per pod, the ≥ 0.11 name if the pod exports it, else the ≤ 0.10 one
            Query.ITL_BUCKETS: lambda: self._buckets(ITL_NAME, LEGACY_ITL_NAME),
            Query.TPOT_BUCKETS: lambda: self._buckets("vllm:request_time_per_output_token_seconds"),
            Query.GATEWAY_OFFERED: lambda: " or ".join(
                (
                    tagged(
                        f"sum by ({self._by_model}) (increase({gw_requests}[{w}]))", "scheduled"
                    ),
                    tagged(f"sum by ({self._by_model}) (increase({gw_errors}[{w}]))", "rejected"),
                    tagged(
                        f"sum by ({self._by_model}) ({self._queue(f' offset {w}')})",
                        "queued_before",
                    ),
                )
            ),
            Query.GATEWAY_QUEUE: lambda: " or ".join(
                (
                    tagged(f"sum by ({self._by_model}) ({self._queue()})", "queued"),
                    tagged(
                        f"max by ({self._by_model}) ({newest_gateway_sample})",
                        "newest_sample_s",
                    ),
                )
            ),
        }
        return texts[query]()

    def all(self) -> dict[Query, str]:
        """Every query of a tick, in :class:`Query` order."""
        return {q: self.text(q) for q in Query}


# ------------------------------------------------------------------------------ histograms

Buckets = list[tuple[float, float]]
"""Cumulative per-bucket rates ``(le, rate)`` sorted by ``le``, ``+Inf`` last."""


def bucket_quantile(q: float, buckets: Buckets) -> float:
    """The ``q``-quantile of cumulative buckets as ``histogram_quantile`` computes it.

    A port of Prometheus's ``bucketQuantile``: counts are made monotonic, the rank ``q · total``
    is found in the first bucket whose cumulative count reaches it, and the value interpolated
    linearly inside that bucket (the first bucket starts at 0); a rank in the ``+Inf`` bucket
    answers the largest finite bound; no observations (or no ``+Inf`` bucket) → NaN.

    Example: ``le=0.1: 5, le=0.25: 9, le=+Inf: 10`` (per second), q = 0.9 → rank 9 lies in
    (0.1, 0.25] holding 4 of it, 4 past its start → 0.1 + 0.15 · 4/4 = 0.25; q = 0.7 → rank 7 →
    0.1 + 0.15 · 2/4 = 0.175.
    """
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return math.nan
    bounds = [b for b, _ in buckets]
    counts: list[float] = []
    for _, c in buckets:  # ensureMonotonic
        counts.append(max(c, counts[-1]) if counts else c)
    total = counts[-1]
    if total == 0 or math.isnan(total):
        return math.nan
    rank = q * total
    b = bisect_left(counts, rank, hi=len(counts) - 1)
    if b == len(counts) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, end, count = 0.0, bounds[b], counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    if count == 0:
        return math.nan
    return start + (end - start) * (rank / count)


# ------------------------------------------------------------------------------ the source

Key = tuple[str, str]
"""(namespace, pool) of a vLLM series, or (namespace, model) of a gateway series."""


@dataclass(frozen=True, slots=True)
class _Answers:
    """One tick's answers, by key; ``pools`` holds every (namespace, pool) a vLLM answer
    mentions."""

    single: Mapping[Query, Mapping[Key, float]]
    tags: Mapping[Query, Mapping[str, Mapping[Key, float]]]
    buckets: Mapping[Query, Mapping[Key, Buckets]]
    pools: frozenset[Key]


_TAGGED: Final = (Query.GAUGES, Query.GATEWAY_OFFERED, Query.GATEWAY_QUEUE)
_BUCKETS: Final = (Query.TTFT_BUCKETS, Query.ITL_BUCKETS, Query.TPOT_BUCKETS)
_GATEWAY: Final = (Query.GATEWAY_OFFERED, Query.GATEWAY_QUEUE)


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


class PrometheusMetricsSource:
    """:class:`~autoscaler.k8s.sources.PolicyMetricsSource` over Prometheus (see the module doc).

    ``faults`` counts every :class:`MetricsFault` since start (a failed tick once, a lost window
    or demand once per pool or model and tick); ``queries`` counts the queries sent.
    """

    def __init__(
        self,
        client: InstantQueryClient,
        config: PrometheusSourceConfig | None = None,
        on_fault: Callable[[MetricsFault], None] | None = None,
    ) -> None:
        self.client = client
        self.config = config or PrometheusSourceConfig()
        self.queries_text = SourceQueries(self.config).all()
        self.on_fault = on_fault
        self.faults: Counter[MetricsFault] = Counter()
        self.queries = 0
        self.last_faults: dict[str, MetricsFault] = {}  # what lacks data after the last tick
        self.log = get_logger("sloscaler.metrics")

    def _fault(self, reason: MetricsFault, what: str) -> None:
        self.faults[reason] += 1
        self.last_faults[what] = reason
        if self.on_fault is not None:
            self.on_fault(reason)

    def observe(
        self, policies: Sequence[PolicyRef], now: float
    ) -> Mapping[tuple[str, str], PolicyObservation]:
        """Windows and demand as of ``now`` for every policy; ``{}`` when a query failed."""
        self.last_faults = {}
        if not policies:
            return {}
        try:
            answers = self._ask(now)
        except PrometheusQueryError as e:
            self._fault(e.reason, "tick")
            self.log.warning("metrics_query_failed", reason=e.reason.value, error=str(e))
            return {}
        out: dict[tuple[str, str], PolicyObservation] = {}
        for p in policies:
            loads: dict[str, LoadWindow | None] = {}
            for ref in p.pools:
                key = (ref.namespace, ref.target_name)
                window = self._window(answers, key, ref.replicas, p, now)
                if isinstance(window, MetricsFault):
                    self._fault(window, f"pool {ref.namespace}/{ref.policy}/{ref.pool}")
                    loads[ref.pool] = None
                else:
                    loads[ref.pool] = window
            demand = self._demand(answers, (p.namespace, p.model), now)
            if isinstance(demand, MetricsFault):
                self._fault(demand, f"demand {p.namespace}/{p.name}")
                demand = Demand(None, 0)
            out[p.key] = PolicyObservation(loads, demand)
        if self.last_faults:
            self.log.info(
                "metrics_missing", **{k: v.value for k, v in sorted(self.last_faults.items())}
            )
        return out

    # --- asking --------------------------------------------------------------------------------

    def _ask(self, now: float) -> _Answers:
        single: dict[Query, dict[Key, float]] = {}
        tags: dict[Query, dict[str, dict[Key, float]]] = {}
        buckets: dict[Query, dict[Key, Buckets]] = {}
        labels = self.config.labels
        for q, text in self.queries_text.items():
            self.queries += 1
            answer = self.client.query(text, now)
            model_keyed = q in _GATEWAY
            second = labels.model if model_keyed else labels.pool
            if q in _BUCKETS:
                buckets[q] = _bucket_series(answer, labels.namespace, second, text)
            elif q in _TAGGED:
                tags[q] = _tagged_series(answer, labels.namespace, second, text)
            else:
                single[q] = _single_series(answer, labels.namespace, second, text)
        pools = {key for by_key in single.values() for key in by_key}
        pools.update(key for by_key in tags.get(Query.GAUGES, {}).values() for key in by_key)
        pools.update(key for q in _BUCKETS for key in buckets.get(q, {}))
        return _Answers(single, tags, buckets, frozenset(pools))

    # --- assembling ----------------------------------------------------------------------------

    def _window(
        self, a: _Answers, key: Key, replicas: int | None, policy: PolicyRef, now: float
    ) -> LoadWindow | MetricsFault:
        """The pool's window, or why it has none — checks in order: absent, stale, a required
        quantity missing, a required quantity not a number."""
        w = self.config.window_s
        gauges = a.tags.get(Query.GAUGES, {})
        if key not in a.pools:
            return _empty_window(w) if replicas == 0 else MetricsFault.ABSENT
        newest = gauges.get("newest_sample_s", {}).get(key)
        if newest is None:
            return MetricsFault.ABSENT
        if not math.isfinite(newest):
            return MetricsFault.NOT_A_NUMBER
        if now - newest > self.config.stale_after_s:
            return _empty_window(w) if replicas == 0 else MetricsFault.STALE
        required = (
            a.single.get(Query.REQUEST_RATE, {}).get(key),
            a.single.get(Query.PROMPT_TOKENS_RATE, {}).get(key),
            a.single.get(Query.GENERATION_TOKENS_RATE, {}).get(key),
            gauges.get("running", {}).get(key),
            gauges.get("waiting", {}).get(key),
            gauges.get("kv_usage", {}).get(key),
        )
        if any(v is None for v in required):
            return MetricsFault.ABSENT
        values = [float(v) for v in required if v is not None]
        if not all(math.isfinite(v) for v in values):
            return MetricsFault.NOT_A_NUMBER
        request_rps, prompt_rps, generation_rps, running, waiting, kv = values
        ttft = a.buckets.get(Query.TTFT_BUCKETS, {}).get(key)
        itl = a.buckets.get(Query.ITL_BUCKETS, {}).get(key)
        tpot = a.buckets.get(Query.TPOT_BUCKETS, {}).get(key)
        q = self.config.quantile

        def misses(buckets: Buckets | None, objective: float | None) -> float | None:
            if buckets is None or objective is None:
                return None
            return _finite(rate_above(objective, buckets) * w)

        return LoadWindow(
            window_s=w,
            request_rps=request_rps,
            prompt_tokens_rps=prompt_rps,
            generation_tokens_rps=generation_rps,
            mean_input_tokens=_finite(a.single.get(Query.MEAN_INPUT_TOKENS, {}).get(key)),
            mean_output_tokens=_finite(a.single.get(Query.MEAN_OUTPUT_TOKENS, {}).get(key)),
            prefix_hit_ratio=_finite(a.single.get(Query.PREFIX_HIT_RATIO, {}).get(key)),
            kv_usage=kv,
            running=running,
            waiting=waiting,
            ttft_p90_s=_finite(bucket_quantile(q, ttft)) if ttft else None,
            itl_p90_s=_finite(bucket_quantile(q, itl)) if itl else None,
            finished=round(request_rps * w),
            ttft_misses=misses(ttft, policy.ttft_objective_s),
            tpot_misses=misses(tpot, policy.tpot_objective_s),
        )

    def _demand(self, a: _Answers, key: Key, now: float) -> Demand | MetricsFault:
        """Offered demand over the window (see the module doc), or why there is none."""
        offered = a.tags.get(Query.GATEWAY_OFFERED, {})
        queue = a.tags.get(Query.GATEWAY_QUEUE, {})
        parts = {
            name: by_key[key]
            for tagged_answer in (offered, queue)
            for name, by_key in tagged_answer.items()
            if key in by_key
        }
        if not parts:
            return MetricsFault.ABSENT
        newest = parts.get("newest_sample_s")
        if newest is None:
            return MetricsFault.ABSENT
        if not all(math.isfinite(v) for v in parts.values()):
            return MetricsFault.NOT_A_NUMBER
        if now - newest > self.config.stale_after_s:
            return MetricsFault.STALE
        # the EPP exports a counter from its first event on: an absent one has counted nothing
        queued = parts.get("queued", 0.0)
        total = (
            parts.get("scheduled", 0.0)
            + parts.get("rejected", 0.0)
            + queued
            - parts.get("queued_before", 0.0)
        )
        return Demand(max(0.0, total) / self.config.window_s, round(queued))


def _empty_window(window_s: float) -> LoadWindow:
    """A pool at zero replicas: nothing served, nothing running (the in-memory source's window
    of a pool without pods)."""
    return LoadWindow(
        window_s=window_s,
        request_rps=0.0,
        prompt_tokens_rps=0.0,
        generation_tokens_rps=0.0,
        mean_input_tokens=None,
        mean_output_tokens=None,
        prefix_hit_ratio=None,
        kv_usage=0.0,
        running=0.0,
        waiting=0.0,
        ttft_p90_s=None,
        itl_p90_s=None,
        finished=0,
    )


def _key(labels: Mapping[str, str], first: str, second: str) -> Key | None:
    a, b = labels.get(first), labels.get(second)
    return (a, b) if a and b else None


def _bad(text: str, why: str) -> PrometheusQueryError:
    return PrometheusQueryError(MetricsFault.BAD_RESPONSE, f"{why} in the answer to {text}")


def _single_series(answer: list[Sample], first: str, second: str, text: str) -> dict[Key, float]:
    out: dict[Key, float] = {}
    for s in answer:
        key = _key(s.labels, first, second)
        if key is None:
            continue  # a series without the join labels belongs to no pool
        if key in out:
            raise _bad(text, f"two series for {key}")
        out[key] = s.value
    return out


def _tagged_series(
    answer: list[Sample], first: str, second: str, text: str
) -> dict[str, dict[Key, float]]:
    out: dict[str, dict[Key, float]] = {}
    for s in answer:
        key = _key(s.labels, first, second)
        tag = s.labels.get(QUANTITY_LABEL)
        if key is None or tag is None:
            continue
        by_key = out.setdefault(tag, {})
        if key in by_key:
            raise _bad(text, f"two {tag} series for {key}")
        by_key[key] = s.value
    return out


def _bucket_series(answer: list[Sample], first: str, second: str, text: str) -> dict[Key, Buckets]:
    out: dict[Key, Buckets] = {}
    for s in answer:
        key = _key(s.labels, first, second)
        le = s.labels.get("le")
        if key is None or le is None:
            continue
        try:
            bound = float(le)
        except ValueError:
            raise _bad(text, f"le={le!r}") from None
        out.setdefault(key, []).append((bound, s.value))
    for key, buckets in out.items():
        buckets.sort()
        if any(a == b for (a, _), (b, _) in pairwise(buckets)):
            raise _bad(text, f"a repeated bucket for {key}")
    return out


__all__ = [
    "QUERIES_PER_TICK",
    "TICK_FAULTS",
    "HttpPrometheusClient",
    "InstantQueryClient",
    "MetricsFault",
    "PoolLabels",
    "PrometheusMetricsSource",
    "PrometheusQueryError",
    "PrometheusSourceConfig",
    "Query",
    "Sample",
    "SourceQueries",
    "bucket_quantile",
    "parse_vector",
    "rate_above",
    "tagged",
]
