"""Leader election on a Lease through the fake API server: one leader, failover, release."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from kubernetes import client

from autoscaler.clock import VirtualClock
from autoscaler.k8s.client import KubeCluster
from autoscaler.k8s.fake_apiserver import FakeApiServer
from autoscaler.k8s.runner import install_stop_signals, run_loop
from autoscaler.leader import LeaderElector, LeaseConfig

NS = "sloscaler-system"


def _elector(api: client.ApiClient, clock: VirtualClock, identity: str) -> LeaderElector:
    return LeaderElector(KubeCluster(api), clock, LeaseConfig(NS, identity))


def _lease(api: client.ApiClient) -> dict:
    return dict(
        client.CustomObjectsApi(api).get_namespaced_custom_object(
            "coordination.k8s.io", "v1", NS, "leases", "sloscaler-leader"
        )["spec"]
    )


def test_one_leader_and_a_standby(api: client.ApiClient, clock: VirtualClock) -> None:
    a, b = _elector(api, clock, "a"), _elector(api, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    for _ in range(20):  # the leader keeps renewing; the standby never gets in
        clock.advance(2)
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    spec = _lease(api)
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0


def test_standby_takes_over_within_the_lease_duration(
    api: client.ApiClient, clock: VirtualClock
) -> None:
    a, b = _elector(api, clock, "a"), _elector(api, clock, "b")
    assert a.try_acquire_or_renew()
    last_renew = clock.now()
    took_over = None
    while clock.now() < last_renew + 30:  # a stops renewing; b polls every 2 s
        clock.advance(2)
        if b.try_acquire_or_renew():
            took_over = clock.now()
            break
    assert took_over is not None
    assert last_renew + 15 <= took_over <= last_renew + 15 + 2
    assert not a.is_leader  # past its renew deadline a no longer considers itself leader
    assert not a.try_acquire_or_renew()
    spec = _lease(api)
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1


def test_release_lets_the_standby_in_at_once(api: client.ApiClient, clock: VirtualClock) -> None:
    a, b = _elector(api, clock, "a"), _elector(api, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert a.release()
    assert "holderIdentity" not in _lease(api)
    clock.advance(2)
    assert b.try_acquire_or_renew()


def test_racing_candidates_one_wins(
    api: client.ApiClient, clock: VirtualClock, fake: FakeApiServer
) -> None:
    a, b = _elector(api, clock, "a"), _elector(api, clock, "b")
    assert a.try_acquire_or_renew()
    assert a.release()
    # b writes between c's read and c's write: c gets 409 and stays standby
    c = _elector(api, clock, "c")
    fake.before(
        "PUT",
        r"/leases/sloscaler-leader$",
        lambda store: (b.try_acquire_or_renew(), None)[1],
    )
    assert not c.try_acquire_or_renew()
    assert _lease(api)["holderIdentity"] == "b"


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="retry_period_s"):
        LeaseConfig(NS, "a", lease_duration_s=5, renew_deadline_s=10)


def test_run_loop_ticks_only_while_leading_and_releases_on_sigterm(
    api: client.ApiClient, clock: VirtualClock
) -> None:
    leader, standby = _elector(api, clock, "a"), _elector(api, clock, "b")
    ticks: list[float] = []
    standby_ticks: list[float] = []

    async def main() -> tuple[int, int]:
        stop = asyncio.Event()
        install_stop_signals(stop)

        def tick() -> None:
            ticks.append(clock.now())
            assert not standby.try_acquire_or_renew()  # never two leaders
            if len(ticks) == 3:
                os.kill(os.getpid(), signal.SIGTERM)

        n = await run_loop(tick, clock, 15.0, stop, leader)
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().remove_signal_handler(sig)
        stop2 = asyncio.Event()

        def standby_tick() -> None:
            standby_ticks.append(clock.now())
            stop2.set()

        m = await run_loop(standby_tick, clock, 15.0, stop2, standby)
        return n, m

    n, m = asyncio.run(main())
    assert n == 3
    assert ticks[1] - ticks[0] == pytest.approx(15.0)
    assert m == 1
    assert standby_ticks[0] - ticks[-1] <= 15.0  # released: no waiting out a full lease
