"""Which controller drives a simulated run, by policy name.

``static`` keeps the scenario's replicas (no controller). The SLO policy and the baselines plug in
here as they are built.
"""

from __future__ import annotations

from collections.abc import Callable

from simulator.control import Controller
from simulator.scenario import Scenario

ControllerFactory = Callable[[Scenario], Controller | None]

POLICIES: dict[str, ControllerFactory] = {
    "static": lambda scenario: None,
}


def make_controller(name: str, scenario: Scenario) -> Controller | None:
    """The controller for policy ``name``; raises ``ValueError`` naming the valid policies."""
    try:
        factory = POLICIES[name]
    except KeyError:
        raise ValueError(
            f"--policy: unknown policy {name!r}; choose one of {', '.join(POLICIES)}"
        ) from None
    return factory(scenario)
