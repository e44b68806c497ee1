"""The one intermediate form every simulated metrics source exports through.

The simulator's metrics leave the process three ways: as in-memory :class:`Sample` lists (the
controller's simulated ``MetricsSource`` reads them), as Prometheus text on ``/metrics``, and as
OpenMetrics files that ``promtool tsdb create-blocks-from openmetrics`` turns into a real TSDB. All
three read the structure defined here — a :class:`MetricFamily` descriptor plus, per labelled
series, its exposition-named sample lines (:class:`SeriesGroup`) — so names, label sets and bucket
edges cannot drift between the three outputs.

Label sets are tuples of ``(name, value)`` pairs sorted by label name, which is the order both
prometheus_client and client_golang print them in; comparing two label sets is then a tuple
comparison.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

LabelTuple = tuple[tuple[str, str], ...]
"""A label set: ``(name, value)`` pairs sorted by name."""

MetricType = Literal["counter", "gauge", "histogram"]

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Sample:
    """One scraped series value, named as it appears in the exposition.

    ``name`` carries the exposition suffix (``vllm:prompt_tokens_total``,
    ``vllm:time_to_first_token_seconds_bucket``); ``labels`` are sorted by name and include ``le``
    for histogram buckets.
    """

    name: str
    labels: LabelTuple
    value: float

    def label(self, name: str) -> str | None:
        """The value of label ``name``, or None when the sample does not carry it."""
        for key, value in self.labels:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """What a ``# HELP`` / ``# TYPE`` pair describes.

    ``name`` is the family name as OpenMetrics spells it: a counter's name has no ``_total``
    (``vllm:prompt_tokens``), its samples do. ``exports_created`` says whether the client library
    that owns the family emits ``_created`` series: prometheus_client (vLLM) does for counters and
    histograms, client_golang (the gateway's EPP) does not in the text format.
    """

    name: str
    type: MetricType
    help: str
    exports_created: bool = True

    @property
    def text_name(self) -> str:
        """The name on the ``# TYPE`` line of the Prometheus text format 0.0.4."""
        return self.name + "_total" if self.type == "counter" else self.name


class SeriesGroup(NamedTuple):
    """One labelled series of a family at one instant, with its exposition lines.

    ``labels`` is the series' label set without ``le``; ``keys`` are the exposition lines' names
    and full label sets (one for a counter or gauge; every ``_bucket``, then ``_count`` and
    ``_sum`` for a histogram); ``values`` holds one value per key. ``keys`` is built once per
    source and shared by every snapshot, so collecting allocates little beyond the values.
    """

    labels: LabelTuple
    keys: tuple[tuple[str, LabelTuple], ...]
    values: Sequence[float]


class FamilySamples(NamedTuple):
    """A family and the series one source exports for it."""

    family: MetricFamily
    groups: list[SeriesGroup]


class SourceSnapshot(Protocol):
    """A consistent, immutable copy of one source's values, ready to render."""

    @property
    def created_s(self) -> float:
        """Value of the ``_created`` series (when the owning client library exports them)."""
        ...

    @property
    def identity(self) -> LabelTuple:
        """The label set that tells this source apart from every other (model, engine, pod...)."""
        ...

    def collect(self) -> list[FamilySamples]:
        """Every family this source exports, in exposition order."""
        ...


class MetricsSource(Protocol):
    """Anything that can be scraped: it hands out a snapshot of its current values."""

    def snapshot(self) -> SourceSnapshot:
        """Copy the current values (cheap; safe to render on another thread)."""
        ...


def flatten(families: Sequence[FamilySamples]) -> list[Sample]:
    """All exposition lines of ``families`` as :class:`Sample` objects, in exposition order."""
    out: list[Sample] = []
    for fam in families:
        for group in fam.groups:
            for (name, labels), value in zip(group.keys, group.values, strict=True):
                out.append(Sample(name, labels, float(value)))
    return out


def label_set(base: Mapping[str, str], **more: str) -> LabelTuple:
    """``base`` plus ``more`` as a sorted label tuple."""
    merged = dict(base)
    merged.update(more)
    return tuple(sorted(merged.items()))


def check_label_names(labels: Mapping[str, str], reserved: Sequence[str]) -> dict[str, str]:
    """Validate user-supplied extra labels and return them as a plain dict.

    Raises ValueError for a name that is not a legal Prometheus label name, starts with ``__``
    (reserved for Prometheus itself) or collides with a label the metrics already carry.
    """
    out: dict[str, str] = {}
    for name, value in labels.items():
        if not _LABEL_NAME.match(name) or name.startswith("__"):
            raise ValueError(f"invalid Prometheus label name {name!r}")
        if name in reserved:
            raise ValueError(
                f"label {name!r} is set by the metrics themselves; choose another name"
            )
        out[name] = str(value)
    return out


def format_value(value: float) -> str:
    """Format a sample value or ``le`` bound exactly as prometheus_client's ``floatToGoString``.

    ``1`` → ``"1.0"``, ``0.001`` → ``"0.001"``, ``2560`` → ``"2560.0"``, ``1e6`` → ``"1e+06"``,
    ``1.7e9`` → ``"1.7e+09"``, ``inf`` → ``"+Inf"``. Go switches to exponent notation once the
    integer part has more than six digits; the Python client copies that for positive values.
    """
    d = float(value)
    if d == math.inf:
        return "+Inf"
    if d == -math.inf:
        return "-Inf"
    if math.isnan(d):
        return "NaN"
    s = repr(d)
    dot = s.find(".")
    if d > 0 and dot > 6:
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+0{dot - 1}"
    return s


def escape_label_value(value: str) -> str:
    """Backslash-escape ``\\``, newline and ``"`` (text format 0.0.4 and OpenMetrics agree)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def escape_help(text: str) -> str:
    """Escape a HELP string for the text format 0.0.4 (backslash and newline only)."""
    return text.replace("\\", r"\\").replace("\n", r"\n")


def render_labels(labels: LabelTuple) -> str:
    """``{a="1",b="2"}`` (empty string for no labels)."""
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels) + "}"
