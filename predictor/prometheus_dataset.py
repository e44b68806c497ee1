"""Window samples for capacity models, read from vLLM's metrics in Prometheus.

Why this module exists: capacity planning needs how a pod's p90 TTFT and ITL respond to its load,
and in a cluster that history lives in Prometheus, not in request logs. This module turns it into
rows — one per (pod, window end) — with the load a pod carried over the window as features and
the latency quantiles it delivered as targets. It is the predictor's only network client, and it
keeps three promises:

* **Batched.** One range query per metric for all selected pods (:mod:`predictor.prometheus_queries`
  holds the text), so the number of queries does not grow with the fleet; a range longer than
  ``max_points_per_query`` steps is cut into consecutive chunks, one query per metric each.
* **No data is never zero.** A row whose series is absent, stale or not a number is dropped, and
  the drop is counted by :class:`DropReason` (and by field), so a missing histogram reads as "no
  data", never as a 0 ms latency. Example: 3 pods × 40 window ends = 120 candidate rows; one pod
  stopped reporting for the last 10 and another served nothing in 5 → ``len(dataset) == 105``,
  ``drops == {Stale: 10, NoTraffic: 5}``.
* **Errors translated at the boundary.** Whatever the HTTP client raises becomes a
  :class:`TemporaryPrometheusError` (unreachable, timeout, 5xx, 429: keep the last model, try
  later) or a :class:`PermanentPrometheusError` (a rejected query, 4xx, an answer that is not
  Prometheus's JSON: retrying will not help).

vLLM ≥ 0.11 exports inter-token latency as ``vllm:inter_token_latency_seconds``, older releases as
``vllm:time_per_output_token_seconds``; one detection query finds which names the selected pods
export, and the ITL query reads each pod under the name it has.

Pure parts (:func:`assemble_rows`) take query answers as data, so tests feed them without a
server; :class:`PrometheusWindowSource` sends the queries through anything with
``prometheus_api_client.PrometheusConnect``'s ``custom_query_range``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from predictor.features import FloatArray
from predictor.prometheus_queries import (
    ITL_NAMES,
    WINDOW_FEATURES,
    AuxiliarySeries,
    RowLabels,
    Selector,
    WindowField,
    WindowQueries,
    format_duration,
)

#: Prometheus refuses range queries of more than 11,000 points per series; stay below it.
MAX_POINTS_PER_QUERY: Final = 10_000

DEFAULT_ROLE: Final = "aggregated"


class DropReason(StrEnum):
    """Why a candidate (pod, window end) row was left out. Append-only: values are labels."""

    UNLABELLED = "Unlabelled"
    """The pod's series carry no accelerator label and no default accelerator is configured."""
    STALE = "Stale"
    """The pod's newest gauge sample is older than ``stale_after_s`` at the window end."""
    MISSING = "Missing"
    """A feature or target series is absent for the pod at the window end."""
    NO_TRAFFIC = "NoTraffic"
    """No request finished on the pod in the window: its latency quantiles are undefined."""
    NOT_A_NUMBER = "NaN"
    """A value is NaN or infinite (e.g. a quantile over empty buckets, a NaN gauge)."""


class PrometheusError(Exception):
    """A query could not be answered; ``retryable`` says whether trying again may help."""

    retryable: bool = False

    def __init__(self, message: str, *, query: str | None = None) -> None:
        super().__init__(message)
        self.query = query


class TemporaryPrometheusError(PrometheusError):
    """Unreachable, timed out, overloaded (5xx, 429): keep the last good model and retry later."""

    retryable = True


class PermanentPrometheusError(PrometheusError):
    """The query or the configuration is wrong (4xx, malformed answer): retrying will not help."""

    retryable = False


class RangeQueryClient(Protocol):
    """What the dataset needs of ``prometheus_api_client.PrometheusConnect``."""

    def custom_query_range(
        self,
        query: str,
        start_time: datetime,
        end_time: datetime,
        step: str,
        params: dict[str, Any] | None = None,
    ) -> Any: ...


_STATUS = re.compile(r"HTTP Status Code (\d{3})")
_PERMANENT_REQUEST_ERRORS: Final = frozenset(
    {"InvalidURL", "MissingSchema", "InvalidSchema", "InvalidHeader", "URLRequired"}
)


def translate_error(exc: BaseException, query: str) -> PrometheusError:
    """The package's error for whatever the HTTP client raised (the one place that knows).

    ``requests`` timeouts, connection failures and exhausted retries are temporary; the client's
    ``PrometheusApiClientException`` carries the status in its message — 429 and 5xx are
    temporary, other codes (400 bad query, 401/403, 404, 422 too many samples) permanent; an
    answer that is not JSON of the expected shape is permanent.
    """
    kinds = {c.__name__ for c in type(exc).__mro__}
    short = f"{type(exc).__name__}: {exc}"
    if kinds & _PERMANENT_REQUEST_ERRORS:
        return PermanentPrometheusError(f"bad Prometheus address ({short})", query=query)
    if "Timeout" in kinds:
        return TemporaryPrometheusError(f"Prometheus timed out ({short})", query=query)
    if "RetryError" in kinds:
        return TemporaryPrometheusError(f"Prometheus kept failing ({short})", query=query)
    if "ConnectionError" in kinds:
        return TemporaryPrometheusError(f"Prometheus is unreachable ({short})", query=query)
    if "PrometheusApiClientException" in kinds:
        match = _STATUS.search(str(exc))
        code = int(match.group(1)) if match else 0
        if code == 429 or code >= 500:
            return TemporaryPrometheusError(f"Prometheus answered HTTP {code}", query=query)
        return PermanentPrometheusError(
            f"Prometheus rejected the query (HTTP {code or '?'}): {exc}", query=query
        )
    if "RequestException" in kinds:
        return TemporaryPrometheusError(f"request to Prometheus failed ({short})", query=query)
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        return PermanentPrometheusError(f"malformed answer from Prometheus ({short})", query=query)
    return PermanentPrometheusError(f"unexpected error querying Prometheus ({short})", query=query)


# ---------------------------------------------------------------------- answers → rows

RowKey = tuple[str, str, str]
"""(pod, accelerator label value or '', role label value or '')."""

SeriesByKey = dict[RowKey, dict[int, float]]
"""One answer: per row key, value by window end in milliseconds."""


def parse_matrix(result: Any, labels: RowLabels, query: str) -> SeriesByKey:
    """A range query's ``result`` list as values per row key and timestamp (ms).

    Values are parsed as Prometheus writes them (``"NaN"``, ``"+Inf"`` included); two series
    with the same row key (which ``by (…)`` rules out) would be a malformed answer.
    """
    out: SeriesByKey = {}
    try:
        for series in result:
            metric = series["metric"]
            key = (
                str(metric.get(labels.pod, "")),
                str(metric.get(labels.accelerator, "")) if labels.accelerator else "",
                str(metric.get(labels.role, "")) if labels.role else "",
            )
            if key in out:
                raise ValueError(f"two series for {key}")
            out[key] = {round(float(t) * 1000): float(v) for t, v in series["values"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise translate_error(exc, query) from exc
    return out


@dataclass(frozen=True)
class WindowDataset:
    """Rows of (pod, window end): load features, latency quantile targets, and what was dropped.

    ``features`` maps every :data:`~predictor.prometheus_queries.WINDOW_FEATURES` name to a
    float array (request and token rates per second, mean tokens, KV fraction 0–1, running and
    waiting counts averaged over the window, prefix-cache hit ratio 0–1); ``ttft_s``/``itl_s``
    are the ``quantile`` of TTFT and inter-token latency over the window, in seconds.
    """

    pod: tuple[str, ...]
    accelerator: tuple[str, ...]
    role: tuple[str, ...]
    window_end_s: FloatArray
    features: Mapping[str, FloatArray]
    ttft_s: FloatArray
    itl_s: FloatArray
    window_s: float
    quantile: float = 0.9
    drops: Mapping[DropReason, int] = field(default_factory=dict)
    drops_by_field: Mapping[tuple[DropReason, str], int] = field(default_factory=dict)
    itl_metrics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.pod)
        arrays = [self.window_end_s, self.ttft_s, self.itl_s, *self.features.values()]
        if len(self.accelerator) != n or len(self.role) != n or any(len(a) != n for a in arrays):
            raise ValueError("every column of a window dataset needs one entry per row")
        missing = [f.value for f in WINDOW_FEATURES if f.value not in self.features]
        if missing:
            raise ValueError(f"window dataset lacks features {missing}")

    def __len__(self) -> int:
        return len(self.pod)

    @property
    def candidates(self) -> int:
        """Rows kept plus rows dropped."""
        return len(self) + sum(self.drops.values())

    def feature(self, name: WindowField | str) -> FloatArray:
        return self.features[str(name)]

    def target(self, name: WindowField) -> FloatArray:
        """``ttft_s`` or ``itl_s`` by field."""
        if name is WindowField.TTFT_S:
            return self.ttft_s
        if name is WindowField.ITL_S:
            return self.itl_s
        raise KeyError(f"{name} is not a target")

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> WindowDataset:
        """The selected rows (drop counts stay those of the whole read)."""
        idx = np.flatnonzero(index) if index.dtype == np.bool_ else index
        pick = idx.tolist()
        return WindowDataset(
            pod=tuple(self.pod[i] for i in pick),
            accelerator=tuple(self.accelerator[i] for i in pick),
            role=tuple(self.role[i] for i in pick),
            window_end_s=self.window_end_s[idx],
            features={k: v[idx] for k, v in self.features.items()},
            ttft_s=self.ttft_s[idx],
            itl_s=self.itl_s[idx],
            window_s=self.window_s,
            quantile=self.quantile,
            drops=self.drops,
            drops_by_field=self.drops_by_field,
            itl_metrics=self.itl_metrics,
        )

    def segments(self) -> dict[tuple[str, str], npt.NDArray[np.intp]]:
        """Row indices per (accelerator, role)."""
        out: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(zip(self.accelerator, self.role, strict=True)):
            out.setdefault(key, []).append(i)
        return {k: np.asarray(v, dtype=np.intp) for k, v in sorted(out.items())}

    @classmethod
    def concat(cls, parts: Sequence[WindowDataset]) -> WindowDataset:
        """Rows of several reads in order; drop counts add up."""
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        if any(p.window_s != first.window_s or p.quantile != first.quantile for p in parts):
            raise ValueError("cannot mix windows or quantiles")
        drops: Counter[DropReason] = Counter()
        by_field: Counter[tuple[DropReason, str]] = Counter()
        for p in parts:
            drops.update(p.drops)
            by_field.update(p.drops_by_field)
        return cls(
            pod=tuple(x for p in parts for x in p.pod),
            accelerator=tuple(x for p in parts for x in p.accelerator),
            role=tuple(x for p in parts for x in p.role),
            window_end_s=np.concatenate([p.window_end_s for p in parts]),
            features={
                f.value: np.concatenate([p.features[f.value] for p in parts])
                for f in WINDOW_FEATURES
            },
            ttft_s=np.concatenate([p.ttft_s for p in parts]),
            itl_s=np.concatenate([p.itl_s for p in parts]),
            window_s=first.window_s,
            quantile=first.quantile,
            drops=dict(drops),
            drops_by_field=dict(by_field),
            itl_metrics=tuple(dict.fromkeys(n for p in parts for n in p.itl_metrics)),
        )

    def to_frame(self) -> Any:
        """The rows as a pandas DataFrame (one column per feature and target)."""
        import pandas as pd

        data: dict[str, Any] = {
            "pod": list(self.pod),
            "accelerator": list(self.accelerator),
            "role": list(self.role),
            "window_end_s": self.window_end_s,
        }
        data.update({k: self.features[k] for k in (f.value for f in WINDOW_FEATURES)})
        data[WindowField.TTFT_S.value] = self.ttft_s
        data[WindowField.ITL_S.value] = self.itl_s
        return pd.DataFrame(data)


@dataclass(frozen=True, slots=True)
class AssemblyRules:
    """How answers become rows: defaults for absent labels and the staleness limit."""

    window_s: float
    quantile: float = 0.9
    stale_after_s: float = 30.0
    default_accelerator: str | None = None
    default_role: str = DEFAULT_ROLE


_ROW_FIELDS: Final[tuple[str, ...]] = (
    *(f.value for f in WINDOW_FEATURES if f is not WindowField.PREFIX_CACHE_HIT_RATIO),
    AuxiliarySeries.PREFIX_HITS_RATE.value,
    AuxiliarySeries.PREFIX_QUERIES_RATE.value,
    WindowField.TTFT_S.value,
    WindowField.ITL_S.value,
)


def assemble_rows(
    answers: Mapping[str, SeriesByKey],
    rules: AssemblyRules,
    itl_metrics: tuple[str, ...] = ITL_NAMES,
) -> WindowDataset:
    """Join per-metric answers into rows, dropping (and counting) every incomplete one.

    The candidates are every (row key, timestamp) present in any answer. Each candidate is
    checked in order — labels, staleness, presence of every field, traffic, finiteness — and the
    first failing check is its one :class:`DropReason`; ``drops_by_field`` also counts, for
    ``Missing`` and ``NaN``, every field that failed. The prefix hit ratio is hits over lookups;
    a pod that looked nothing up (prefix caching off) has a ratio of 0, not NaN.
    """
    candidates: set[tuple[RowKey, int]] = set()
    for series in answers.values():
        for key, by_time in series.items():
            candidates.update((key, t) for t in by_time)
    empty: dict[int, float] = {}
    drops: Counter[DropReason] = Counter()
    by_field: Counter[tuple[DropReason, str]] = Counter()
    kept: list[tuple[RowKey, int, dict[str, float], str, str]] = []
    last_sample = answers.get(AuxiliarySeries.LAST_SAMPLE_S.value, {})
    for key, t_ms in sorted(candidates, key=lambda c: (c[1], c[0])):
        _, acc_label, role_label = key
        accelerator = acc_label or rules.default_accelerator
        if not accelerator:
            drops[DropReason.UNLABELLED] += 1
            continue
        last = last_sample.get(key, empty).get(t_ms)
        if last is not None and t_ms / 1000.0 - last > rules.stale_after_s:
            drops[DropReason.STALE] += 1
            continue
        values: dict[str, float] = {}
        absent = []
        for name in (*_ROW_FIELDS, AuxiliarySeries.LAST_SAMPLE_S.value):
            value = answers.get(name, {}).get(key, empty).get(t_ms)
            if value is None:
                absent.append(name)
            else:
                values[name] = value
        if absent:
            drops[DropReason.MISSING] += 1
            by_field.update((DropReason.MISSING, name) for name in absent)
            continue
        rate = values[WindowField.REQUEST_RATE.value]
        if rate == 0.0:
            drops[DropReason.NO_TRAFFIC] += 1
            continue
        hits = values.pop(AuxiliarySeries.PREFIX_HITS_RATE.value)
        lookups = values.pop(AuxiliarySeries.PREFIX_QUERIES_RATE.value)
        values.pop(AuxiliarySeries.LAST_SAMPLE_S.value)
        # nothing looked up: nothing hit (prefix caching off); hits without lookups is nonsense
        no_lookups = 0.0 if hits == 0.0 else math.nan
        values[WindowField.PREFIX_CACHE_HIT_RATIO.value] = hits / lookups if lookups else no_lookups
        bad = [name for name, v in values.items() if not math.isfinite(v)]
        if bad:
            drops[DropReason.NOT_A_NUMBER] += 1
            by_field.update((DropReason.NOT_A_NUMBER, name) for name in bad)
            continue
        kept.append((key, t_ms, values, accelerator, role_label or rules.default_role))
    n = len(kept)
    feature_arrays = {
        f.value: np.fromiter((row[2][f.value] for row in kept), dtype=np.float64, count=n)
        for f in WINDOW_FEATURES
    }
    return WindowDataset(
        pod=tuple(row[0][0] for row in kept),
        accelerator=tuple(row[3] for row in kept),
        role=tuple(row[4] for row in kept),
        window_end_s=np.fromiter((row[1] / 1000.0 for row in kept), dtype=np.float64, count=n),
        features=feature_arrays,
        ttft_s=np.fromiter(
            (row[2][WindowField.TTFT_S.value] for row in kept), dtype=np.float64, count=n
        ),
        itl_s=np.fromiter(
            (row[2][WindowField.ITL_S.value] for row in kept), dtype=np.float64, count=n
        ),
        window_s=rules.window_s,
        quantile=rules.quantile,
        drops=dict(drops),
        drops_by_field=dict(by_field),
        itl_metrics=itl_metrics,
    )


# ---------------------------------------------------------------------- the source


@dataclass(frozen=True, slots=True)
class WindowDatasetConfig:
    """What to read and how (times in seconds).

    ``window_s`` is the PromQL range of every rate and quantile (60 s: four 15 s scrapes);
    ``step_s`` the spacing of window ends (equal to ``window_s`` gives disjoint windows; smaller
    values overlap them); ``stale_after_s`` the age of a pod's newest gauge sample beyond which its
    row is dropped as stale (two 15 s scrapes); ``quantile`` the latency quantile of the targets.
    """

    selector: Selector = field(default_factory=Selector)
    labels: RowLabels = field(default_factory=RowLabels)
    window_s: float = 60.0
    step_s: float = 60.0
    quantile: float = 0.9
    stale_after_s: float = 30.0
    default_accelerator: str | None = None
    default_role: str = DEFAULT_ROLE
    max_points_per_query: int = MAX_POINTS_PER_QUERY

    def __post_init__(self) -> None:
        format_duration(self.window_s)
        format_duration(self.step_s)
        if self.stale_after_s <= 0:
            raise ValueError("stale_after_s must be > 0")
        if not 0 < self.max_points_per_query <= 11_000:
            raise ValueError("max_points_per_query must lie in 1..11000 (Prometheus's limit)")

    @property
    def queries(self) -> WindowQueries:
        return WindowQueries(self.selector, self.labels, self.window_s, self.quantile)

    @property
    def rules(self) -> AssemblyRules:
        return AssemblyRules(
            window_s=self.window_s,
            quantile=self.quantile,
            stale_after_s=self.stale_after_s,
            default_accelerator=self.default_accelerator,
            default_role=self.default_role,
        )


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


class PrometheusWindowSource:
    """Builds :class:`WindowDataset` s from a Prometheus server (see the module doc).

    ``client`` is a ``prometheus_api_client.PrometheusConnect`` (or anything with its
    ``custom_query_range``); :func:`connect` makes one with explicit timeouts and retries.
    """

    def __init__(self, client: RangeQueryClient, config: WindowDatasetConfig | None = None) -> None:
        self.client = client
        self.config = config or WindowDatasetConfig()
        self.queries_sent = 0

    def _range(self, query: str, start_s: float, end_s: float) -> Any:
        self.queries_sent += 1
        try:
            return self.client.custom_query_range(
                query, _utc(start_s), _utc(end_s), format_duration(self.config.step_s)
            )
        except Exception as exc:  # the one place client errors are translated
            raise translate_error(exc, query) from exc

    def detect_itl_metrics(self, start_s: float, end_s: float) -> tuple[str, ...]:
        """The ITL histogram names the selected pods export in ``[start_s, end_s]``, newest
        first (empty when neither exists)."""
        query = self.config.queries.itl_detection()
        result = self._range(query, start_s, end_s)
        try:
            seen = {str(s["metric"]["__name__"]).removesuffix("_count") for s in result}
        except (KeyError, TypeError) as exc:
            raise translate_error(exc, query) from exc
        return tuple(n for n in ITL_NAMES if n in seen)

    def chunks(self, start_s: float, end_s: float) -> list[tuple[float, float]]:
        """``[start_s, end_s]`` cut so that no query asks for more than the point limit."""
        if end_s < start_s:
            raise ValueError("end_s must not be before start_s")
        step = self.config.step_s
        span = step * (self.config.max_points_per_query - 1)
        out: list[tuple[float, float]] = []
        t = start_s
        while True:
            stop = min(t + span, end_s)
            out.append((t, stop))
            if stop >= end_s:
                return out
            t = stop + step

    def fetch(
        self, start_s: float, end_s: float, itl_metrics: tuple[str, ...] | None = None
    ) -> WindowDataset:
        """Rows for window ends ``start_s, start_s + step_s, …, ≤ end_s`` (epoch seconds)."""
        names = self.detect_itl_metrics(start_s, end_s) if itl_metrics is None else itl_metrics
        queries = self.config.queries.queries(names)
        labels = self.config.labels
        parts = []
        for lo, hi in self.chunks(start_s, end_s):
            answers = {
                name: parse_matrix(self._range(text, lo, hi), labels, text)
                for name, text in queries.items()
            }
            parts.append(assemble_rows(answers, self.config.rules, names))
        return WindowDataset.concat(parts)


def connect(
    url: str,
    *,
    timeout_s: float = 30.0,
    retries: int = 2,
    headers: Mapping[str, str] | None = None,
    disable_ssl: bool = False,
) -> RangeQueryClient:
    """A ``PrometheusConnect`` with a per-request timeout and a bounded retry budget.

    The client's default retries three times with exponential back-off on 5xx/429 and on
    connection errors; ``retries`` caps that (0 = fail fast, the caller retries on
    :class:`TemporaryPrometheusError`).
    """
    from prometheus_api_client import PrometheusConnect
    from urllib3.util.retry import Retry

    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "POST"}),
        raise_on_status=False,
    )
    client: RangeQueryClient = PrometheusConnect(
        url=url,
        headers=dict(headers) if headers else None,
        disable_ssl=disable_ssl,
        retry=retry,
        timeout=timeout_s,
    )
    return client


def rows_by_key(dataset: WindowDataset) -> dict[tuple[str, float], int]:
    """Row index by (pod, window end) — for comparing a dataset with another source."""
    return {
        (p, float(t)): i
        for i, (p, t) in enumerate(zip(dataset.pod, dataset.window_end_s, strict=True))
    }


__all__ = [
    "MAX_POINTS_PER_QUERY",
    "AssemblyRules",
    "DropReason",
    "PermanentPrometheusError",
    "PrometheusError",
    "PrometheusWindowSource",
    "RangeQueryClient",
    "TemporaryPrometheusError",
    "WindowDataset",
    "WindowDatasetConfig",
    "assemble_rows",
    "connect",
    "parse_matrix",
    "rows_by_key",
    "translate_error",
]
