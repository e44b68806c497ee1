"""P/D KV transfer profiles: the formula, lookups, and magnitudes against Vidur's measurements."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from simulator.perf.catalog import CatalogError
from simulator.perf.transport import TransportProfile, transport, transports

SEND_RECV = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "data"
    / "calibration"
    / "vidur_network"
    / "h100_dgx"
    / "send_recv.csv"
)


def test_transfer_time_formula():
    t = TransportProfile("x", latency_s=2e-5, bandwidth_bytes_s=18e9, source="test")
    nbytes = 2000 * 131_072  # a 2,000-token Llama-3-8B prompt
    assert t.transfer_time_s(nbytes) == pytest.approx(2e-5 + nbytes / 18e9)
    assert t.transfer_time_s(0) == 0.0


def test_invalid_profiles_are_rejected():
    with pytest.raises(ValueError, match="bandwidth"):
        TransportProfile("x", latency_s=0.0, bandwidth_bytes_s=0.0, source="")


def test_bundled_profiles():
    assert set(transports()) == {"rdma", "tcp"}
    rdma, tcp = transport("rdma"), transport("tcp")
    assert transport("RDMA") is rdma
    assert rdma.source
    assert tcp.source
    assert rdma.bandwidth_bytes_s > 2 * tcp.bandwidth_bytes_s
    assert rdma.latency_s < tcp.latency_s
    nbytes = 262_144_000
    assert rdma.transfer_time_s(nbytes) < tcp.transfer_time_s(nbytes)


def test_unknown_transport_lists_the_valid_ones():
    with pytest.raises(CatalogError, match="valid: rdma, tcp"):
        transport("infiniband-xdr")


def test_rdma_is_consistent_with_vidur_cross_node_send_recv():
    """Small messages set the latency; 64 MiB sets the link rate (400 Gb/s NIC there)."""
    assert SEND_RECV.is_file(), f"shared measurements not found at {SEND_RECV}"
    with SEND_RECV.open() as f:
        rows = [r for r in csv.DictReader(f) if r["devices_per_node"] == "1"]
    small = sorted(
        float(r["time_stats.send_recv.median"]) / 1e3 for r in rows if int(r["size"]) <= 65536
    )
    big = [r for r in rows if int(r["size"]) == 64 * 2**20]
    measured_bw = 64 * 2**20 / (float(big[0]["time_stats.send_recv.median"]) / 1e3)
    rdma = transport("rdma")
    assert small[0] <= rdma.latency_s <= small[-1]
    # our 200 Gb/s RoCE NIC runs at the same fraction of line rate as the measured 400 Gb/s link
    assert rdma.bandwidth_bytes_s == pytest.approx(measured_bw / 2, rel=0.1)
