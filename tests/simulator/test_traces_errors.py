"""Every malformed trace file raises TraceFormatError naming the file and the line to fix."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import pytest

from simulator.traces import TraceFormatError, load_trace

AZURE_HEAD = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
NATIVE_HEAD = "arrival_s,input_tokens,output_tokens\n"
SERVEGEN_HEAD = "timestamp_s,total_rate_rps,mean_input_tokens,mean_output_tokens\n"


def _moon(ts: object = 0, inp: object = 10, out: object = 2, extra: str = "") -> str:
    return f'{{"timestamp": {ts}, "input_length": {inp}, "output_length": {out}{extra}}}\n'


# file name, content, expected line, expected column (None: none), words in the message
CASES = [
    # unknown format
    ("a.csv", "foo,bar\n1,2\n", 1, None, "unknown trace format"),
    ("a.dat", "foo,bar\n1,2\n", 1, None, "unknown trace format"),
    # missing required columns
    ("a.csv", "TIMESTAMP,ContextTokens\n2023-11-16 18:00:00,5\n", 1, None, "'GeneratedTokens'"),
    ("a.csv", "arrival_s,input_tokens\n0,5\n", 1, None, "'output_tokens'"),
    ("a.csv", "timestamp_s,total_rate_rps\n0,5\n", 1, None, "'mean_input_tokens'"),
    ("a.jsonl", _moon() + '{"timestamp": 5, "input_length": 3}\n', 2, "output_length", "missing"),
    ("a.csv", NATIVE_HEAD.strip() + ",prefix_id\n0,1,1,sys\n", 1, None, "'prefix_tokens'"),
    # non-numeric values
    ("a.csv", NATIVE_HEAD + "0,10,2\n1,abc,2\n", 3, "input_tokens", "not a finite number"),
    ("a.csv", NATIVE_HEAD + "0,10,2\nsoon,10,2\n", 3, "arrival_s", "not a finite number"),
    ("a.csv", NATIVE_HEAD + "0,10,2\n1,,2\n", 3, "input_tokens", "missing value"),
    ("a.csv", NATIVE_HEAD + "0,10.5,2\n", 2, "input_tokens", "not an integer"),
    ("a.csv", NATIVE_HEAD + "0,10,inf\n", 2, "output_tokens", "not a finite number"),
    (
        "a.csv",
        AZURE_HEAD + "2023-11-16 18:00:00.1,5,2\nyesterday,5,2\n",
        3,
        "TIMESTAMP",
        "timestamp",
    ),
    ("a.csv", AZURE_HEAD + "2023-13-16 18:00:00.1,5,2\n", 2, "TIMESTAMP", "not a timestamp"),
    ("a.csv", AZURE_HEAD + "2023-11-16 18:00:00.1,5,two\n", 2, "GeneratedTokens", "not a finite"),
    ("a.csv", SERVEGEN_HEAD + "0,1,5,5\n600,x,5,5\n", 3, "total_rate_rps", "not a finite"),
    ("a.jsonl", _moon() + _moon(inp='"12"'), 2, "input_length", "not an integer"),
    ("a.jsonl", _moon() + _moon(ts='"noon"'), 2, "timestamp", "not a finite number"),
    ("a.jsonl", _moon(extra=', "hash_ids": [1, "b"]'), 1, "hash_ids", "not an integer"),
    ("a.jsonl", _moon() + "{not json\n", 2, None, "invalid JSON"),
    ("a.jsonl", "[1, 2]\n", 1, None, "JSON object"),
    (
        "a.csv",
        NATIVE_HEAD.strip() + ",prefix_ids,prefix_unit_tokens\n0,1,1,3 x,512\n",
        2,
        "prefix_ids",
        "integers",
    ),
    # negative tokens or times
    ("a.csv", NATIVE_HEAD + "0,10,2\n1,10,-3\n", 3, "output_tokens", "negative value"),
    ("a.csv", NATIVE_HEAD + "0,0,2\n", 2, "input_tokens", "at least 1"),
    ("a.csv", NATIVE_HEAD + "-1,10,2\n", 2, "arrival_s", "negative value"),
    ("a.csv", AZURE_HEAD + "2023-11-16 18:00:00.1,-5,2\n", 2, "ContextTokens", "negative value"),
    ("a.csv", SERVEGEN_HEAD + "-600,1,5,5\n0,1,5,5\n", 2, "timestamp_s", "negative value"),
    ("a.csv", SERVEGEN_HEAD + "0,-1,5,5\n", 2, "total_rate_rps", "negative value"),
    ("a.jsonl", _moon() + _moon(out=-1), 2, "output_length", "negative value"),
    ("a.jsonl", _moon(ts=-5), 1, "timestamp", "negative time"),
    # prefix tokens without an id and vice versa
    (
        "a.csv",
        NATIVE_HEAD.strip() + ",prefix_id,prefix_tokens\n0,1,1,sys,\n",
        2,
        "prefix_tokens",
        "required",
    ),
    (
        "a.csv",
        NATIVE_HEAD.strip() + ",prefix_id,prefix_tokens\n0,1,1,,5\n",
        2,
        "prefix_tokens",
        "without",
    ),
    # non-monotone where order carries meaning (ServeGen windows); elsewhere rows are sorted
    (
        "a.csv",
        SERVEGEN_HEAD + "0,1,5,5\n1200,1,5,5\n600,1,5,5\n",
        4,
        "timestamp_s",
        "strictly increasing",
    ),
    ("a.csv", SERVEGEN_HEAD + "0,1,5,5\n0,1,5,5\n", 3, "timestamp_s", "strictly increasing"),
    # empty traces
    ("a.csv", "", 1, None, "file is empty"),
    ("a.csv", "\n\n", 1, None, "file is empty"),
    ("a.csv", NATIVE_HEAD, 1, None, "empty"),
    ("a.csv", AZURE_HEAD + "\n  \n", 1, None, "empty"),
    ("a.jsonl", "\n", 1, None, "empty"),
    ("a.csv", SERVEGEN_HEAD + "0,0,,\n600,0,,\n", 2, None, "empty"),
    # structurally broken
    ("a.csv", NATIVE_HEAD + "0,1,1\n1,1,1,1\n", 3, None, "number of fields"),
]


@pytest.mark.parametrize(("filename", "text", "line", "column", "words"), CASES)
@pytest.mark.parametrize("compress", [False, True])
def test_malformed_file_names_file_and_line(
    tmp_path: Path,
    filename: str,
    text: str,
    line: int,
    column: str | None,
    words: str,
    compress: bool,
) -> None:
    data = text.encode()
    if compress:
        filename += ".gz"
        data = gzip.compress(data)
    path = tmp_path / filename
    path.write_bytes(data)
    with pytest.raises(TraceFormatError) as info:
        load_trace(path)
    err = info.value
    assert err.path == str(path)
    assert err.line == line
    assert err.column == column
    assert words in str(err)
    assert str(err).startswith(f"{path}:{line}: ")
    if column is not None:
        assert f"(column {column!r}" in str(err)


def test_message_shows_column_and_value(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,input_tokens,output_tokens\n0,10,2\n1,abc,2\n")
    with pytest.raises(TraceFormatError) as info:
        load_trace(path)
    assert str(info.value) == f"{path}:3: not a finite number (column 'input_tokens' value 'abc')"


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(TraceFormatError) as info:
        load_trace(path)
    assert info.value.line is None
    assert str(info.value) == f"{path}: file not found"


def test_broken_gzip_stream(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"arrival_s,input_tokens,output_tokens\n0,1,1\n")[:-12])
    with pytest.raises(TraceFormatError, match="gzip"):
        load_trace(path)


def test_binary_garbage_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"arrival_s,input_tokens,output_tokens\n0,1,1\n\xff\xfe,1,1\n")
    with pytest.raises(TraceFormatError) as info:
        load_trace(path)
    assert info.value.line == 3


def test_error_is_a_value_error_and_pickles() -> None:
    err = TraceFormatError("x.csv", "bad", line=4, column="c", value="v")
    assert isinstance(err, ValueError)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.path, copy.line, copy.column, copy.value, str(copy)) == (
        "x.csv",
        4,
        "c",
        "v",
        str(err),
    )
