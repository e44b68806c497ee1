"""Prometheus text format 0.0.4, byte for byte as vLLM's prometheus_client prints it.

Why it exists: the simulator serves ``/metrics`` so that a real Prometheus (the integration tests,
a demo with Grafana) can scrape simulated pods exactly as it scrapes vLLM. The rules copied from
``prometheus_client.exposition.generate_latest``:

* a counter family ``x`` is announced as ``# TYPE x_total counter`` and its sample is
  ``x_total``; its ``_created`` timestamp follows as a separate ``gauge`` family ``x_created``
  (histograms likewise get ``x_created``);
* histograms print every ``_bucket`` cumulatively, ``le`` ascending and ending with
  ``le="+Inf"``, then ``_count`` and ``_sum``;
* labels are sorted by name (``le`` among them), values and ``le`` bounds are formatted with
  ``floatToGoString`` (``1.0``, ``0.001``, ``2560.0``, ``1e+06``, ``+Inf``);
* HELP text escapes backslash and newline; label values also escape ``"``.

Gateway (Go client) families differ only where client_golang does: no ``_created``. Integers print
as ``3.0`` rather than Go's ``3``, which every parser reads identically.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from simulator.metrics.samples import (
    MetricFamily,
    MetricsSource,
    SeriesGroup,
    SourceSnapshot,
    escape_help,
    format_value,
    render_labels,
)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""What prometheus_client's ``CONTENT_TYPE_LATEST`` says for this format."""


def group_families(
    snapshots: Sequence[SourceSnapshot],
) -> list[tuple[MetricFamily, list[tuple[SeriesGroup, float]]]]:
    """Merge the families of several sources: each family once, its series from every source.

    Families keep the order of first appearance. Each series is paired with its source's
    ``_created`` value. Raises ValueError when two sources describe one name differently.
    """
    merged: dict[str, tuple[MetricFamily, list[tuple[SeriesGroup, float]]]] = {}
    for snap in snapshots:
        created = snap.created_s
        for family, groups in snap.collect():
            entry = merged.get(family.name)
            if entry is None:
                entry = (family, [])
                merged[family.name] = entry
            elif entry[0] != family:
                raise ValueError(
                    f"metric family {family.name!r} is described differently by two sources: "
                    f"{entry[0]} vs {family}"
                )
            entry[1].extend((group, created) for group in groups)
    return list(merged.values())


def render_snapshots_text(snapshots: Sequence[SourceSnapshot], include_created: bool = True) -> str:
    """Render already-taken snapshots (see :func:`render_prometheus_text`)."""
    out: list[str] = []
    for family, series in group_families(snapshots):
        text_name = family.text_name
        help_text = escape_help(family.help)
        out.append(f"# HELP {text_name} {help_text}\n# TYPE {text_name} {family.type}\n")
        for group, _ in series:
            for (name, labels), value in zip(group.keys, group.values, strict=True):
                out.append(f"{name}{render_labels(labels)} {format_value(value)}\n")
        if include_created and family.exports_created and family.type != "gauge" and series:
            created_name = family.name + "_created"
            out.append(f"# HELP {created_name} {help_text}\n# TYPE {created_name} gauge\n")
            for group, created in series:
                out.append(f"{created_name}{render_labels(group.labels)} {format_value(created)}\n")
    return "".join(out)


def render_prometheus_text(sources: Iterable[MetricsSource], include_created: bool = True) -> str:
    """The current values of ``sources`` in the Prometheus text format 0.0.4.

    Each source is snapshotted first, so rendering never reads a value the engine is halfway
    through updating. Several sources sharing family names (the engines of one data-parallel
    server, or many pods in one file) are merged: one ``# HELP``/``# TYPE`` per family, then the
    series of every source. ``include_created=False`` drops the ``_created`` gauges, as
    ``PROMETHEUS_DISABLE_CREATED_SERIES=True`` does for prometheus_client.
    """
    return render_snapshots_text([source.snapshot() for source in sources], include_created)
