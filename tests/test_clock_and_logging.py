"""The injected clock and the structured log configuration."""

from __future__ import annotations

import asyncio
import io
import json

import pytest

from autoscaler.clock import VirtualClock, WallClock
from autoscaler.logging import configure, get_logger


def test_virtual_clock_moves_only_when_told() -> None:
    clock = VirtualClock(100.0)
    assert clock.now() == 100.0
    clock.advance(5.0)
    asyncio.run(clock.sleep(10.0))
    assert clock.now() == 115.0
    with pytest.raises(ValueError, match="backwards"):
        clock.set(1.0)


def test_wall_clock_reads_real_time() -> None:
    a = WallClock().now()
    assert a > 1.7e9  # seconds since the epoch, after 2023


@pytest.fixture(autouse=True)
def quiet_afterwards():
    yield
    configure("warning")


def test_logs_are_json_lines_when_not_on_a_terminal() -> None:
    out = io.StringIO()
    configure("info", stream=out)
    get_logger("t").info("decision", pool="p", replicas=3)
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert line["event"] == "decision"
    assert line["pool"] == "p"
    assert line["replicas"] == 3
    assert line["level"] == "info"


def test_console_rendering_when_asked() -> None:
    out = io.StringIO()
    configure("info", json=False, stream=out)
    get_logger("t").info("decision", pool="p")
    text = out.getvalue()
    assert "decision" in text
    assert "pool=p" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.strip().splitlines()[-1])
