"""Leader election on a ``coordination.k8s.io/v1`` Lease: one active controller, hot standbys.

Why: the controller runs with several replicas for availability, but two writers of the same
scale subresources would fight. client-go's protocol, with time from the injected clock:

* the holder renews ``spec.renewTime`` every ``retry_period_s``; it is leader while its last
  successful renewal is younger than ``renew_deadline_s`` (it steps down on its own before
  anyone else may take over, since ``renew_deadline_s < lease_duration_s``);
* a candidate takes the Lease when it is free (no holder) or expired: not renewed for
  ``lease_duration_s``, counted from the Lease's ``renewTime`` — or, when that lies in the
  candidate's future (clock skew), from the moment the candidate first saw the record. Because
  the holder steps down after ``renew_deadline_s`` without a renewal, clocks may disagree by up
  to ``lease_duration_s − renew_deadline_s`` (5 s by default) before two replicas could act;
* every write is conditional on the ``resourceVersion`` just read, so of two candidates only one
  wins (the other gets 409 and stays standby); ``leaseTransitions`` counts changes of holder;
* on shutdown (SIGTERM) the leader *releases*: it clears ``holderIdentity`` and sets a 1 s
  duration, so a standby takes over at its next retry instead of waiting a full lease.

Example (defaults 15/10/2 s): the leader dies right after renewing at t = 100 s; a standby polling
every 2 s sees the Lease expire at 115 s and holds it from its first poll after that (≤ 117 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from autoscaler.clock import Clock
from autoscaler.k8s.errors import ConflictError, KubernetesError, NotFoundError
from autoscaler.k8s.timestamps import parse_rfc3339, rfc3339
from autoscaler.logging import get_logger

Obj = dict[str, Any]


class LeaseClient(Protocol):
    def get_lease(self, namespace: str, name: str) -> Obj: ...

    def create_lease(self, namespace: str, lease: Obj) -> Obj: ...

    def replace_lease(self, namespace: str, name: str, lease: Obj) -> Obj: ...


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    namespace: str
    identity: str  # unique per replica: the pod name
    name: str = "sloscaler-leader"
    lease_duration_s: float = 15.0  # a standby waits this long after the last renewal
    renew_deadline_s: float = 10.0  # the leader steps down if it could not renew for this long
    retry_period_s: float = 2.0  # how often to try to renew or acquire

    def __post_init__(self) -> None:
        if not 0 < self.retry_period_s < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError("need 0 < retry_period_s < renew_deadline_s < lease_duration_s")


class LeaderElector:
    """Call :meth:`try_acquire_or_renew` every ``retry_period_s``; act only while it is True."""

    def __init__(self, client: LeaseClient, clock: Clock, config: LeaseConfig) -> None:
        self.client = client
        self.clock = clock
        self.config = config
        self._leading = False
        self._last_renew: float | None = None
        self._observed: tuple[str | None, str | None] | None = None  # (holder, renewTime)
        self._observed_at = 0.0
        self.log = get_logger("sloscaler.leader")

    @property
    def is_leader(self) -> bool:
        """Leader now: last renewal younger than the renew deadline."""
        if not self._leading or self._last_renew is None:
            return False
        return self.clock.now() - self._last_renew < self.config.renew_deadline_s

    def _spec(self, now: float, previous: Obj | None) -> Obj:
        prev = previous or {}
        ours = prev.get("holderIdentity") == self.config.identity
        transitions = int(prev.get("leaseTransitions") or 0)
        return {
            "holderIdentity": self.config.identity,
            "leaseDurationSeconds": round(self.config.lease_duration_s),
            "acquireTime": prev.get("acquireTime") if ours else rfc3339(now, micro=True),
            "renewTime": rfc3339(now, micro=True),
            "leaseTransitions": transitions if (ours or not prev) else transitions + 1,
        }

    def _expired(self, spec: Obj, now: float) -> bool:
        holder = spec.get("holderIdentity")
        if not holder:
            return True
        record = (holder, spec.get("renewTime"))
        if record != self._observed:
            self._observed = record
            self._observed_at = now
        since = self._observed_at
        renew = spec.get("renewTime")
        if renew:
            t = parse_rfc3339(renew)
            if t <= now:  # trust the holder's renewTime unless it is in our future
                since = min(since, t)
        duration = float(spec.get("leaseDurationSeconds") or self.config.lease_duration_s)
        return now >= since + duration

    def try_acquire_or_renew(self) -> bool:
        """One round of the protocol; returns whether this replica leads now."""
        now = self.clock.now()
        cfg = self.config
        try:
            try:
                lease = self.client.get_lease(cfg.namespace, cfg.name)
            except NotFoundError:
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                    "spec": self._spec(now, None),
                }
                self.client.create_lease(cfg.namespace, body)
                return self._became_leader(now)
            spec = dict(lease.get("spec") or {})
            ours = spec.get("holderIdentity") == cfg.identity
            if not ours and not self._expired(spec, now):
                return self._lost("held by " + str(spec.get("holderIdentity")))
            lease["spec"] = self._spec(now, spec)
            self.client.replace_lease(cfg.namespace, cfg.name, lease)
            return self._became_leader(now)
        except ConflictError:
            return self._lost("another candidate wrote the Lease first")
        except KubernetesError as e:
            if e.reason == "AlreadyExists":
                return self._lost("another candidate created the Lease first")
            self.log.warning("lease_error", error=str(e), retryable=e.retryable)
            return self.is_leader  # keep leading until the renew deadline passes

    def _became_leader(self, now: float) -> bool:
        if not self._leading:
            self.log.info("leader_acquired", identity=self.config.identity, lease=self.config.name)
        self._leading = True
        self._last_renew = now
        return True

    def _lost(self, why: str) -> bool:
        if self._leading:
            self.log.warning("leader_lost", identity=self.config.identity, why=why)
        self._leading = False
        return False

    def release(self) -> bool:
        """Give the Lease up (on SIGTERM); True if it was ours and is now free."""
        if not self._leading:
            return False
        cfg = self.config
        now = self.clock.now()
        self._leading = False
        try:
            lease = self.client.get_lease(cfg.namespace, cfg.name)
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != cfg.identity:
                return False
            spec.update(
                holderIdentity=None,
                leaseDurationSeconds=1,
                renewTime=rfc3339(now, micro=True),
                acquireTime=rfc3339(now, micro=True),
            )
            lease["spec"] = {k: v for k, v in spec.items() if v is not None}
            self.client.replace_lease(cfg.namespace, cfg.name, lease)
        except KubernetesError as e:
            self.log.warning("lease_release_failed", error=str(e))
            return False
        self.log.info("leader_released", identity=cfg.identity)
        return True
