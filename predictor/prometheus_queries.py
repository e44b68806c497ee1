"""The PromQL the window dataset is built from: one query per metric, all pods at once.

Why this module exists: the number of queries the predictor sends Prometheus must not grow with
the number of pods, and the queries must read vLLM's exact exposition names (both the current and
the pre-0.11 inter-token-latency histogram). Writing the query text in one place, apart from the
code that sends it and the code that turns answers into rows, keeps all three testable on their
own and lets ``docs/predictor.md`` quote the queries verbatim.

Every query aggregates ``by`` the row labels — the pod, and the labels that carry the accelerator
and the role — so one answer holds one series per pod. With a 60 s window, the selector
``{namespace="llm"}`` and the default labels, the request rate is::

    sum by (pod, accelerator, role) (rate(vllm:request_success_total{namespace="llm"}[60s]))

Ratios are taken of rates over the same window, so extrapolation cancels: the mean prompt length
is ``rate(vllm:request_prompt_tokens_sum[W]) / rate(vllm:request_prompt_tokens_count[W])`` — 600
requests totalling 612,000 prompt tokens in a window give 1,020 tokens, whatever the window length.
Gauges are averaged over the window (``avg_over_time``), so features describe the same interval as
the latency quantiles; the latest sample's timestamp (``timestamp()``) shows a pod that stopped
reporting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

ITL_NAME: Final = "vllm:inter_token_latency_seconds"
"""Per-step inter-token latency histogram in vLLM ≥ 0.11."""
LEGACY_ITL_NAME: Final = "vllm:time_per_output_token_seconds"
"""The same histogram's name in vLLM ≤ 0.10 (hidden in 0.11/0.12, removed in 0.13)."""
ITL_NAMES: Final[tuple[str, ...]] = (ITL_NAME, LEGACY_ITL_NAME)
"""In order of preference: a pod exporting both is read under the newer name."""

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class WindowField(StrEnum):
    """One quantity of a (pod, window) row; every value but the last two is a feature."""

    REQUEST_RATE = "request_rate"
    PROMPT_TOKENS_RATE = "prompt_tokens_rate"
    GENERATION_TOKENS_RATE = "generation_tokens_rate"
    MEAN_INPUT_TOKENS = "mean_input_tokens"
    MEAN_OUTPUT_TOKENS = "mean_output_tokens"
    KV_CACHE_USAGE = "kv_cache_usage"
    NUM_REQUESTS_RUNNING = "num_requests_running"
    NUM_REQUESTS_WAITING = "num_requests_waiting"
    PREFIX_CACHE_HIT_RATIO = "prefix_cache_hit_ratio"
    TTFT_S = "ttft_s"
    ITL_S = "itl_s"


#: The features of a window row, in model column order.
WINDOW_FEATURES: Final[tuple[WindowField, ...]] = tuple(WindowField)[:9]
#: The targets of a window row: the window's TTFT and ITL quantiles, in seconds.
WINDOW_TARGETS: Final[tuple[WindowField, ...]] = (WindowField.TTFT_S, WindowField.ITL_S)


class AuxiliarySeries(StrEnum):
    """Series fetched to compute or check a row, not stored in it."""

    PREFIX_HITS_RATE = "prefix_cache_hits_rate"
    PREFIX_QUERIES_RATE = "prefix_cache_queries_rate"
    LAST_SAMPLE_S = "last_sample_s"


def format_duration(seconds: float) -> str:
    """A PromQL duration: ``60.0 → '60s'``, ``1.5 → '1500ms'``."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be a positive number of seconds, got {seconds}")
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    millis = round(seconds * 1000)
    if millis < 1:
        raise ValueError(f"duration {seconds} s is below PromQL's 1 ms resolution")
    return f"{millis}ms"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def check_label_name(name: str) -> str:
    """``name`` if it is a valid Prometheus label name, else ``ValueError``."""
    if not _LABEL_NAME.match(name) or name.startswith("__"):
        raise ValueError(f"{name!r} is not a usable Prometheus label name")
    return name


@dataclass(frozen=True, slots=True)
class Selector:
    """Label matchers added to every series selector: equalities and regular expressions.

    ``Selector({"namespace": "llm"}, {"pool": "llama-.*"})`` renders as
    ``{namespace="llm",pool=~"llama-.*"}``.
    """

    equal: Mapping[str, str] = field(default_factory=dict)
    regex: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in (*self.equal, *self.regex):
            check_label_name(name)

    def render(self, extra: str = "") -> str:
        """The matcher list in braces (``''`` when there is nothing to match)."""
        parts = [f'{k}="{_escape(v)}"' for k, v in sorted(self.equal.items())]
        parts += [f'{k}=~"{_escape(v)}"' for k, v in sorted(self.regex.items())]
        if extra:
            parts.append(extra)
        return "{" + ",".join(parts) + "}" if parts else ""


@dataclass(frozen=True, slots=True)
class RowLabels:
    """Which Prometheus labels identify a pod and carry its accelerator and role.

    In Kubernetes these come from relabelling (a PodMonitor copying pod labels such as
    ``llm-d.ai/role`` or a node's GPU product onto the series); the simulator's pods carry
    ``pod`` and ``pool``. ``None`` means the series have no such label (the dataset then uses its
    configured default).
    """

    pod: str = "pod"
    accelerator: str | None = "accelerator"
    role: str | None = "role"

    def __post_init__(self) -> None:
        for name in (self.pod, self.accelerator, self.role):
            if name is not None:
                check_label_name(name)
        present = [n for n in (self.pod, self.accelerator, self.role) if n is not None]
        if len(set(present)) != len(present):
            raise ValueError(f"row labels must be distinct, got {present}")

    @property
    def by(self) -> tuple[str, ...]:
        """The ``by (…)`` list of every query."""
        return tuple(n for n in (self.pod, self.accelerator, self.role) if n is not None)


@dataclass(frozen=True, slots=True)
class WindowQueries:
    """The PromQL text of every series a window dataset needs (see the module doc)."""

    selector: Selector
    labels: RowLabels
    window_s: float
    quantile: float = 0.9

    def __post_init__(self) -> None:
        if not 0.0 < self.quantile < 1.0:
            raise ValueError(f"quantile must lie in (0, 1), got {self.quantile}")
        format_duration(self.window_s)

    def _sel(self, metric: str) -> str:
        return f"{metric}{self.selector.render()}"

    def _by(self, *more: str) -> str:
        return ", ".join((*self.labels.by, *more))

    def _rate(self, metric: str) -> str:
        w = format_duration(self.window_s)
        return f"sum by ({self._by()}) (rate({self._sel(metric)}[{w}]))"

    def _avg(self, metric: str, how: str) -> str:
        w = format_duration(self.window_s)
        return f"{how} by ({self._by()}) (avg_over_time({self._sel(metric)}[{w}]))"

    def _quantile(self, histogram: str) -> str:
        w = format_duration(self.window_s)
        inner = f"sum by ({self._by('le')}) (rate({self._sel(histogram + '_bucket')}[{w}]))"
        return f"histogram_quantile({self.quantile:g}, {inner})"

    def itl_detection(self) -> str:
        """Which inter-token-latency histogram names the selected pods export."""
        names = "|".join(re.escape(n + "_count") for n in ITL_NAMES)
        matcher = '__name__=~"' + names + '"'
        return f"group by (__name__) ({self.selector.render(matcher)})"

    def itl(self, names: tuple[str, ...]) -> str:
        """The ITL quantile from the histograms in ``names``, preferring the first per pod.

        ``a or b`` keeps every series of ``a`` and adds those of ``b`` whose labels ``a`` lacks,
        so a fleet mixing vLLM versions is read per pod under whichever name it exports.
        """
        if not names:
            raise ValueError("no inter-token-latency histogram to query")
        return " or ".join(self._quantile(n) for n in names)

    def queries(self, itl_names: tuple[str, ...]) -> dict[str, str]:
        """Every query by the name of the series it fills (:class:`WindowField` or
        :class:`AuxiliarySeries` values); without ``itl_names`` the ITL query is left out."""
        out: dict[str, str] = {
            WindowField.REQUEST_RATE: self._rate("vllm:request_success_total"),
            WindowField.PROMPT_TOKENS_RATE: self._rate("vllm:prompt_tokens_total"),
            WindowField.GENERATION_TOKENS_RATE: self._rate("vllm:generation_tokens_total"),
            WindowField.MEAN_INPUT_TOKENS: (
                f"{self._rate('vllm:request_prompt_tokens_sum')} / "
                f"{self._rate('vllm:request_prompt_tokens_count')}"
            ),
            WindowField.MEAN_OUTPUT_TOKENS: (
                f"{self._rate('vllm:request_generation_tokens_sum')} / "
                f"{self._rate('vllm:request_generation_tokens_count')}"
            ),
            WindowField.KV_CACHE_USAGE: self._avg("vllm:kv_cache_usage_perc", "avg"),
            WindowField.NUM_REQUESTS_RUNNING: self._avg("vllm:num_requests_running", "sum"),
            WindowField.NUM_REQUESTS_WAITING: self._avg("vllm:num_requests_waiting", "sum"),
            AuxiliarySeries.PREFIX_HITS_RATE: self._rate("vllm:prefix_cache_hits_total"),
            AuxiliarySeries.PREFIX_QUERIES_RATE: self._rate("vllm:prefix_cache_queries_total"),
            WindowField.TTFT_S: self._quantile("vllm:time_to_first_token_seconds"),
            AuxiliarySeries.LAST_SAMPLE_S: (
                f"max by ({self._by()}) (timestamp({self._sel('vllm:num_requests_running')}))"
            ),
        }
        if itl_names:
            out[WindowField.ITL_S] = self.itl(itl_names)
        return {str(k): v for k, v in out.items()}


__all__ = [
    "ITL_NAME",
    "ITL_NAMES",
    "LEGACY_ITL_NAME",
    "WINDOW_FEATURES",
    "WINDOW_TARGETS",
    "AuxiliarySeries",
    "RowLabels",
    "Selector",
    "WindowField",
    "WindowQueries",
    "format_duration",
]
