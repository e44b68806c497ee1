"""The real-trace loaders on the bundled files, format detection, native CSV round trips."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.traces import (
    MOONCAKE_BLOCK_TOKENS,
    TraceFormat,
    bundled_info,
    bundled_trace,
    detect_format,
    list_bundled,
    load_azure_csv,
    load_bundled,
    load_mooncake_jsonl,
    load_native_csv,
    load_trace,
    poisson_trace,
    stable_int_hash,
    step_trace,
    write_native_csv,
)
from simulator.traces.lengths import FixedLengths
from simulator.traces.synthetic import SharedPrefix
from simulator.workload import RequestSpec, Trace


def _arrivals(trace: Trace) -> np.ndarray:
    return np.array([r.arrival_s for r in trace.requests])


def _mean_tokens(trace: Trace) -> tuple[float, float]:
    return (
        float(np.mean([r.input_tokens for r in trace.requests])),
        float(np.mean([r.output_tokens for r in trace.requests])),
    )


@pytest.fixture(scope="module")
def conv() -> Trace:
    return load_bundled("azure-conv-2023")


@pytest.fixture(scope="module")
def mooncake() -> Trace:
    return load_bundled("mooncake")


# name, rows, mean input, mean output, duration (s) — figures of the published files.
BUNDLED_REAL = [
    ("azure-conv-2023", 19_366, 1154.7, 211.1, 3501.7),
    ("azure-code-2023", 8_819, 2047.8, 27.9, 3435.9),
    ("mooncake", 3_993, 15325.5, 149.1, 1022.0),
]


@pytest.mark.parametrize(("name", "rows", "mean_in", "mean_out", "duration"), BUNDLED_REAL)
def test_bundled_real_traces_load_with_published_figures(
    name: str, rows: int, mean_in: float, mean_out: float, duration: float
) -> None:
    trace = load_bundled(name)
    arrivals = _arrivals(trace)
    got_in, got_out = _mean_tokens(trace)
    assert len(trace.requests) == rows == bundled_info(name).rows
    assert arrivals[0] == 0.0
    assert np.all(np.diff(arrivals) >= 0)
    assert got_in == pytest.approx(mean_in, abs=0.1)
    assert got_out == pytest.approx(mean_out, abs=0.1)
    assert trace.duration_s == pytest.approx(duration, abs=0.1)
    assert trace.name == name
    assert bundled_info(name).license in trace.meta["attribution"]


def test_azure_timestamps_keep_sub_microsecond_text_exactly(conv: Trace) -> None:
    # 18:15:46.6805900 → 18:15:50.9951690 and 18:15:51.2224670 in the file.
    assert conv.requests[1].arrival_s == pytest.approx(4.314579, abs=1e-9)
    assert conv.requests[2].arrival_s == pytest.approx(4.541877, abs=1e-9)
    assert conv.meta["start_time"].startswith("2023-11-16T18:15:46.68059")
    assert conv.requests[0] == RequestSpec(0.0, 374, 44)


def test_mooncake_hash_ids_become_prefix_units(mooncake: Trace) -> None:
    first = mooncake.requests[0]
    assert first.prefix_ids == tuple(range(79))
    assert first.prefix_unit_tokens == MOONCAKE_BLOCK_TOKENS
    assert first.input_tokens == 40160
    assert first.shared_prefix_tokens == 40160  # 79 blocks of 512 cover the whole prompt
    assert all(r.prefix_ids for r in mooncake.requests)


def test_bundled_loads_are_fast() -> None:
    start = time.perf_counter()
    load_azure_csv(bundled_trace("azure-conv-2023"))
    azure_s = time.perf_counter() - start
    start = time.perf_counter()
    load_mooncake_jsonl(bundled_trace("mooncake"))
    mooncake_s = time.perf_counter() - start
    assert azure_s < 1.0
    assert mooncake_s < 2.0


@pytest.mark.parametrize("name", ["servegen-m-large", "servegen-m-small"])
def test_servegen_bundles_load_with_documented_defaults(name: str) -> None:
    trace = load_bundled(name)
    arrivals = _arrivals(trace)
    # first 24 h compressed into 1 h at a mean of 5 rps: ≈ 18,000 ± 4σ (σ = √18,000 ≈ 134)
    assert abs(len(trace.requests) - 18_000) < 540
    assert arrivals[-1] < 3600.0
    assert np.all(np.diff(arrivals) >= 0)
    assert trace.meta["time_compression"] == "24"
    assert "ServeGen" in trace.meta["attribution"]


def test_list_bundled_names_and_paths() -> None:
    assert list_bundled() == [
        "azure-code-2023",
        "azure-conv-2023",
        "mooncake",
        "servegen-m-large",
        "servegen-m-small",
    ]
    for name in list_bundled():
        path = bundled_trace(name)
        assert path.is_file()
        assert path.read_bytes()[:2] == b"\x1f\x8b"  # shipped gzip-compressed
    with pytest.raises(ValueError, match="choose one of"):
        bundled_trace("azure-2024")


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("azure-conv-2023", TraceFormat.AZURE),
        ("azure-code-2023", TraceFormat.AZURE),
        ("mooncake", TraceFormat.MOONCAKE),
        ("servegen-m-large", TraceFormat.SERVEGEN),
        ("servegen-m-small", TraceFormat.SERVEGEN),
    ],
)
def test_detect_format_of_bundled_files(name: str, fmt: TraceFormat) -> None:
    assert detect_format(bundled_trace(name)) is fmt


@pytest.mark.parametrize(
    ("filename", "text", "fmt"),
    [
        ("a.csv", "arrival_s,input_tokens,output_tokens\n0,1,1\n", TraceFormat.NATIVE),
        ("a.txt", "arrival_s,input_tokens,output_tokens\n0,1,1\n", TraceFormat.NATIVE),
        ("a", '{"timestamp": 0, "input_length": 5, "output_length": 2}\n', TraceFormat.MOONCAKE),
        (
            "a.json",
            '{"timestamp": 0, "input_length": 5, "output_length": 2}\n',
            TraceFormat.MOONCAKE,
        ),
        (
            "a.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,5,2\n",
            TraceFormat.AZURE,
        ),
        (
            "a.csv",
            "timestamp_s,total_rate_rps,mean_input_tokens,mean_output_tokens\n0,1,5,5\n",
            TraceFormat.SERVEGEN,
        ),
    ],
)
@pytest.mark.parametrize("compress", [False, True])
def test_detect_format_by_name_and_content(
    tmp_path: Path, filename: str, text: str, fmt: TraceFormat, compress: bool
) -> None:
    data = text.encode()
    if compress:
        filename += ".gz"
        data = gzip.compress(data)
    path = tmp_path / filename
    path.write_bytes(data)
    assert detect_format(path) is fmt
    assert load_trace(path).requests


def test_gzip_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "plain-name.csv"
    path.write_bytes(gzip.compress(b"arrival_s,input_tokens,output_tokens\n1.5,10,2\n"))
    assert load_trace(path).requests == (RequestSpec(0.0, 10, 2),)


def test_unsorted_rows_are_sorted_stably_and_rebased(tmp_path: Path) -> None:
    native = tmp_path / "t.csv"
    native.write_text("arrival_s,input_tokens,output_tokens\n12.5,1,1\n10,2,2\n11,3,3\n10,4,4\n")
    trace = load_trace(native)
    assert [(r.arrival_s, r.input_tokens) for r in trace.requests] == [
        (0.0, 2),
        (0.0, 4),
        (1.0, 3),
        (2.5, 1),
    ]
    azure = tmp_path / "a.csv"
    azure.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:00:01.5,10,1\n2023-11-16T18:00:00.25,20,2\n2023-11-16 18:00:00,30,3\n"
    )
    assert [(r.arrival_s, r.input_tokens) for r in load_trace(azure).requests] == [
        (0.0, 30),
        (0.25, 20),
        (1.5, 10),
    ]
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(
        '{"timestamp": 500, "input_length": 1, "output_length": 1}\n\n'
        '{"timestamp": 200, "input_length": 2, "output_length": 1, "hash_ids": [3]}\n'
    )
    moon = load_trace(jsonl)
    assert [(r.arrival_s, r.prefix_ids) for r in moon.requests] == [(0.0, (3,)), (0.3, ())]


def test_native_round_trip_of_a_real_trace(tmp_path: Path, conv: Trace) -> None:
    path = write_native_csv(conv, tmp_path / "conv.csv.gz")
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert load_trace(path).requests == conv.requests


def test_native_round_trip_keeps_chained_prefixes(tmp_path: Path, mooncake: Trace) -> None:
    path = write_native_csv(mooncake, tmp_path / "moon.csv")
    assert path.read_text().splitlines()[0] == (
        "arrival_s,input_tokens,output_tokens,prefix_ids,prefix_unit_tokens"
    )
    assert load_native_csv(path).requests == mooncake.requests


def test_native_round_trip_of_generated_trace_with_every_field(tmp_path: Path) -> None:
    trace = poisson_trace(
        5.0,
        60.0,
        lengths=FixedLengths(10, 5),
        prefix=SharedPrefix(groups=3, tokens=64, fraction=0.5),
        sheddable_fraction=0.5,
        model="llama-3-8b",
        seed=3,
    )
    path = write_native_csv(trace, tmp_path / "gen.csv")
    header = path.read_text().splitlines()[0]
    assert header == "arrival_s,input_tokens,output_tokens,prefix_id,prefix_tokens,priority,model"
    # Generated traces start at their first arrival, not 0: keep the file's times.
    assert load_native_csv(path, rebase=False).requests == trace.requests
    rebased = load_native_csv(path)
    assert rebased.requests[0].arrival_s == 0.0
    assert len(rebased.requests) == len(trace.requests)


def test_native_optional_columns(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(
        "model,arrival_s,input_tokens,output_tokens,prefix_id,prefix_tokens,priority,note\n"
        "llama,0.0,1200,150,support-bot,800,0,x\n"
        ",0.35,90,40,,,-1,y\n"
        "llama,0.5,900,10,support-bot,800,,z\n"
        "llama,0.75,900,10,17,100,2,\n"
    )
    a, b, c, d = load_trace(path).requests
    assert a == RequestSpec(0.0, 1200, 150, 0, "llama", (stable_int_hash("support-bot"),), 800)
    assert b == RequestSpec(0.35, 90, 40, -1, None, (), 0)
    assert b.sheddable
    assert c.prefix_ids == a.prefix_ids
    assert c.priority == 0
    assert d.prefix_ids == (17,)


def test_stable_int_hash_is_fixed_and_numeric_ids_are_themselves() -> None:
    assert stable_int_hash("42") == stable_int_hash(42) == 42
    assert stable_int_hash("support-bot") == 3392236412613790121
    assert 0 <= stable_int_hash("another prompt") < 2**63


def test_write_native_csv_minimal_columns(tmp_path: Path) -> None:
    trace = step_trace([(10, 1.0)], lengths=FixedLengths(3, 4), seed=0)
    path = write_native_csv(trace, tmp_path / "t.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "arrival_s,input_tokens,output_tokens"
    assert lines[1].endswith(",3,4")


_model_names = st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9._/:-]{1,20}", fullmatch=True))


@st.composite
def _request_specs(draw: st.DrawFn) -> RequestSpec:
    ids = draw(st.lists(st.integers(0, 2**63 - 1), max_size=4).map(tuple))
    return RequestSpec(
        arrival_s=draw(st.floats(0, 1e7, allow_nan=False, allow_infinity=False)),
        input_tokens=draw(st.integers(1, 10**6)),
        output_tokens=draw(st.integers(1, 10**5)),
        priority=draw(st.integers(-5, 5)),
        model=draw(_model_names),
        prefix_ids=ids,
        prefix_unit_tokens=draw(st.integers(1, 4096)) if ids else 0,
    )


@settings(max_examples=60, deadline=None)
@given(specs=st.lists(_request_specs(), min_size=1, max_size=30))
def test_native_round_trip_property(
    tmp_path_factory: pytest.TempPathFactory, specs: list[RequestSpec]
) -> None:
    requests = tuple(sorted(specs, key=lambda r: r.arrival_s))
    trace = Trace("t", requests)
    path = write_native_csv(trace, tmp_path_factory.mktemp("rt") / "t.csv")
    assert load_native_csv(path, rebase=False).requests == requests


def test_prefix_units_of_zero_tokens_are_written_as_no_prefix(tmp_path: Path) -> None:
    trace = Trace("t", (RequestSpec(0.0, 10, 2, prefix_ids=(5,), prefix_unit_tokens=0),))
    path = write_native_csv(trace, tmp_path / "t.csv")
    assert path.read_text().splitlines()[0] == "arrival_s,input_tokens,output_tokens"
    assert load_native_csv(path).requests == (RequestSpec(0.0, 10, 2),)
