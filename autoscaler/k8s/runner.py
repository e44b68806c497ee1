"""The controller's main loop: elect, tick on the clock, serve, and shut down cleanly.

Why separate from :class:`~autoscaler.k8s.controller.Controller`: the tick is a plain function of
the cluster (testable on its own); this loop adds *when* — every ``tick_s`` on the injected clock,
only while this replica holds the Lease, with the Lease renewed every ``retry_period_s`` in
between — and *until when*: SIGTERM or SIGINT sets the stop event, the loop finishes the tick in
progress, and the leader releases the Lease so a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from autoscaler.clock import Clock
from autoscaler.leader import LeaderElector
from autoscaler.logging import get_logger


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` (on the running loop)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def run_loop(
    tick: Callable[[], Any],
    clock: Clock,
    tick_s: float,
    stop: asyncio.Event,
    elector: LeaderElector | None = None,
    on_leading: Callable[[bool], None] | None = None,
    on_round: Callable[[bool], None] | None = None,
) -> int:
    """Tick every ``tick_s`` while leading (always, without an elector); returns ticks run.
    ``on_leading`` hears leadership changes, ``on_round`` every round (health heartbeats)."""
    log = get_logger("sloscaler.run")
    retry = elector.config.retry_period_s if elector is not None else tick_s
    next_tick = clock.now()
    ticks = 0
    leading = False
    try:
        while not stop.is_set():
            now_leading = elector.try_acquire_or_renew() if elector is not None else True
            if now_leading != leading:
                leading = now_leading
                if on_leading is not None:
                    on_leading(leading)
                if leading:
                    next_tick = clock.now()  # a new leader reconciles at once
            if on_round is not None:
                on_round(leading)
            now = clock.now()
            if leading and now >= next_tick:
                tick()
                ticks += 1
                next_tick = now + tick_s
                now = clock.now()
            wait = retry if not leading else min(retry, max(0.0, next_tick - now))
            await clock.sleep(wait)
    finally:
        if elector is not None and elector.release():
            log.info("lease_released_on_stop")
        if on_leading is not None and leading:
            on_leading(False)
    return ticks
