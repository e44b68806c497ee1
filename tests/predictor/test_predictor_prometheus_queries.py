"""The window dataset without a server: query text, row assembly and drops, error translation,
range chunking — with answers written by hand and a fake client at the query seam."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pytest
import requests
from prometheus_api_client.exceptions import PrometheusApiClientException

from predictor.prometheus_dataset import (
    AssemblyRules,
    DropReason,
    PermanentPrometheusError,
    PrometheusWindowSource,
    SeriesByKey,
    TemporaryPrometheusError,
    WindowDatasetConfig,
    assemble_rows,
    parse_matrix,
    translate_error,
)
from predictor.prometheus_queries import (
    ITL_NAME,
    ITL_NAMES,
    LEGACY_ITL_NAME,
    AuxiliarySeries,
    RowLabels,
    Selector,
    WindowField,
    WindowQueries,
    format_duration,
)

LABELS = RowLabels()
RULES = AssemblyRules(window_s=60.0, stale_after_s=30.0)


@pytest.mark.parametrize(
    ("seconds", "text"), [(60.0, "60s"), (1.5, "1500ms"), (300, "300s"), (0.25, "250ms")]
)
def test_durations_render_as_promql(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, 1e-4])
def test_bad_durations_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="duration"):
        format_duration(bad)


def test_one_query_per_metric_for_every_pod() -> None:
    queries = WindowQueries(
        Selector({"namespace": "llm"}, {"pool": "llama-.*"}), LABELS, 60.0
    ).queries(ITL_NAMES)
    assert len(queries) == 13
    assert queries[WindowField.REQUEST_RATE] == (
        "sum by (pod, accelerator, role) "
        '(rate(vllm:request_success_total{namespace="llm",pool=~"llama-.*"}[60s]))'
    )
    assert queries[WindowField.TTFT_S].startswith(
        "histogram_quantile(0.9, sum by (pod, accelerator, role, le) "
        "(rate(vllm:time_to_first_token_seconds_bucket{"
    )
    itl = queries[WindowField.ITL_S]
    assert itl.index(ITL_NAME) < itl.index(" or ") < itl.index(LEGACY_ITL_NAME)
    assert "avg_over_time(vllm:kv_cache_usage_perc" in queries[WindowField.KV_CACHE_USAGE]
    assert "timestamp(vllm:num_requests_running" in queries[AuxiliarySeries.LAST_SAMPLE_S]


def test_selector_values_are_escaped_and_names_checked() -> None:
    assert Selector({"model_name": 'a"b\\c'}).render() == '{model_name="a\\"b\\\\c"}'
    assert Selector().render() == ""
    with pytest.raises(ValueError, match="label name"):
        Selector({"bad-name": "x"})
    with pytest.raises(ValueError, match="distinct"):
        RowLabels(pod="pod", accelerator="pod")


def test_without_accelerator_or_role_labels_the_queries_group_by_pod_only() -> None:
    text = WindowQueries(Selector(), RowLabels(accelerator=None, role=None), 30.0).queries(
        (LEGACY_ITL_NAME,)
    )
    assert text[WindowField.REQUEST_RATE].startswith("sum by (pod) (rate(")
    assert ITL_NAME not in text[WindowField.ITL_S]


# ---------------------------------------------------------------------- assembly

KEY = ("p-0", "h100", "")
T = 1_000_000  # ms


def _complete(**override: float) -> dict[str, SeriesByKey]:
    values: dict[str, float] = {
        WindowField.REQUEST_RATE: 10.0,
        WindowField.PROMPT_TOKENS_RATE: 10_000.0,
        WindowField.GENERATION_TOKENS_RATE: 2_000.0,
        WindowField.MEAN_INPUT_TOKENS: 1_000.0,
        WindowField.MEAN_OUTPUT_TOKENS: 200.0,
        WindowField.KV_CACHE_USAGE: 0.3,
        WindowField.NUM_REQUESTS_RUNNING: 25.0,
        WindowField.NUM_REQUESTS_WAITING: 1.0,
        AuxiliarySeries.PREFIX_HITS_RATE: 2_500.0,
        AuxiliarySeries.PREFIX_QUERIES_RATE: 10_000.0,
        WindowField.TTFT_S: 0.2,
        WindowField.ITL_S: 0.02,
        AuxiliarySeries.LAST_SAMPLE_S: T / 1000 - 7,
    }
    values.update(override)
    return {str(k): {KEY: {T: v}} for k, v in values.items()}


def test_a_complete_row_is_kept_with_its_prefix_ratio() -> None:
    ds = assemble_rows(_complete(), RULES)
    assert len(ds) == 1
    assert ds.drops == {}
    assert ds.feature(WindowField.PREFIX_CACHE_HIT_RATIO)[0] == 0.25
    assert (ds.pod, ds.accelerator, ds.role) == (("p-0",), ("h100",), ("aggregated",))
    assert ds.window_end_s[0] == 1_000.0
    assert ds.ttft_s[0] == 0.2


def test_no_lookups_means_no_hits_not_nan() -> None:
    answers = _complete(prefix_cache_hits_rate=0.0, prefix_cache_queries_rate=0.0)
    assert assemble_rows(answers, RULES).feature(WindowField.PREFIX_CACHE_HIT_RATIO)[0] == 0.0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"last_sample_s": T / 1000 - 45}, DropReason.STALE),
        ({"request_rate": 0.0, "ttft_s": math.nan}, DropReason.NO_TRAFFIC),
        ({"ttft_s": math.nan}, DropReason.NOT_A_NUMBER),
        ({"kv_cache_usage": math.inf}, DropReason.NOT_A_NUMBER),
        (
            {"prefix_cache_hits_rate": 5.0, "prefix_cache_queries_rate": 0.0},
            DropReason.NOT_A_NUMBER,
        ),
    ],
)
def test_bad_values_drop_the_row_with_a_reason(
    change: dict[str, float], reason: DropReason
) -> None:
    ds = assemble_rows(_complete(**change), RULES)
    assert len(ds) == 0
    assert ds.drops == {reason: 1}


def test_a_missing_series_is_never_a_zero() -> None:
    answers = _complete()
    del answers[WindowField.ITL_S]
    answers[WindowField.KV_CACHE_USAGE] = {}
    ds = assemble_rows(answers, RULES)
    assert len(ds) == 0
    assert ds.drops == {DropReason.MISSING: 1}
    assert ds.drops_by_field == {
        (DropReason.MISSING, "itl_s"): 1,
        (DropReason.MISSING, "kv_cache_usage"): 1,
    }


def test_labels_default_or_drop() -> None:
    answers = {k: {("p-0", "", ""): v[KEY]} for k, v in _complete().items()}
    assert assemble_rows(answers, RULES).drops == {DropReason.UNLABELLED: 1}
    rules = AssemblyRules(window_s=60.0, default_accelerator="l40s", default_role="decode")
    ds = assemble_rows(answers, rules)
    assert (ds.accelerator, ds.role) == (("l40s",), ("decode",))


def test_a_pod_seen_only_by_its_last_timestamp_is_stale() -> None:
    answers = {AuxiliarySeries.LAST_SAMPLE_S.value: {KEY: {T: T / 1000 - 200}}}
    assert assemble_rows(answers, RULES).drops == {DropReason.STALE: 1}


def test_parse_matrix_reads_prometheus_values() -> None:
    result = [
        {"metric": {"pod": "a", "accelerator": "h100"}, "values": [[1.5, "NaN"], [16.5, "+Inf"]]},
        {"metric": {"pod": "b"}, "values": [[1.5, "3"]]},
    ]
    parsed = parse_matrix(result, LABELS, "q")
    assert math.isnan(parsed[("a", "h100", "")][1500])
    assert parsed[("a", "h100", "")][16500] == math.inf
    assert parsed[("b", "", "")] == {1500: 3.0}
    with pytest.raises(PermanentPrometheusError):
        parse_matrix([{"metric": {}}], LABELS, "q")
    with pytest.raises(PermanentPrometheusError):
        parse_matrix([result[1], result[1]], LABELS, "q")


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("exc", "retryable", "words"),
    [
        (requests.exceptions.ConnectionError("refused"), True, "unreachable"),
        (requests.exceptions.ReadTimeout("slow"), True, "timed out"),
        (requests.exceptions.ConnectTimeout("slow"), True, "timed out"),
        (requests.exceptions.RetryError("gave up"), True, "kept failing"),
        (PrometheusApiClientException("HTTP Status Code 503 (b'busy')"), True, "HTTP 503"),
        (PrometheusApiClientException("HTTP Status Code 429 (b'slow down')"), True, "HTTP 429"),
        (PrometheusApiClientException("HTTP Status Code 400 (b'parse error')"), False, "HTTP 400"),
        (PrometheusApiClientException("HTTP Status Code 422 (b'too many')"), False, "HTTP 422"),
        (requests.exceptions.MissingSchema("no scheme"), False, "bad Prometheus address"),
        (ValueError("Expecting value"), False, "malformed"),
    ],
)
def test_client_errors_are_translated(exc: Exception, retryable: bool, words: str) -> None:
    err = translate_error(exc, "up")
    assert err.retryable is retryable
    assert isinstance(err, TemporaryPrometheusError if retryable else PermanentPrometheusError)
    assert words in str(err)
    assert err.query == "up"


class FakeClient:
    """Answers every query with one series per pod (constant values), counting the calls."""

    def __init__(self, pods: int = 2, fail: Exception | None = None) -> None:
        self.calls: list[tuple[str, float, float, str]] = []
        self.pods = pods
        self.fail = fail

    def custom_query_range(
        self,
        query: str,
        start_time: datetime,
        end_time: datetime,
        step: str,
        params: dict[str, Any] | None = None,
    ) -> Any:
        if self.fail is not None:
            raise self.fail
        start, end = start_time.timestamp(), end_time.timestamp()
        self.calls.append((query, start, end, step))
        if query.startswith("group by (__name__)"):
            return [{"metric": {"__name__": ITL_NAME + "_count"}, "values": [[start, "1"]]}]
        times = np.arange(start, end + 1e-9, float(step.removesuffix("s")))
        fresh = "timestamp(" in query  # the newest sample: 5 s before each window end
        return [
            {
                "metric": {"pod": f"p-{i}", "accelerator": "h100"},
                "values": [[t, str(float(t) - 5) if fresh else "1"] for t in times],
            }
            for i in range(self.pods)
        ]


def test_query_count_does_not_grow_with_pods() -> None:
    small, large = FakeClient(pods=2), FakeClient(pods=50)
    for client in (small, large):
        ds = PrometheusWindowSource(client, WindowDatasetConfig(step_s=60)).fetch(0.0, 3_000.0)
        assert len(ds) == client.pods * 51
    assert len(small.calls) == len(large.calls) == 14  # one detection + one per series


def test_long_ranges_are_cut_into_chunks_below_the_point_limit() -> None:
    client = FakeClient(pods=1)
    config = WindowDatasetConfig(step_s=60, max_points_per_query=10)
    source = PrometheusWindowSource(client, config)
    ds = source.fetch(0.0, 60.0 * 24)  # 25 window ends → chunks of 10, 10, 5
    assert len(ds) == 25
    assert np.array_equal(ds.window_end_s, np.arange(25) * 60.0)
    ranges = sorted({(c[1], c[2]) for c in client.calls[1:]})
    assert ranges == [(0.0, 540.0), (600.0, 1140.0), (1200.0, 1440.0)]
    assert all((hi - lo) / 60 + 1 <= 10 for lo, hi in ranges)


def test_a_failing_client_raises_the_translated_error() -> None:
    source = PrometheusWindowSource(FakeClient(fail=requests.exceptions.ConnectionError("down")))
    with pytest.raises(TemporaryPrometheusError) as caught:
        source.fetch(0.0, 600.0)
    assert caught.value.query is not None
    assert "__name__" in caught.value.query
