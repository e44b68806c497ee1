"""The window dataset against a real Prometheus holding a simulated run.

A short simulated scenario (two H100 pods and one H200 pod of Llama-3-8B under a rising step load)
is recorded every 15 s with the simulator's OpenMetrics writer, backfilled with ``promtool tsdb
create-blocks-from openmetrics`` and served by a real ``prometheus``. Next to the real pods the
recording holds injected ones, each broken in one way (no traffic, a NaN gauge, a missing
histogram, no accelerator label, reporting stopped), plus one exporting vLLM ≤ 0.10's ITL name.

Checks: the dataset built through PromQL equals the in-memory metrics (rates, means, ratios and
histogram quantiles recomputed from the recorded snapshots) within 1e-6 relative — the window ends
sit 7 s after a scrape, so Prometheus's ``rate`` extrapolation spans exactly the sampled interval;
every broken pod's rows are dropped with the right reason and counted; a window model trains on the
real pods, and the one trained from PromQL has the held-out accuracy of the one trained from the
in-memory windows (within 1e-3 relative); client errors map to temporary vs permanent; and
``sloscaler predictor train-windows`` publishes window models that ``serve`` answers
``POST /capacity`` from; and a service given the Prometheus URL trains them itself at start-up.
"""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import structlog
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from predictor.cli import build_service, predictor_app
from predictor.clock import FixedClock
from predictor.outcomes import NotReady, NotReadyReason
from predictor.prometheus_dataset import (
    DropReason,
    PermanentPrometheusError,
    PrometheusWindowSource,
    TemporaryPrometheusError,
    WindowDataset,
    WindowDatasetConfig,
    connect,
    rows_by_key,
)
from predictor.prometheus_queries import ITL_NAME, LEGACY_ITL_NAME, RowLabels, WindowField
from predictor.service import create_app
from predictor.window_models import (
    CapacityBound,
    WindowCapacity,
    WindowModelConfig,
    WindowSegment,
    capacity_at_slo,
    evaluate_window_model,
    fit_window_model,
)
from predictor.window_registry import WindowModelRegistry
from predictor.window_training import WindowTrainingPolicy
from simulator.cluster import Cluster
from simulator.metrics import OpenMetricsWriter, VllmMetrics
from simulator.metrics.samples import FamilySamples, LabelTuple, MetricsSource
from simulator.metrics.vllm import MetricsSnapshot
from simulator.runner import run_scenario
from simulator.scenario import Scenario
from tests.prometheus_harness import (
    backfill,
    fake_traffic,
    free_port,
    requires_prometheus,
    running_prometheus,
)

pytestmark = requires_prometheus

T0 = 1_700_000_000.0  # recorded sample times are seconds from 0; shift them to a real epoch
SCRAPE_S = 15.0
TRACE_S = 600.0
STALE_STOP_S = 300.0  # the "stale" pod's last sample
FIRST_END = T0 + 67.0  # window ends sit 7 s after a scrape: (t − 60, t] holds 4 samples
LAST_END = T0 + 592.0
N_WINDOWS = 36  # 67, 82, …, 592
REAL_PODS = ("h100-0", "h100-1", "h200-0")
REL_TOL = 1e-6

CONFIG = WindowDatasetConfig(
    labels=RowLabels(pod="pod", accelerator="pool", role=None),  # the simulator's pods
    window_s=60.0,
    step_s=15.0,
)


def _scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "name": "prometheus-window-dataset",
            "seed": 3,
            "trace": {
                "generate": {
                    "kind": "step",
                    "stages": [[120, 6], [120, 18], [120, 30], [120, 42], [120, 54]],
                    "lengths": {"mean_input_tokens": 1000, "mean_output_tokens": 200},
                    "prefix": {"groups": 4, "tokens": 256, "fraction": 0.5},
                }
            },
            "slo": {"ttft_ms": 1000, "tpot_ms": 50},
            "pools": [
                {"name": "h100", "model": "llama-3-8b", "accelerator": "h100", "replicas": 2},
                {"name": "h200", "model": "llama-3-8b", "accelerator": "h200", "replicas": 1},
            ],
            "gateway": {"scorer": "least-load"},
        }
    )


class _WithoutFamily:
    """A pod whose exposition lacks one family (a scrape that lost a histogram)."""

    def __init__(self, inner: VllmMetrics, family: str) -> None:
        self.inner = inner
        self.family = family

    def snapshot(self) -> _FilteredSnapshot:
        return _FilteredSnapshot(self.inner.snapshot(), self.family)


@dataclass(frozen=True)
class _FilteredSnapshot:
    inner: MetricsSnapshot
    family: str

    @property
    def identity(self) -> LabelTuple:
        return self.inner.identity

    @property
    def created_s(self) -> float:
        return self.inner.created_s

    def collect(self) -> list[FamilySamples]:
        return [f for f in self.inner.collect() if f.family.name != self.family]


@dataclass
class Recording:
    snapshots: dict[float, dict[str, MetricsSnapshot]]
    data_dir: Path


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    root = tmp_path_factory.mktemp("prom")
    path = root / "run.om"
    model = "llama-3-8b"

    def ghost(pod: str, pool: str | None, itl_name: str = ITL_NAME) -> VllmMetrics:
        labels = {"pod": pod} if pool is None else {"pod": pod, "pool": pool}
        return VllmMetrics(model, extra_labels=labels, itl_name=itl_name)

    idle = ghost("idle-0", "ghost")
    nan = ghost("nan-0", "ghost")
    partial = ghost("partial-0", "ghost")
    stale = ghost("stale-0", "ghost")
    unlabelled = ghost("nolabel-0", None)
    legacy = ghost("legacy-0", "legacy", LEGACY_ITL_NAME)
    snapshots: dict[float, dict[str, MetricsSnapshot]] = {}

    with OpenMetricsWriter(path) as writer:

        def hook(t: float, cluster: Cluster) -> None:
            for m in (nan, partial, stale, unlabelled, legacy):
                fake_traffic(m)
            nan.kv_cache_usage_perc = math.nan
            sources: list[MetricsSource] = [
                *cluster.metric_sources(),
                idle,
                nan,
                unlabelled,
                legacy,
            ]
            sources.append(_WithoutFamily(partial, "vllm:time_to_first_token_seconds"))
            if t <= STALE_STOP_S:
                sources.append(stale)
            snapshots[t] = {
                dict(m.identity)["pod"]: m.snapshot()
                for m in cluster.metric_sources()
                if isinstance(m, VllmMetrics)
            }
            snapshots[t]["legacy-0"] = legacy.snapshot()
            writer.write(sources, T0 + t)

        run_scenario(_scenario(), sample_hooks=((SCRAPE_S, hook),))
    data = root / "data"
    backfill(path, data)
    return Recording(snapshots=snapshots, data_dir=data)


@pytest.fixture(scope="module")
def prometheus_url(recording: Recording, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_prometheus(recording.data_dir, tmp_path_factory.mktemp("prom-config")) as url:
        yield url


@pytest.fixture(scope="module")
def dataset(prometheus_url: str) -> WindowDataset:
    source = PrometheusWindowSource(connect(prometheus_url, retries=0), CONFIG)
    ds = source.fetch(FIRST_END, LAST_END)
    assert source.queries_sent == 14  # one detection query + one per metric, for every pod
    return ds


def _window(
    snapshots: dict[float, dict[str, MetricsSnapshot]], pod: str, end: float
) -> list[MetricsSnapshot]:
    """The four snapshots inside the 60 s window ending at ``end`` (7, 22, 37, 52 s before)."""
    t = end - T0
    return [snapshots[s][pod] for s in (t - 52.0, t - 37.0, t - 22.0, t - 7.0)]


def _prom_rate(first: float, last: float) -> float:
    """PromQL ``rate`` over our window geometry: 4 samples spanning 45 s, 8 s after the window
    start and 7 s before its end. Both gaps are under 1.1 × the 15 s sample spacing, so the
    increase is extrapolated to the whole 60 s — except that a counter is never extrapolated
    below zero (the start gap shrinks to ``45·first/increase`` when that is smaller)."""
    span, to_start, to_end, threshold = 45.0, 8.0, 7.0, 1.1 * 15.0
    increase = last - first
    if increase > 0 and first >= 0:
        to_start = min(to_start, span * first / increase)
    interval = span + (to_start if to_start < threshold else 7.5) + to_end
    return increase * interval / span / 60.0


def _prom_quantile(q: float, first: list[int], last: list[int], bounds: tuple[float, ...]) -> float:
    """``histogram_quantile`` over per-bucket ``rate`` s (cumulative buckets, ``+Inf`` last)."""
    rates: list[float] = []
    for a, b in zip(first, last, strict=True):
        rates.append(max(_prom_rate(a, b), rates[-1] if rates else 0.0))  # ensureMonotonic
    total = rates[-1]
    if total == 0:
        return math.nan
    rank = q * total
    k = next(i for i, c in enumerate([*rates[:-1], math.inf]) if c >= rank)
    if k == len(rates) - 1:
        return bounds[-1]
    start = bounds[k - 1] if k else 0.0
    below = rates[k - 1] if k else 0.0
    return start + (bounds[k] - start) * (rank - below) / (rates[k] - below)


def _expected(
    snapshots: dict[float, dict[str, MetricsSnapshot]], pod: str, end: float
) -> dict[str, float]:
    window = _window(snapshots, pod, end)
    a, b = window[0], window[-1]

    def rate(name: str) -> float:
        return _prom_rate(float(getattr(a, name)), float(getattr(b, name)))

    def histogram_rate(name: str, part: str) -> float:
        ha, hb = getattr(a, name), getattr(b, name)
        if part == "count":
            return _prom_rate(ha.count, hb.count)
        return _prom_rate(ha.sum, hb.sum)

    def quantile(name: str) -> float:
        ha, hb = getattr(a, name), getattr(b, name)
        return _prom_quantile(0.9, ha.cumulative(), hb.cumulative(), ha.bounds)

    return {
        WindowField.REQUEST_RATE: _prom_rate(a.finished_requests, b.finished_requests),
        WindowField.PROMPT_TOKENS_RATE: rate("prompt_tokens"),
        WindowField.GENERATION_TOKENS_RATE: rate("generation_tokens"),
        WindowField.MEAN_INPUT_TOKENS: histogram_rate("request_prompt_tokens", "sum")
        / histogram_rate("request_prompt_tokens", "count"),
        WindowField.MEAN_OUTPUT_TOKENS: histogram_rate("request_generation_tokens", "sum")
        / histogram_rate("request_generation_tokens", "count"),
        WindowField.KV_CACHE_USAGE: float(np.mean([s.kv_cache_usage_perc for s in window])),
        WindowField.NUM_REQUESTS_RUNNING: float(np.mean([s.num_requests_running for s in window])),
        WindowField.NUM_REQUESTS_WAITING: float(np.mean([s.num_requests_waiting for s in window])),
        WindowField.PREFIX_CACHE_HIT_RATIO: rate("prefix_cache_hits")
        / rate("prefix_cache_queries"),
        WindowField.TTFT_S: quantile("time_to_first_token"),
        WindowField.ITL_S: quantile("inter_token_latency"),
    }


def test_dataset_matches_the_in_memory_metrics(
    dataset: WindowDataset, recording: Recording
) -> None:
    index = rows_by_key(dataset)
    checked = 0
    for pod in (*REAL_PODS, "legacy-0"):
        for k in range(N_WINDOWS):
            end = FIRST_END + SCRAPE_S * k
            i = index[(pod, end)]
            for name, want in _expected(recording.snapshots, pod, end).items():
                got = dataset.feature(name) if name not in ("ttft_s", "itl_s") else None
                value = (
                    float(got[i])
                    if got is not None
                    else float(dataset.target(WindowField(name))[i])
                )
                assert value == pytest.approx(want, rel=REL_TOL), (pod, end - T0, name)
                checked += 1
    assert checked == 4 * N_WINDOWS * 11
    assert set(dataset.accelerator) == {"h100", "h200", "legacy", "ghost"}
    assert set(dataset.role) == {"aggregated"}


def test_old_and_new_itl_names_are_both_read(dataset: WindowDataset) -> None:
    assert dataset.itl_metrics == (ITL_NAME, LEGACY_ITL_NAME)
    legacy = np.asarray(dataset.pod) == "legacy-0"
    assert legacy.sum() == N_WINDOWS
    assert np.all(np.isfinite(dataset.itl_s[legacy]))


def test_broken_series_are_dropped_and_counted(dataset: WindowDataset) -> None:
    # stale-0 stopped at 300 s: windows ending 30–300 s later are stale, later ones vanish
    stale_windows = sum(
        1 for k in range(N_WINDOWS) if 30.0 < FIRST_END + SCRAPE_S * k - T0 - STALE_STOP_S <= 300.0
    )
    assert stale_windows == 18
    assert dict(dataset.drops) == {
        DropReason.NO_TRAFFIC: N_WINDOWS,  # idle-0
        DropReason.NOT_A_NUMBER: N_WINDOWS,  # nan-0
        DropReason.MISSING: N_WINDOWS,  # partial-0
        DropReason.UNLABELLED: N_WINDOWS,  # nolabel-0
        DropReason.STALE: stale_windows,  # stale-0
    }
    assert dataset.drops_by_field[(DropReason.MISSING, "ttft_s")] == N_WINDOWS
    assert dataset.drops_by_field[(DropReason.NOT_A_NUMBER, "kv_cache_usage")] == N_WINDOWS
    kept_pods = set(dataset.pod)
    assert kept_pods == {*REAL_PODS, "legacy-0", "stale-0"}
    assert len(dataset) == N_WINDOWS * 4 + (N_WINDOWS - stale_windows)
    for column in (*dataset.features.values(), dataset.ttft_s, dataset.itl_s):
        assert np.all(np.isfinite(column))  # nothing absent was read as a number


def test_a_window_model_trains_on_the_real_pods(dataset: WindowDataset) -> None:
    model = fit_window_model(dataset, WindowModelConfig(min_rows=30))
    for acc in ("h100", "h200"):
        assert isinstance(model.segment(acc), WindowSegment)
    for name in ("ghost", "legacy"):  # 18 windows; 36 windows all at one load
        seg = model.segment(name)
        assert isinstance(seg, NotReady)
        assert seg.reason is NotReadyReason.TOO_FEW_SAMPLES
    h100 = model.segment("h100")
    assert isinstance(h100, WindowSegment)
    tight = capacity_at_slo(model, 1000, 200, 0.1, 0.15, 0.025, accelerator="h100")
    loose = capacity_at_slo(model, 1000, 200, 0.1, 0.6, 0.1, accelerator="h100")
    assert isinstance(tight, WindowCapacity)
    assert isinstance(loose, WindowCapacity)
    assert 0.0 < tight.rate_rps <= loose.rate_rps <= h100.rate_range[1]
    assert tight.limited_by in (CapacityBound.TTFT, CapacityBound.ITL)


def _in_memory_dataset(recording: Recording) -> WindowDataset:
    """The real pods' windows computed straight from the recorded snapshots."""
    rows = [(pod, FIRST_END + SCRAPE_S * k) for pod in REAL_PODS for k in range(N_WINDOWS)]
    values = [_expected(recording.snapshots, pod, end) for pod, end in rows]
    features = {
        str(name): np.array([v[name] for v in values])
        for name in values[0]
        if name not in (WindowField.TTFT_S, WindowField.ITL_S)
    }
    return WindowDataset(
        pod=tuple(pod for pod, _ in rows),
        accelerator=tuple(pod.split("-")[0] for pod, _ in rows),
        role=("aggregated",) * len(rows),
        window_end_s=np.array([end for _, end in rows]),
        features=features,
        ttft_s=np.array([v[WindowField.TTFT_S] for v in values]),
        itl_s=np.array([v[WindowField.ITL_S] for v in values]),
        window_s=CONFIG.window_s,
    )


def test_models_trained_from_promql_match_the_in_memory_ones(
    dataset: WindowDataset, recording: Recording
) -> None:
    """Trained on the PromQL rows or on the in-memory rows, the same window model comes out:
    held-out MAPE, coverage and pinball agree within 1e-3 relative."""
    real = dataset.take(np.isin(np.asarray(dataset.pod), REAL_PODS))
    memory = _in_memory_dataset(recording)
    assert len(real) == len(memory)

    def split(ds: WindowDataset) -> tuple[WindowDataset, WindowDataset]:
        k = np.round((ds.window_end_s - FIRST_END) / SCRAPE_S).astype(int)
        return ds.take(k % 4 != 3), ds.take(k % 4 == 3)

    config = WindowModelConfig(min_rows=20)  # the H200 pod trains on 27 windows
    results = []
    for ds in (real, memory):
        train, held_out = split(ds)
        results.append(evaluate_window_model(fit_window_model(train, config), held_out))
    promql, in_memory = results
    assert len(promql) == len(in_memory) == 4  # (TTFT, ITL) × (h100, h200)
    for a, b in zip(promql, in_memory, strict=True):
        assert (a.target, a.segment, a.n) == (b.target, b.segment, b.n)
        assert a.n > 0
        for x, y in (
            (a.mape, b.mape),
            (a.coverage_q90, b.coverage_q90),
            (a.pinball_q90, b.pinball_q90),
        ):
            assert x == pytest.approx(y, rel=1e-3, nan_ok=True), a


def test_client_errors_become_temporary_or_permanent(prometheus_url: str) -> None:
    bad_query = PrometheusWindowSource(
        connect(prometheus_url, retries=0),
        WindowDatasetConfig(labels=RowLabels(pod="pod", accelerator="pool", role=None)),
    )
    with pytest.raises(PermanentPrometheusError) as rejected:
        bad_query._range("sum by (pod (", FIRST_END, LAST_END)
    assert "HTTP 400" in str(rejected.value)
    assert not rejected.value.retryable

    unreachable = PrometheusWindowSource(connect(f"http://127.0.0.1:{free_port()}", retries=0))
    with pytest.raises(TemporaryPrometheusError) as refused:
        unreachable.fetch(FIRST_END, LAST_END)
    assert refused.value.retryable
    assert "unreachable" in str(refused.value)

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        slow = PrometheusWindowSource(connect(f"http://127.0.0.1:{port}", retries=0, timeout_s=0.3))
        with pytest.raises(TemporaryPrometheusError) as timed_out:
            slow.fetch(FIRST_END, LAST_END)
    assert "timed out" in str(timed_out.value)


@pytest.fixture
def _restore_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def _train_windows(url: str, out: Path, *extra: str) -> list[str]:
    return [
        "train-windows",
        "--prometheus-url",
        url,
        "--start",
        str(FIRST_END),
        "--end",
        str(LAST_END),
        "--out",
        str(out),
        "--step-s",
        "15",
        "--accelerator-label",
        "pool",  # the simulator's pods carry pod and pool labels, no role
        "--role-label",
        "",
        "--min-rows",
        "30",
        *extra,
    ]


@pytest.mark.usefixtures("_restore_logging")
def test_train_windows_publishes_and_serve_answers_capacity(
    prometheus_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "windows"
    options = ["--window-s", "60", "--match-regex", "pod=.+", "--min-load-levels", "10"]
    options += ["--default-accelerator", "unlabelled", "--timeout-s", "30", "--retries", "0"]
    r = CliRunner().invoke(predictor_app, _train_windows(prometheus_url, out, *options))
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["version"] == "v000001"
    assert summary["queries"] == 14  # one detection query, one per metric, all pods at once
    drops = summary["dataset"]["drops"]
    assert drops["NoTraffic"] == N_WINDOWS
    assert "Unlabelled" not in drops  # nolabel-0 now counts as "unlabelled"
    segments = summary["segments"]
    assert segments["h100/aggregated"]["ready"] is True
    assert segments["h100/aggregated"]["windows"] == 2 * N_WINDOWS
    assert segments["h200/aggregated"]["ready"] is True
    for constant_load in ("legacy/aggregated", "unlabelled/aggregated"):
        assert segments[constant_load]["reason"] == "TooFewSamples"
    assert WindowModelRegistry(out).versions() == ["v000001"]

    service = build_service(tmp_path / "requests", windows=out)  # no request-level model
    with TestClient(create_app(service)) as client:
        ask = {"isl": 1000, "osl": 200, "prefix_hit": 0.1, "slo_ttft_ms": 600, "slo_tpot_ms": 100}
        h100 = client.post("/capacity", json={**ask, "accelerator": "h100"}).json()
        assert h100["source"] == "learned"
        assert h100["window_model_version"] == "v000001"
        assert h100["rate_rps"] > 0
        legacy = client.post("/capacity", json={**ask, "accelerator": "legacy"})
        assert legacy.status_code == 503  # not ready, and no profile to fall back on
        assert legacy.json()["detail"]["reason"] == "TooFewSamples"


@pytest.mark.usefixtures("_restore_logging")
def test_serve_trains_window_models_from_prometheus_on_its_cadence(
    prometheus_url: str, tmp_path: Path
) -> None:
    """A service given the Prometheus URL trains once at start-up (its clock inside the
    recording), publishes a version and answers ``POST /capacity`` from it."""
    out = tmp_path / "windows"
    source = PrometheusWindowSource(connect(prometheus_url, retries=0), CONFIG)
    service = build_service(
        tmp_path / "requests",
        windows=out,
        window_source=source,
        window_training=WindowTrainingPolicy(every_s=3600.0, lookback_s=LAST_END - FIRST_END),
        window_fit=WindowModelConfig(min_rows=30),
        clock=FixedClock(LAST_END),
    )
    with TestClient(create_app(service)) as client:
        assert service.wait_for_window_trainings(1, timeout_s=30.0)
        ask = {"isl": 1000, "osl": 200, "prefix_hit": 0.1, "slo_ttft_ms": 600, "slo_tpot_ms": 100}
        h100 = client.post("/capacity", json={**ask, "accelerator": "h100"}).json()
        training = client.get("/status").json()["window_models"]["training"]
    assert h100["source"] == "learned"
    assert h100["window_model_version"] == "v000001"
    assert training["last"]["result"] == "published"
    assert training["last"]["queries"] == 14
    assert training["counts"]["published"] == 1
    assert WindowModelRegistry(out).versions() == ["v000001"]
