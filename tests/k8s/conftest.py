"""Fixtures for the Kubernetes tests: the fake API server (real HTTP) with the CRDs installed."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from autoscaler.clock import VirtualClock
from autoscaler.crd import crd_manifest
from autoscaler.k8s.fake_apiserver import FakeApiServer
from autoscaler.k8s.fake_crds import httproute_crd, leaderworkerset_crd
from autoscaler.logging import configure
from tests.fault_server import Answer, FaultServer, fault_servers

START = 1_800_000_000.0  # 2027-01-15, a fixed virtual epoch


@pytest.fixture(autouse=True)
def _logging_to_the_current_stderr() -> Iterator[None]:
    """A CLI test configures logging onto its runner's stream, closed after it; restore."""
    configure("info")
    yield
    configure("info")


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
def fake(clock: VirtualClock) -> Iterator[FakeApiServer]:
    with FakeApiServer(clock) as server:
        for crd in (crd_manifest(), httproute_crd(), leaderworkerset_crd()):
            server.store.put(crd)
        yield server


@pytest.fixture
def api(fake: FakeApiServer) -> Iterator[client.ApiClient]:
    with client.ApiClient(fake.configuration()) as api_client:
        yield api_client


@pytest.fixture
def fault_server() -> Iterator[Callable[[Answer], FaultServer]]:
    """Loopback servers answering what the test says (errors, garbage, a hang until the end)."""
    with fault_servers() as start:
        yield start
