"""Capacity from the predictor service: the in-cluster controller's ``CapacitySource`` over HTTP.

Why this module exists: the Kustomize base deploys the predictor service next to the
controller, and the predictor is what knows how many requests per second one replica of an
(accelerator, role) serves within an SLO — learned from the cluster's own windows. Without this
adapter ``sloscaler run`` sizes every pool from the fixed ``--capacity`` table. This module asks
the service instead and keeps the table as the fallback for every answer the service cannot give.

**What is asked.** Per pool, ``POST /capacity`` (:mod:`predictor.service`) with the field names
of its ``CapacityRequest``: ``accelerator``, ``role`` (``aggregated``, ``prefill``, ``decode``),
the request mix ``isl``, ``osl``, ``prefix_hit``, the policy's objectives ``slo_ttft_ms`` and
``slo_tpot_ms``, and ``quantile`` when one is configured. The answer's ``rate_rps`` becomes the
per-replica capacity, its ``source`` (``learned``: the window model of (accelerator, role);
``fallback``: the service's request-level or analytic fallback) the capacity's source, and its
``at_capacity.ttft_ms``/``tpot_ms`` the predicted p90 latencies at that rate. Expert-parallel
pools are not asked (the service has no such role): the table answers for them.

**Mix grid and cache.** The decision core's mix is a smoothed mean that moves a little every
tick, so the mix is first put on a grid — ISL and OSL to two significant digits (at most 5 %
off), the prefix-hit ratio to the nearest 0.05 — and the service is asked for the grid point.
Example: ISL 1,024, OSL 187, hit 0.23 → 1,000, 190, 0.25. Answers are cached per (accelerator,
role, grid mix, SLO) for ``ttl_s`` (60 s), so the requests of a tick are bounded by the distinct
(accelerator, role, mix, SLO) of all policies — not by pods, pools or policies — and are 0 while
every answer is fresh: 100 pools on 2 accelerators under one mix cost 2 requests a minute.
Model status adds at most one ``GET /status`` per ``ttl_s``.

**Faults.** The client (:class:`HttpPredictorClient`) is the one place that knows httpx; each
failure becomes a :class:`PredictorFault`: ``unreachable``, ``timeout`` (``--predictor-timeout``),
``server_error`` (HTTP 5xx or 429), ``rejected`` (another 4xx, or a bad address),
``bad_response`` (HTTP 200 whose body is not the documented answer). The answer then comes from
the ``--capacity`` table (:class:`~autoscaler.k8s.sources.FixedLatencyModel`) and is kept for
``retry_after_s`` (15 s, one tick) before the service is asked again; after ``unreachable`` or
``timeout`` no request at all is sent for ``retry_after_s`` (the first failure ends a tick's
requests, so a dead service costs one timeout per tick, not one per key). A service that answers
but cannot (HTTP 503 with its ``NotReady`` reason: no window model and no profile to fall back
on) is ``not_ready``; the table answers and that answer is kept for ``ttl_s``. Every fault and
every ``not_ready`` is counted once per request in :attr:`PredictorCapacitySource.faults` and
handed to ``on_fault`` (the controller's ``sloscaler_capacity_source_errors_total{reason}``).

**ModelReady.** The controller asks :meth:`PredictorCapacitySource.model_status` after the
decision, which reports on the answers that decision used: ``True`` (``ModelTrained``) only when
every pool's capacity came from a learned model; otherwise ``False`` with the reason of the
worst answer — ``PredictorUnavailable`` (a fault), the service's ``NotReady`` reason (``NoModel``,
``UnknownSegment``, ``TooFewSamples``, ``NotMonotone``, …) when its fallback or the table
answered, ``AnalyticFallback`` for a role the service does not model — and a message naming the
pool. A decision that asked no capacity (no demand data this tick) is reported from ``GET
/status``'s window-model segments instead. The age is the time since the service loaded its
window model (``window_models.last_model_load``; the service does not report when it was
trained, so this is a lower bound); the service reports no coverage for window models, so
``coverage`` stays unknown.

**Predicted latency below and above capacity.** The service answers the latency *at* capacity
only, so :func:`anchored_latency` extends it with the table model's curve
``t(ρ) = t₀ / (1 − ρ/2)`` anchored there: ``ρ = r / c`` for a per-replica load ``r`` and
capacity ``c``, and ``t(1) = T_c`` (the answer's ``at_capacity``) gives ``t₀ = T_c / 2``, so
``t(r) = T_c / (2 − r/c)`` for ``r < 2c`` and infinite beyond. Example: capacity 12 rps with
p90 TTFT 450 ms and TPOT 30 ms there → at 6 rps 450 / 1.5 = 300 ms and 20 ms, at 12 rps 450 ms
and 30 ms, at 18 rps 900 ms and 60 ms, from 24 rps on infinite. An answer without a latency at
capacity (the service writes a non-finite one as ``null``) is anchored at the SLO, which the
capacity meets by construction. A capacity of 0 (even a trickle misses the SLO) predicts an
infinite latency at every load.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final, Literal, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autoscaler.clock import Clock
from autoscaler.http_faults import CALL_ERRORS, call_fault, status_fault
from autoscaler.k8s.sources import FixedLatencyModel, ModelStatus, PolicyRef
from autoscaler.logging import get_logger
from policies.types import Capacity, DemandMix, PoolSnapshot, SLOTarget

#: roles ``POST /capacity`` answers for (``CapacityRequest.role``)
SERVICE_ROLES: Final = frozenset({"aggregated", "prefill", "decode"})
READY_REASON: Final = "ModelTrained"
UNAVAILABLE_REASON: Final = "PredictorUnavailable"
FALLBACK_REASON: Final = "AnalyticFallback"
_CAMEL = r"^[A-Z][A-Za-z0-9]*$"


class PredictorFault(StrEnum):
    """Why a capacity answer came from the ``--capacity`` table. Append-only: the values are the
    ``reason`` label of ``sloscaler_capacity_source_errors_total``."""

    UNREACHABLE = "unreachable"
    """No HTTP answer: connection refused or reset, name not resolved."""
    TIMEOUT = "timeout"
    """No answer within the client timeout (``--predictor-timeout``)."""
    SERVER_ERROR = "server_error"
    """HTTP 5xx (other than the service's own 503 ``NotReady``) or 429."""
    REJECTED = "rejected"
    """Another HTTP 4xx (a request the service refuses, a wrong path) or an unusable address."""
    BAD_RESPONSE = "bad_response"
    """HTTP 200 whose body is not the service's documented answer."""
    NOT_READY = "not_ready"
    """The service answered 503 with its ``NotReady`` reason: nothing on its side can answer."""


#: faults after which the service is not asked at all for ``retry_after_s``
TRANSPORT_FAULTS: Final = frozenset({PredictorFault.UNREACHABLE, PredictorFault.TIMEOUT})


class PredictorError(Exception):
    """A request got no usable answer; ``fault`` says which kind of failure."""

    def __init__(self, fault: PredictorFault, message: str) -> None:
        super().__init__(message)
        self.fault = fault


# ------------------------------------------------------------------------------ the wire


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)


W = TypeVar("W", bound=_Wire)


class NotReadyBody(_Wire):
    """The service's ``{reason, message}`` of a model that cannot answer."""

    reason: Annotated[str, Field(pattern=_CAMEL)]
    message: str = ""


class AtCapacity(_Wire):
    """Predicted p90 latencies at the capacity (``null`` when the service had no finite one)."""

    ttft_ms: Annotated[float, Field(ge=0)] | None = None
    tpot_ms: Annotated[float, Field(ge=0)] | None = None


class CapacityBody(_Wire):
    """``POST /capacity``'s 200 answer (the fields this adapter reads)."""

    rate_rps: Annotated[float, Field(ge=0)]
    limited_by: str
    source: Literal["learned", "fallback"]
    fallback_model: str | None = None
    not_ready: NotReadyBody | None = None
    window_model_version: str | None = None
    at_capacity: AtCapacity


class _NotReadyAnswer(_Wire):
    detail: NotReadyBody


class WindowModelsStatus(_Wire):
    """``GET /status`` → ``window_models``."""

    version: str | None = None
    last_model_load: datetime | None = None
    segments: dict[str, str] = Field(default_factory=dict)  # "acc/role" → "ready" or a reason


class StatusBody(_Wire):
    """``GET /status`` (the part this adapter reads)."""

    window_models: WindowModelsStatus


class PredictorClient(Protocol):
    """What the source needs of the predictor service."""

    def capacity(self, request: Mapping[str, object]) -> CapacityBody | NotReadyBody:
        """The answer, or the service's reason for having none (HTTP 503); raises
        :class:`PredictorError` on every failure."""
        ...

    def status(self) -> StatusBody:
        """``GET /status``; raises :class:`PredictorError` on every failure."""
        ...


class HttpPredictorClient:
    """The predictor service over HTTP; the one place that knows httpx's exceptions. No retries
    (the next tick is the retry). ``transport`` lets tests put a fake at the transport seam."""

    def __init__(
        self, url: str, timeout_s: float = 1.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout_s, transport=transport)

    def _send(self, method: str, path: str, body: Mapping[str, object] | None) -> httpx.Response:
        try:
            return self._http.request(method, f"{self.url}{path}", json=body)
        except CALL_ERRORS as exc:
            reason, message = call_fault(exc)
            raise PredictorError(PredictorFault(reason), message) from None

    @staticmethod
    def _body(resp: httpx.Response, wire: type[W], what: str) -> W:
        """The response as ``wire``, or the fault: an error status, or a body that is not one."""
        bad = status_fault(resp)
        if bad is not None:
            raise PredictorError(PredictorFault(bad[0]), bad[1])
        try:
            return wire.model_validate_json(resp.content)
        except ValidationError as exc:
            raise PredictorError(
                PredictorFault.BAD_RESPONSE, f"not a {what} answer: {_first_error(exc)}"
            ) from None

    def capacity(self, request: Mapping[str, object]) -> CapacityBody | NotReadyBody:
        resp = self._send("POST", "/capacity", request)
        if resp.status_code == 503:
            try:
                return _NotReadyAnswer.model_validate_json(resp.content).detail
            except ValidationError:
                pass  # a 503 from something else (a proxy, an overloaded server)
        return self._body(resp, CapacityBody, "capacity")

    def status(self) -> StatusBody:
        return self._body(self._send("GET", "/status", None), StatusBody, "status")

    def close(self) -> None:
        self._http.close()


def _first_error(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


# ------------------------------------------------------------------------------ the math


def on_grid(mix: DemandMix) -> DemandMix:
    """The mix the service is asked for: ISL and OSL to two significant digits (OSL ≥ 1), the
    prefix-hit ratio to the nearest 0.05. Example: (1,024, 187, 0.23) → (1,000, 190, 0.25)."""

    def two_digits(x: float) -> float:
        return float(f"{x:.2g}") if math.isfinite(x) and x > 0 else 0.0

    hit = mix.prefix_hit_ratio if math.isfinite(mix.prefix_hit_ratio) else 0.0
    return DemandMix(
        two_digits(mix.input_tokens),
        max(1.0, two_digits(mix.output_tokens)),
        min(1.0, max(0.0, round(hit * 20) / 20)),
    )


def anchored_latency(at_capacity_s: float, capacity_rps: float, rps: float) -> float:
    """``T_c / (2 − r/c)``: the table model's curve through the latency ``T_c`` at capacity
    ``c`` (module doc). Example: ``T_c`` 450 ms, ``c`` 12 rps → 300 ms at 6 rps, 900 ms at 18,
    infinite from 24; ``c`` = 0 → infinite."""
    if capacity_rps <= 0:
        return math.inf
    rho = max(0.0, rps) / capacity_rps
    if rho >= 2:
        return math.inf
    return at_capacity_s / (2 - rho)


# ------------------------------------------------------------------------------ the source


@dataclass(frozen=True, slots=True)
class PredictorCapacityConfig:
    """Knobs of :class:`PredictorCapacitySource` (seconds)."""

    ttl_s: float = 60.0  # how long an answer is reused
    retry_after_s: float = 15.0  # after a fault: how long its table answer is reused
    quantile: float | None = None  # of the window p90 held to the SLO (None: the service's)
    max_entries: int = 4096  # cached answers kept at most (oldest dropped first)


@dataclass(frozen=True, slots=True)
class CapacityAnswer:
    """One pool's capacity as the decision used it, and where it came from."""

    rps: float
    ttft_s: float  # predicted p90 TTFT at ``rps``: the anchor of :func:`anchored_latency`
    tpot_s: float
    source: Literal["learned", "fallback"]
    reason: str  # ModelTrained when learned; else why not (CamelCase)
    message: str
    fault: PredictorFault | None = None  # what made the table answer, if it did

    @property
    def learned(self) -> bool:
        return self.source == "learned"


#: cache key: (accelerator, role, isl, osl, prefix_hit, slo_ttft_ms, slo_tpot_ms)
CacheKey = tuple[str, str, float, float, float, float, float]


def _severity(answer: CapacityAnswer) -> int:
    """Which non-learned answer names ModelReady's reason: a fault first, then the table, then
    the service's fallback, then a role the service does not model."""
    if answer.reason == UNAVAILABLE_REASON:
        return 0
    if answer.fault is PredictorFault.NOT_READY:
        return 1
    if answer.reason == FALLBACK_REASON:
        return 3
    return 2


class PolicyCapacityModel:
    """The ``CapacityModel`` one policy's decision uses in one tick: every capacity from
    :class:`PredictorCapacitySource` (cached), and the answers it gave, by pool, for
    ``ModelReady``."""

    def __init__(self, source: PredictorCapacitySource, policy: PolicyRef) -> None:
        self.source = source
        self.policy = policy
        self.answers: dict[str, CapacityAnswer] = {}

    def _slo(self) -> SLOTarget:
        p = self.policy
        return SLOTarget(p.ttft_objective_s or math.inf, p.tpot_objective_s or math.inf)

    def capacity(self, pool: PoolSnapshot, mix: DemandMix, slo: SLOTarget) -> Capacity:
        answer = self.source.answer(pool, mix, slo)
        self.answers[pool.name] = answer
        return Capacity(answer.rps, answer.ttft_s, answer.tpot_s, answer.source)

    def predict(
        self, pool: PoolSnapshot, mix: DemandMix, rps_per_replica: float
    ) -> tuple[float, float]:
        answer = self.answers.get(pool.name)
        if answer is None:
            answer = self.source.answer(pool, mix, self._slo())
        return (
            anchored_latency(answer.ttft_s, answer.rps, rps_per_replica),
            anchored_latency(answer.tpot_s, answer.rps, rps_per_replica),
        )


class PredictorCapacitySource:
    """:class:`~autoscaler.k8s.sources.CapacitySource` over the predictor service (module doc).

    ``requests`` counts the requests sent (capacity and status); ``faults`` every fault and
    ``not_ready`` answer since start, once per request.
    """

    def __init__(
        self,
        client: PredictorClient,
        table: FixedLatencyModel,
        clock: Clock,
        config: PredictorCapacityConfig | None = None,
        on_fault: Callable[[PredictorFault], None] | None = None,
    ) -> None:
        self.client = client
        self.table = table
        self.clock = clock
        self.config = config or PredictorCapacityConfig()
        self.on_fault = on_fault
        self.requests = 0
        self.faults: Counter[PredictorFault] = Counter()
        self._cache: dict[CacheKey, tuple[CapacityAnswer, float]] = {}
        self._status: tuple[StatusBody | PredictorError, float] | None = None
        self._down_until = -math.inf
        self._down: PredictorError | None = None
        self._models: dict[tuple[str, str], PolicyCapacityModel] = {}
        self.log = get_logger("sloscaler.capacity")

    # --- CapacitySource -------------------------------------------------------------------------

    def capacity_model(self, policy: PolicyRef) -> PolicyCapacityModel:
        model = PolicyCapacityModel(self, policy)
        self._models[policy.key] = model
        return model

    def model_status(self, policy: PolicyRef) -> ModelStatus:
        """ModelReady from the answers the policy's last decision used (module doc)."""
        model = self._models.get(policy.key)
        answers = dict(model.answers) if model is not None else {}
        if not answers:
            return self._status_from_service(policy)
        if all(a.learned for a in answers.values()):
            return ModelStatus(
                True,
                READY_REASON,
                f"the predictor's learned model answers the capacity of every pool "
                f"({', '.join(sorted(answers))})",
                self._age(),
            )
        pool, worst = min(
            ((name, a) for name, a in answers.items() if not a.learned),
            key=lambda item: (_severity(item[1]), item[0]),
        )
        others = sum(not a.learned for a in answers.values()) - 1
        more = f" (and {others} more pools without a learned model)" if others else ""
        return ModelStatus(False, worst.reason, f"pool {pool}: {worst.message}{more}"[:1000])

    # --- answers --------------------------------------------------------------------------------

    def answer(self, pool: PoolSnapshot, mix: DemandMix, slo: SLOTarget) -> CapacityAnswer:
        """One pool's capacity: cached, asked, or from the table (module doc)."""
        if pool.role not in SERVICE_ROLES:
            return self._table(
                pool, mix, FALLBACK_REASON, f"the predictor has no {pool.role} role", None
            )
        grid = on_grid(mix)
        slo_ttft_ms, slo_tpot_ms = round(slo.ttft_s * 1000, 6), round(slo.tpot_s * 1000, 6)
        key: CacheKey = (
            pool.accelerator,
            pool.role,
            grid.input_tokens,
            grid.output_tokens,
            grid.prefix_hit_ratio,
            slo_ttft_ms,
            slo_tpot_ms,
        )
        now = self.clock.now()
        cached = self._cache.get(key)
        if cached is not None and now < cached[1]:
            return cached[0]
        if now < self._down_until and self._down is not None:
            return self._unavailable(pool, mix, self._down)
        request: dict[str, object] = {
            "accelerator": pool.accelerator,
            "role": pool.role,
            "isl": grid.input_tokens,
            "osl": grid.output_tokens,
            "prefix_hit": grid.prefix_hit_ratio,
            "slo_ttft_ms": slo_ttft_ms,
            "slo_tpot_ms": slo_tpot_ms,
        }
        if self.config.quantile is not None:
            request["quantile"] = self.config.quantile
        self.requests += 1
        try:
            got = self.client.capacity(request)
        except PredictorError as e:
            self._fault(e.fault, e, what=f"{pool.accelerator}/{pool.role}")
            if e.fault in TRANSPORT_FAULTS:
                self._down_until, self._down = now + self.config.retry_after_s, e
            answer = self._unavailable(pool, mix, e)
            self._keep(key, answer, now + self.config.retry_after_s)
            return answer
        if isinstance(got, NotReadyBody):
            self._fault(
                PredictorFault.NOT_READY, got.message, what=f"{pool.accelerator}/{pool.role}"
            )
            answer = self._table(
                pool,
                mix,
                got.reason,
                f"the predictor cannot answer ({got.message})",
                PredictorFault.NOT_READY,
            )
        else:
            answer = self._from_service(got, slo)
        self._keep(key, answer, now + self.config.ttl_s)
        return answer

    def _from_service(self, body: CapacityBody, slo: SLOTarget) -> CapacityAnswer:
        at = body.at_capacity
        ttft = slo.ttft_s if at.ttft_ms is None else at.ttft_ms / 1000
        tpot = slo.tpot_s if at.tpot_ms is None else at.tpot_ms / 1000
        if body.source == "learned":
            version = body.window_model_version or "(unversioned)"
            return CapacityAnswer(
                body.rate_rps,
                ttft,
                tpot,
                "learned",
                READY_REASON,
                f"window model {version}: {body.rate_rps:.2f} rps per replica "
                f"(limited by {body.limited_by})",
            )
        why = body.not_ready
        fallback = body.fallback_model or "analytic"
        return CapacityAnswer(
            body.rate_rps,
            ttft,
            tpot,
            "fallback",
            why.reason if why is not None else FALLBACK_REASON,
            f"the predictor's {fallback} fallback answers {body.rate_rps:.2f} rps per replica"
            + (f" ({why.message})" if why is not None and why.message else ""),
        )

    def _table(
        self,
        pool: PoolSnapshot,
        mix: DemandMix,
        reason: str,
        why: str,
        fault: PredictorFault | None,
    ) -> CapacityAnswer:
        cap = self.table.capacity(pool, mix, SLOTarget(math.inf, math.inf))
        return CapacityAnswer(
            cap.rps,
            cap.ttft_p90_s,
            cap.tpot_p90_s,
            "fallback",
            reason,
            f"{why}; the --capacity table answers {cap.rps:g} rps per replica",
            fault,
        )

    def _unavailable(self, pool: PoolSnapshot, mix: DemandMix, e: PredictorError) -> CapacityAnswer:
        return self._table(
            pool, mix, UNAVAILABLE_REASON, f"predictor {e.fault.value}: {e}", e.fault
        )

    def _keep(self, key: CacheKey, answer: CapacityAnswer, until: float) -> None:
        self._cache.pop(key, None)  # re-inserted last: the dict's order is the age order
        self._cache[key] = (answer, until)
        if len(self._cache) > self.config.max_entries:
            now = self.clock.now()
            for k in [k for k, (_a, t) in self._cache.items() if t <= now]:
                del self._cache[k]
            while len(self._cache) > self.config.max_entries:
                del self._cache[next(iter(self._cache))]

    def _fault(self, fault: PredictorFault, error: object, what: str) -> None:
        self.faults[fault] += 1
        if self.on_fault is not None:
            self.on_fault(fault)
        self.log.warning(
            "predictor_capacity_failed", reason=fault.value, what=what, error=str(error)
        )

    # --- /status --------------------------------------------------------------------------------

    def _service_status(self) -> StatusBody | PredictorError:
        now = self.clock.now()
        if self._status is not None and now < self._status[1]:
            return self._status[0]
        if now < self._down_until and self._down is not None:
            return self._down
        self.requests += 1
        try:
            body: StatusBody | PredictorError = self.client.status()
            until = now + self.config.ttl_s
        except PredictorError as e:
            self._fault(e.fault, e, what="status")
            if e.fault in TRANSPORT_FAULTS:
                self._down_until, self._down = now + self.config.retry_after_s, e
            body, until = e, now + self.config.retry_after_s
        self._status = (body, until)
        return body

    def _age(self) -> float | None:
        status = self._service_status()
        if isinstance(status, PredictorError):
            return None
        loaded = status.window_models.last_model_load
        return None if loaded is None else max(0.0, self.clock.now() - loaded.timestamp())

    def _status_from_service(self, policy: PolicyRef) -> ModelStatus:
        """ModelReady when the decision asked no capacity: the window-model segments of the
        policy's pools in ``GET /status``."""
        status = self._service_status()
        if isinstance(status, PredictorError):
            return ModelStatus(
                False,
                UNAVAILABLE_REASON,
                f"predictor {status.fault.value}: {status}; the --capacity table answers"[:1000],
            )
        windows = status.window_models
        missing: list[tuple[str, str]] = []
        for ref in policy.pools:
            if ref.role not in SERVICE_ROLES:
                missing.append((FALLBACK_REASON, f"pool {ref.pool}: no {ref.role} role"))
                continue
            state = windows.segments.get(f"{ref.accelerator}/{ref.role}")
            if state == "ready":
                continue
            reason = state or ("NoModel" if windows.version is None else "UnknownSegment")
            if not _is_camel(reason):
                reason = "NotReady"
            missing.append(
                (reason, f"pool {ref.pool}: no ready window model for {ref.accelerator}/{ref.role}")
            )
        if not missing:
            loaded = windows.last_model_load
            age = None if loaded is None else max(0.0, self.clock.now() - loaded.timestamp())
            return ModelStatus(
                True,
                READY_REASON,
                f"window model {windows.version} is ready for every pool (no capacity was "
                "asked this tick)",
                age,
            )
        reason = missing[0][0]
        return ModelStatus(
            False,
            reason,
            ("; ".join(m for _r, m in missing) + " (no capacity asked this tick)")[:1000],
        )


def _is_camel(text: str) -> bool:
    return bool(text) and text[0].isupper() and text.isalnum()


__all__ = [
    "SERVICE_ROLES",
    "TRANSPORT_FAULTS",
    "CapacityAnswer",
    "CapacityBody",
    "HttpPredictorClient",
    "PolicyCapacityModel",
    "PredictorCapacityConfig",
    "PredictorCapacitySource",
    "PredictorClient",
    "PredictorError",
    "PredictorFault",
    "StatusBody",
    "anchored_latency",
    "on_grid",
]
