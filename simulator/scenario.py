"""Scenarios: a cluster, a trace, SLOs and a policy in one YAML file.

A scenario is what users edit to ask "what would this do to my traffic". It is validated with
pydantic before anything runs, and every error names the field and the offending value, e.g.
``pools.0.accelerator: unknown accelerator 'h1000'; choose one of a100, gaudi3, h100, …``.
Bundled scenarios live in ``simulator/scenarios/*.yaml``; ``--scenario`` takes their name or a path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulator.engine import EngineConfig
from simulator.perf.catalog import CatalogError, load_catalog
from simulator.pods import PoolSpec, StartupSpec
from simulator.summary import SLO


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TraceModel(_Strict):
    """Where requests come from: exactly one of ``bundled``, ``path`` or ``generate``."""

    bundled: str | None = Field(None, description="name of a bundled trace (sloscaler traces)")
    path: str | None = Field(None, description="trace file, relative to the scenario file")
    generate: dict[str, Any] | None = Field(
        None,
        description="generator and its parameters: {kind: poisson|gamma|diurnal|step|servegen, …}",
    )
    start_s: float = Field(0.0, ge=0, description="skip arrivals before this offset, seconds")
    duration_s: float | None = Field(None, gt=0, description="keep this many seconds of the trace")

    @model_validator(mode="after")
    def _one_source(self) -> TraceModel:
        given = [k for k in ("bundled", "path", "generate") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of bundled, path, generate (got {given or 'none'})")
        return self


class SLOModel(_Strict):
    ttft_ms: float = Field(gt=0, description="time-to-first-token objective per request, ms")
    tpot_ms: float = Field(gt=0, description="time-per-output-token objective per request, ms")
    attainment: float = Field(
        0.99, gt=0, le=1, description="target fraction of requests meeting both objectives"
    )


class EngineModel(_Strict):
    max_num_batched_tokens: int = Field(8192, ge=1)
    max_num_seqs: int = Field(256, ge=1)
    max_model_len: int | None = Field(None, ge=16, description="default: the model's context")
    enable_prefix_caching: bool = True
    enable_chunked_prefill: bool = True
    scheduling_policy: Literal["fcfs", "priority"] = "fcfs"


class StartupModel(_Strict):
    pending_s: float = Field(0.0, ge=0, description="scheduling / node provisioning delay, s")
    container_start_s: float = Field(20.0, ge=0, description="image pull and process start, s")
    load_gbps: float = Field(2.0, gt=0, description="weight loading bandwidth, GB/s")


class PoolModel(_Strict):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    model: str
    role: Literal["aggregated", "prefill", "decode", "expert-parallel"] = "aggregated"
    accelerator: str
    gpus: int = Field(1, ge=1, description="GPUs per replica (TP degree, or EP unit size)")
    replicas: int = Field(1, ge=0, description="replicas at start (and for the static policy)")
    min_replicas: int = Field(0, ge=0)
    max_replicas: int = Field(64, ge=1)
    price_per_gpu_hour: float | None = Field(None, ge=0, description="default: catalog price")
    engine: EngineModel = EngineModel()
    startup: StartupModel = StartupModel()

    @model_validator(mode="after")
    def _bounds(self) -> PoolModel:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) < min_replicas ({self.min_replicas})"
            )
        return self


class GatewayModel(_Strict):
    scorer: str = "prefix-load"
    #: what the predicted-latency scorer predicts with: the predictor's request-level models
    #: learned online from the routed requests (the profile answers until they are ready), or
    #: the pools' calibrated profiles only
    latency_model: Literal["learned", "profile"] = "learned"
    queue_timeout_s: float = Field(300.0, gt=0)
    transport: Literal["tcp", "rdma"] = "rdma"


class PolicyModel(_Strict):
    name: str = "static"
    params: dict[str, Any] = Field(default_factory=dict)


class Scenario(_Strict):
    name: str
    description: str = ""
    seed: int = 0
    trace: TraceModel
    slo: SLOModel
    pools: list[PoolModel] = Field(min_length=1)
    gateway: GatewayModel = GatewayModel()
    policy: PolicyModel = PolicyModel()
    inventory: dict[str, int] = Field(default_factory=dict, description="GPUs per accelerator")
    sample_interval_s: float = Field(10.0, gt=0)
    source: str = Field("", exclude=True, description="file the scenario was read from")

    @field_validator("pools")
    @classmethod
    def _unique(cls, pools: list[PoolModel]) -> list[PoolModel]:
        names = [p.name for p in pools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate pool names: {', '.join(dupes)}")
        return pools

    @property
    def slo_spec(self) -> SLO:
        return SLO(self.slo.ttft_ms, self.slo.tpot_ms, self.slo.attainment)

    def pool_specs(self) -> list[PoolSpec]:
        """Resolve every pool against the accelerator/model catalog."""
        catalog = load_catalog()
        specs = []
        for i, p in enumerate(self.pools):
            try:
                profile = catalog.profile(p.accelerator, p.model, p.gpus)
            except CatalogError as e:
                raise ScenarioError(f"{self.source or self.name}: pools.{i}: {e}") from None
            eng = p.engine
            max_len = eng.max_model_len or profile.model.max_model_len
            price = p.price_per_gpu_hour
            if price is None:
                price = profile.accelerator.price_per_gpu_hour
            specs.append(
                PoolSpec(
                    name=p.name,
                    model=p.model,
                    role=p.role,
                    profile=profile,
                    engine=EngineConfig(
                        max_num_batched_tokens=eng.max_num_batched_tokens,
                        max_num_seqs=eng.max_num_seqs,
                        max_model_len=max_len,
                        enable_prefix_caching=eng.enable_prefix_caching,
                        enable_chunked_prefill=eng.enable_chunked_prefill,
                        scheduling_policy=eng.scheduling_policy,
                    ),
                    price_per_gpu_hour=price,
                    replicas=p.replicas,
                    min_replicas=p.min_replicas,
                    max_replicas=p.max_replicas,
                    startup=StartupSpec(
                        p.startup.pending_s, p.startup.container_start_s, p.startup.load_gbps
                    ),
                )
            )
        return specs


def _format_validation(source: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        value = e.get("input")
        shown = "" if isinstance(value, dict | list) else f" (value {value!r})"
        lines.append(f"{source}: {loc}: {e['msg']}{shown}")
    return "\n".join(lines)


def bundled_scenarios() -> list[str]:
    root = resources.files("simulator") / "scenarios"
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_scenario(name_or_path: str) -> Scenario:
    """Load a bundled scenario by name, or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ScenarioError(f"{name_or_path}: no such scenario file")
        text = path.read_text()
        source = str(path)
    else:
        res = resources.files("simulator") / "scenarios" / f"{name_or_path}.yaml"
        if not res.is_file():
            raise ScenarioError(
                f"unknown scenario {name_or_path!r}; bundled: {', '.join(bundled_scenarios())}"
            )
        text = res.read_text()
        source = f"{name_or_path} (bundled)"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ScenarioError(f"{source}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a scenario must be a YAML mapping")
    data["source"] = str(path.resolve()) if path.exists() else ""
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as e:
        raise ScenarioError(_format_validation(source, e)) from None
    scenario.pool_specs()  # resolve the catalog now, so errors surface before running
    return scenario
