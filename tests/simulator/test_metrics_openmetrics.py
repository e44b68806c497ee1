"""OpenMetrics files are grouped the way promtool's backfill demands, written atomically, and
accepted by ``promtool tsdb create-blocks-from openmetrics`` when promtool is installed."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from simulator.metrics import GatewayMetrics, OpenMetricsWriter, VllmMetrics

EPOCH = 1_700_000_000.0
Row = tuple[str, str, str, float, float]  # family, sample name, labels text, value, timestamp


def simulate(writer: OpenMetricsWriter, writes: int = 4) -> list[VllmMetrics]:
    """Two pods from the start, a third that joins at the third write, and a gateway."""
    pods = [VllmMetrics("llama", extra_labels={"pod": f"p{i}"}, created_s=EPOCH) for i in range(2)]
    late = VllmMetrics("llama", extra_labels={"pod": "late"}, created_s=EPOCH + 30)
    gateway = GatewayMetrics("pool", "llama")
    for i in range(writes):
        for pod in pods:
            pod.prompt_tokens += 100
            pod.num_requests_running = i
            pod.time_to_first_token.observe(0.1 * i)
            pod.inter_token_latency.observe_arithmetic(0.02, 0.001, 10, weight=3)
            pod.request_success("stop")
        gateway.set_queue_size(i)
        gateway.record_scheduled(2)
        if i == 2:
            pods.append(late)
        writer.write([*pods, gateway], timestamp_s=EPOCH + 15 * i)
    return pods


def parse_lines(text: str) -> tuple[list[str], list[Row]]:
    """(family, sample name, labels text, value, timestamp) per sample line, checking comments."""
    assert text.endswith("# EOF\n")
    families: list[str] = []
    rows: list[Row] = []
    for line in text.splitlines()[:-1]:
        if line.startswith("# TYPE "):
            families.append(line.split()[2])
            continue
        if line.startswith("#"):
            assert line.startswith("# HELP ")
            continue
        series, value, timestamp = line.rsplit(" ", 2)
        name, _, labels = series.partition("{")
        rows.append((families[-1], name, labels.rstrip("}"), float(value), float(timestamp)))
    return families, rows


def test_families_and_series_are_contiguous_with_ascending_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "run.om"
    with OpenMetricsWriter(path) as writer:
        simulate(writer)
        assert writer.writes == 4
    families, rows = parse_lines(path.read_text())
    assert len(families) == len(set(families)), "each family is declared once"
    assert "vllm:prompt_tokens" in families  # counters declared without _total
    assert "vllm:iteration_tokens_total" in families  # a histogram whose name ends in _total

    # A series (family + label set without le) must be one contiguous run, timestamps ascending.
    def group_of(row: Row) -> tuple[str, str]:
        family, _, labels, _, _ = row
        return family, ",".join(p for p in labels.split(",") if not p.startswith("le="))

    seen: set[tuple[str, str]] = set()
    previous = None
    last_ts: dict[tuple[str, str, str], float] = {}
    for row in rows:
        group = group_of(row)
        if group != previous:
            assert group not in seen, f"series {group} is interleaved with another"
            seen.add(group)
            previous = group
        key = (row[1], row[2], row[0])
        assert row[4] >= last_ts.get(key, -math.inf)
        last_ts[key] = row[4]

    prompt = [(labels, value, ts) for _, name, labels, value, ts in rows
              if name == "vllm:prompt_tokens_total"]  # fmt: skip
    p0 = [(value, ts) for labels, value, ts in prompt if 'pod="p0"' in labels]
    assert p0 == [(100.0, EPOCH), (200.0, EPOCH + 15), (300.0, EPOCH + 30), (400.0, EPOCH + 45)]
    late = [ts for labels, _, ts in prompt if 'pod="late"' in labels]
    assert late == [EPOCH + 30, EPOCH + 45], "a pod that joins later has points only from then"

    # every histogram point: cumulative buckets ending at +Inf == _count
    itl = [r for r in rows if r[0] == "vllm:inter_token_latency_seconds" and 'pod="p1"' in r[2]]
    at_last = [r for r in itl if r[4] == EPOCH + 45]
    buckets = [r[3] for r in at_last if r[1].endswith("_bucket")]
    (count,) = (r[3] for r in at_last if r[1].endswith("_count"))
    assert buckets == sorted(buckets)
    assert buckets[-1] == count == 4 * 10 * 3


def test_a_single_write_passes_the_strict_openmetrics_parser(tmp_path: Path) -> None:
    # prometheus_client's OpenMetrics parser checks the grammar (canonical le, integer bucket
    # values, _total/_count/_sum naming, clashing names); it mishandles multi-point histograms,
    # so it gets one timestamp here and promtool checks the multi-point file below.
    path = tmp_path / "one.om"
    with OpenMetricsWriter(path, include_created=True) as writer:
        simulate(writer, writes=1)
    parsed = text_string_to_metric_families(path.read_text())  # type: ignore[no-untyped-call]
    families = {f.name: f for f in parsed}
    assert families["vllm:prompt_tokens"].type == "counter"
    assert {s.name for s in families["vllm:prompt_tokens"].samples} == {
        "vllm:prompt_tokens_total",
        "vllm:prompt_tokens_created",
    }
    assert families["vllm:time_to_first_token_seconds"].type == "histogram"
    assert families["inference_objective_request"].samples[0].value == 2
    assert all(s.timestamp is not None for f in families.values() for s in f.samples)


def test_writes_are_validated_before_anything_is_buffered(tmp_path: Path) -> None:
    writer = OpenMetricsWriter(tmp_path / "x.om")
    pod = VllmMetrics("m")
    writer.write([pod], EPOCH)
    with pytest.raises(ValueError, match="increase"):
        writer.write([pod], EPOCH)
    with pytest.raises(ValueError, match="increase"):
        writer.write([pod], EPOCH + 0.0004)  # Prometheus keeps milliseconds
    with pytest.raises(ValueError, match="finite"):
        writer.write([pod], math.nan)
    with pytest.raises(ValueError, match="extra_labels"):
        writer.write([pod, VllmMetrics("m")], EPOCH + 1)
    writer.write([pod], EPOCH + 2)
    writer.close()
    _, rows = parse_lines((tmp_path / "x.om").read_text())
    assert {r[4] for r in rows} == {EPOCH, EPOCH + 2}, "rejected writes left nothing behind"
    with pytest.raises(ValueError, match="close"):
        writer.write([pod], EPOCH + 3)
    writer.close()  # idempotent


def test_close_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "out" / "run.om"
    target.parent.mkdir()
    target.mkdir()  # a directory in the way: the final rename must fail
    writer = OpenMetricsWriter(target)
    writer.write([VllmMetrics("m")], EPOCH)
    with pytest.raises(IsADirectoryError):
        writer.close()
    assert sorted(p.name for p in target.parent.iterdir()) == ["run.om"]
    assert target.is_dir(), "the failed write did not replace anything"

    good = tmp_path / "out" / "good.om"
    with OpenMetricsWriter(good) as ok:
        ok.write([VllmMetrics("m")], EPOCH)
    assert good.read_text().endswith("# EOF\n")
    assert sorted(p.name for p in good.parent.iterdir()) == ["good.om", "run.om"]


@pytest.mark.prometheus
@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (make prometheus)"
)
def test_promtool_backfills_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.om"
    with OpenMetricsWriter(path) as writer:
        simulate(writer)
    blocks = tmp_path / "data"
    result = subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(path), str(blocks)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    (blocks / "wal").mkdir(exist_ok=True)  # `tsdb dump` insists on a WAL directory
    dump = subprocess.run(
        ["promtool", "tsdb", "dump", str(blocks)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    _, rows = parse_lines(path.read_text())
    assert len(dump) == len(rows), "every sample in the file became a sample in the TSDB"
    last_p0 = [
        line
        for line in dump
        if line.startswith('{__name__="vllm:prompt_tokens_total"') and 'pod="p0"' in line
    ]
    assert last_p0[-1].endswith(f" 400 {int((EPOCH + 45) * 1000)}")
