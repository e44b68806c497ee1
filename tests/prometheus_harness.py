"""A real Prometheus on loopback for the integration tests: backfill, start, wait, stop.

Tests that need Prometheus mark themselves with :data:`requires_prometheus`; ``make test``
installs the Debian ``prometheus`` package (which also ships ``promtool``) when it is missing.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from simulator.metrics import VllmMetrics

requires_prometheus = [
    pytest.mark.prometheus,
    pytest.mark.skipif(
        shutil.which("prometheus") is None or shutil.which("promtool") is None,
        reason="needs the prometheus and promtool binaries (Debian package prometheus)",
    ),
]


def backfill(openmetrics: Path, data_dir: Path) -> None:
    """Load an OpenMetrics file into TSDB blocks under ``data_dir`` with promtool."""
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(data_dir)],
        check=True,
        capture_output=True,
        timeout=120,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(proc: subprocess.Popen[bytes], limit_s: float = 30.0) -> None:
    """Block on Prometheus's log until it says it is ready (no sleeping).

    Reads the pipe's file descriptor directly: a buffered ``readline`` would pull several log
    lines into Python's buffer, where ``select`` cannot see them, and miss the ready line.
    """
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    log = b""
    for _ in range(int(limit_s / 0.5)):
        readable, _, _ = select.select([fd], [], [], 0.5)
        if not readable:
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        log += chunk
        if b"Server is ready to receive web requests" in log:
            return
    raise RuntimeError(f"prometheus did not become ready:\n{log.decode(errors='replace')}")


@contextmanager
def running_prometheus(
    data_dir: Path, config_dir: Path, config: str = "global:\n  scrape_interval: 15s\n"
) -> Iterator[str]:
    """Serve ``data_dir`` with a real Prometheus on a free loopback port; yields its URL.

    Retention is unlimited so backfilled recordings dated in the past stay queryable. The
    server's stderr is drained by a thread once ready, so its log cannot fill the pipe.
    """
    path = config_dir / "prometheus.yml"
    path.write_text(config)
    port = free_port()
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--storage.tsdb.path={data_dir}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--config.file={path}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(proc)
        assert proc.stderr is not None
        # keep reading its log so a full pipe never blocks it (closing the pipe would kill it)
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fake_traffic(m: VllmMetrics, kv: float = 0.1) -> None:
    """Traffic for a recorded pod with no engine behind it, since the last call: 30 requests
    of 500 prompt / 100 output tokens, TTFT 50 ms, ITL 12 ms."""
    for _ in range(30):
        m.time_to_first_token.observe(0.05)
        m.inter_token_latency.observe(0.012, 99)
        m.record_finished_request(
            finish_reason="stop",
            arrival_s=0.0,
            queued_s=0.0,
            scheduled_s=0.01,
            first_token_s=0.05,
            last_token_s=1.238,
            prompt_tokens=500,
            generation_tokens=100,
        )
    m.prompt_tokens += 30 * 500
    m.generation_tokens += 30 * 100
    m.prefix_cache_queries += 15_000
    m.prefix_cache_hits += 3_000
    m.num_requests_running = 5
    m.kv_cache_usage_perc = kv
