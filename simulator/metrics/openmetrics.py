"""Record a simulated run's metrics as one OpenMetrics file that promtool can backfill.

Why it exists: ``promtool tsdb create-blocks-from openmetrics run.om data/`` turns a file into
TSDB blocks a real Prometheus serves, so a simulated hour becomes queryable with the same PromQL,
dashboards and recording rules as a real cluster — without running Prometheus in virtual time.

promtool's parser is strict, and so is the OpenMetrics specification it follows:

* every sample of one metric family must be contiguous (one ``# TYPE`` block per family);
* inside a family, every series (one label set — for a histogram, its buckets, ``_count`` and
  ``_sum`` together) must be contiguous too ("Invalid metric grouping" otherwise), with its
  timestamps ascending;
* counters are declared without the suffix (``# TYPE vllm:prompt_tokens counter``) and sampled
  with it (``vllm:prompt_tokens_total``); histograms are sampled as ``_bucket{le}``/``_count``/
  ``_sum``; timestamps are in seconds; the file ends with ``# EOF``.

A simulation produces values time-major (all families of all pods at t₁, then at t₂ …) while the
file must be family- and series-major, so :class:`OpenMetricsWriter` buffers: per series it keeps
the index of every timestamp it was seen at and the flat values, in ``array`` buffers (8 bytes per
value; a vLLM pod has ≈ 250 values, so ≈ 2 KB per pod per write — 50 pods written every 15 s for
8 hours is ≈ 200 MB). :meth:`~OpenMetricsWriter.close` writes the whole file to a temporary
name in the target directory, fsyncs it and renames it into place, so a crash never leaves half a
file behind.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from array import array
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from simulator.metrics.samples import (
    LabelTuple,
    MetricFamily,
    MetricsSource,
    SeriesGroup,
    escape_label_value,
    format_value,
    render_labels,
)

__all__ = ["OpenMetricsWriter"]

_Keys = tuple[tuple[str, LabelTuple], ...]


class _SeriesBuffer:
    """Every recorded point of one series: which write it came from and its values."""

    __slots__ = ("indices", "keys", "source_keys", "values")

    def __init__(self, source_keys: _Keys, keys: _Keys) -> None:
        self.source_keys = source_keys  # as the source collects it (identity check on write)
        self.keys = keys  # as written (plus ``_created`` when enabled)
        self.indices: array[int] = array("L")
        self.values: array[float] = array("d")


class _FamilyBuffer:
    __slots__ = ("family", "series", "with_created")

    def __init__(self, family: MetricFamily, with_created: bool) -> None:
        self.family = family
        self.series: dict[LabelTuple, _SeriesBuffer] = {}
        self.with_created = with_created


def _format_timestamp(t: float) -> str:
    text = repr(t)
    return text[:-2] if text.endswith(".0") else text


class OpenMetricsWriter:
    """Append timestamped snapshots of metrics sources; :meth:`close` writes one OpenMetrics file.

    >>> with OpenMetricsWriter("run.om") as writer:              # doctest: +SKIP
    ...     for t in tick_times:
    ...         writer.write(pod_metrics + [gateway_metrics], timestamp_s=epoch + t)

    ``timestamp_s`` is Unix time in seconds (Prometheus keeps milliseconds, so successive writes
    must be at least 1 ms apart). Sources may join and leave between writes (pods scaling); a
    series simply has no points while its source is absent. Two sources exporting the same
    series in one write (same family and label set) are rejected: give pods an ``extra_labels``
    entry such as ``{"pod": name}``. ``include_created`` adds the ``_created`` samples of
    counters and histograms, which the backfill does not need and Prometheus ≥ 3 drops.
    """

    def __init__(self, path: str | os.PathLike[str], include_created: bool = False) -> None:
        self.path = Path(path)
        self.include_created = include_created
        self._timestamps: array[float] = array("d")
        self._families: dict[str, _FamilyBuffer] = {}
        self._closed = False

    @property
    def writes(self) -> int:
        """How many times :meth:`write` has recorded a snapshot."""
        return len(self._timestamps)

    def write(self, sources: Iterable[MetricsSource], timestamp_s: float) -> None:
        """Record the current values of ``sources`` at ``timestamp_s`` (seconds, increasing)."""
        if self._closed:
            raise ValueError("write() after close()")
        t = float(timestamp_s)
        if not math.isfinite(t):
            raise ValueError(f"timestamp must be finite, got {timestamp_s!r}")
        if self._timestamps and round(t * 1000) <= round(self._timestamps[-1] * 1000):
            raise ValueError(
                f"timestamps must increase by at least 1 ms: {t} after {self._timestamps[-1]}"
            )
        # Validate everything before touching the buffers, so a rejected write leaves none behind.
        batch: list[tuple[MetricFamily, list[SeriesGroup], float]] = []
        seen: set[tuple[str, LabelTuple]] = set()
        for source in sources:
            snap = source.snapshot()
            created = snap.created_s
            for family, groups in snap.collect():
                known = self._families.get(family.name)
                if known is not None and known.family != family:
                    raise ValueError(
                        f"metric family {family.name!r} changed description: "
                        f"{known.family} vs {family}"
                    )
                for group in groups:
                    key = (family.name, group.labels)
                    if key in seen:
                        raise ValueError(
                            f"two sources export {family.name}{render_labels(group.labels)}; "
                            "tell them apart with extra_labels (e.g. pod=...)"
                        )
                    seen.add(key)
                    if known is not None:
                        buffer = known.series.get(group.labels)
                        if (
                            buffer is not None
                            and buffer.source_keys is not group.keys
                            and buffer.source_keys != group.keys
                        ):
                            raise ValueError(
                                f"series {family.name}{render_labels(group.labels)} changed shape "
                                "(different buckets under the same labels?)"
                            )
                batch.append((family, groups, created))

        index = len(self._timestamps)
        self._timestamps.append(t)
        for family, groups, created in batch:
            fam_buffer = self._families.get(family.name)
            if fam_buffer is None:
                with_created = (
                    self.include_created and family.exports_created and family.type != "gauge"
                )
                fam_buffer = _FamilyBuffer(family, with_created)
                self._families[family.name] = fam_buffer
            for group in groups:
                buffer = fam_buffer.series.get(group.labels)
                if buffer is None:
                    keys = group.keys
                    if fam_buffer.with_created:
                        keys = (*keys, (family.name + "_created", group.labels))
                    buffer = _SeriesBuffer(group.keys, keys)
                    fam_buffer.series[group.labels] = buffer
                buffer.indices.append(index)
                buffer.values.extend(group.values)
                if fam_buffer.with_created:
                    buffer.values.append(created)

    def render_lines(self) -> Iterable[str]:
        """The file's text in chunks (one per series), ending with ``# EOF``."""
        timestamps = [_format_timestamp(t) for t in self._timestamps]
        for fam_buffer in self._families.values():
            family = fam_buffer.family
            yield (
                f"# HELP {family.name} {escape_label_value(family.help)}\n"
                f"# TYPE {family.name} {family.type}\n"
            )
            for buffer in fam_buffer.series.values():
                prefixes = [f"{name}{render_labels(labels)} " for name, labels in buffer.keys]
                width = len(prefixes)
                values = buffer.values
                lines: list[str] = []
                for point, index in enumerate(buffer.indices):
                    suffix = f" {timestamps[index]}\n"
                    base = point * width
                    for j, prefix in enumerate(prefixes):
                        lines.append(prefix + format_value(values[base + j]) + suffix)
                yield "".join(lines)
        yield "# EOF\n"

    def close(self) -> None:
        """Write the file atomically (temporary file, fsync, rename). Idempotent."""
        if self._closed:
            return
        self._closed = True
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                for chunk in self.render_lines():
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; a metrics file is not a secret
            os.replace(tmp_name, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        self._timestamps = array("d")
        self._families = {}

    def __enter__(self) -> OpenMetricsWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Write the file even when the run failed: it holds every completed write."""
        self.close()
