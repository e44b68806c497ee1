"""Which accelerators and models the simulator knows, and how each combination serves.

A pool in a scenario names an accelerator, a model and a GPU count; the simulator needs the step
time model, the KV-cache capacity, the frontend overhead and the load time of that combination.
They live in ``simulator/perf/data/*.yaml`` — public spec sheets (``accelerators.yaml``,
``models.yaml``) and the profiles that :mod:`simulator.perf.calibrate` fits to measurements or
derives from them (``profiles.yaml``). Every number there carries a ``source``.

KV capacity, as vLLM sizes it at start-up (``gpu_memory_utilization`` 0.9, 16-token blocks)::

    kv_blocks = floor((gpus·memory·0.9 − weights − gpus·reserve) / (16 · kv_bytes_per_token))

``weights`` is ``params·bytes_per_param`` (split over the GPUs under tensor parallelism; under
expert parallelism with data-parallel attention the non-expert weights are replicated on every
GPU). ``reserve`` per GPU is 1 GiB (CUDA context, NCCL, cuBLAS workspaces, CUDA graphs) plus the
activation peak of vLLM's start-up profiling forward pass of 8,192 tokens (see
:func:`activation_reserve_bytes`).

Worked example — Llama-3-8B on one H100 (80 GiB): ``80·0.9 = 72`` GiB, weights
``8.03e9·2 B = 14.96`` GiB, reserve ``1 + 1.15 = 2.15`` GiB, leaving 54.9 GiB; one token of KV is
``2·32 layers·8 heads·128·2 B = 128`` KiB, a block 2 MiB → 28,104 blocks (449,664 tokens).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml

from simulator.perf.model import StepTimeModel

GIB = 1024**3
BLOCK_TOKENS = 16
GPU_MEMORY_UTILIZATION = 0.9
NON_TORCH_RESERVE_BYTES = 1 * GIB
PROFILE_RUN_TOKENS = 8192
PROFILE_RUN_SEQS = 256
DEFAULT_LOAD_GBPS = 2.0
"""Weights load bandwidth of one replica, GB/s: safetensors from a node-local cache or a PVC."""
DEFAULT_CONTAINER_START_S = 45.0
"""Process start, CUDA init, torch.compile cache load and CUDA-graph capture, image cached, s."""
PARALLELISMS = ("tp", "ep")


class CatalogError(KeyError, ValueError):
    """An unknown accelerator, model or GPU count, or a malformed catalog file.

    A ``KeyError`` (lookups) and a ``ValueError`` (bad input) at once; the message lists the valid
    choices.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True, slots=True)
class AcceleratorSpec:
    """One accelerator's public spec sheet and an on-demand list price."""

    name: str
    """Lowercase id used in scenarios, e.g. ``h100``."""
    vendor: str
    memory_gib: float
    """Device memory; HBM capacities are binary, so the sheet's "80 GB" is 80 GiB."""
    peak_bf16_tflops: float
    """Dense (no sparsity) BF16 matrix peak, TFLOP/s."""
    hbm_tbps: float
    """Peak memory bandwidth, TB/s."""
    price_per_gpu_hour: float
    """On-demand list price of one accelerator, USD/h (a scenario can override it)."""
    derived: bool
    """True where a number is not read directly off a spec sheet or price list."""
    source: str
    price_source: str = ""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """The architecture numbers the step model and KV capacity need (from the model's config)."""

    name: str
    params_b: float
    """Total parameters, billions."""
    active_params_b: float
    """Parameters a token passes through (MoE: shared + routed top-k), billions."""
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    bytes_per_param: float
    moe: bool
    max_model_len: int
    heads: int = 0
    """Query heads (0: same as ``hidden // head_dim``)."""
    intermediate: int = 0
    """Dense MLP width (MoE: the dense layers' width)."""
    vocab: int = 0
    kv_bytes_per_elem: int = 2
    """KV-cache element size: 2 for a bf16 cache."""
    kv_latent_dim: int = 0
    """Multi-head latent attention: width of the one cached latent per layer (0 = plain GQA)."""
    expert_params_b: float = 0.0
    """Routed-expert parameters, billions (MoE); the rest is replicated per GPU under EP."""
    source: str = ""

    @property
    def kv_bytes_per_token(self) -> int:
        """Bytes of KV cache one token occupies: ``2·layers·kv_heads·head_dim·kv_bytes``.

        Llama-3-8B: ``2·32·8·128·2 = 131,072``. Under MLA one latent of ``kv_latent_dim`` per
        layer is cached instead (DeepSeek-V3: ``61·576·2 = 70,272``).
        """
        if self.kv_latent_dim:
            return self.layers * self.kv_latent_dim * self.kv_bytes_per_elem
        return 2 * self.layers * self.kv_heads * self.head_dim * self.kv_bytes_per_elem

    @property
    def weight_bytes(self) -> float:
        """``params·bytes_per_param``: Llama-3-8B in bf16 is ``8.03e9·2 = 16.06e9`` bytes."""
        return self.params_b * 1e9 * self.bytes_per_param

    @property
    def dense_weight_bytes(self) -> float:
        """Weights outside the routed experts (all of them for a dense model)."""
        return (self.params_b - self.expert_params_b) * 1e9 * self.bytes_per_param


def activation_reserve_bytes(model: ModelSpec, gpus: int, parallelism: str = "tp") -> float:
    """Per-GPU memory vLLM keeps out of the KV cache: 1 GiB plus the profiling forward's peak.

    The peak of a forward pass of 8,192 tokens on one GPU: the MLP's gate/up output
    (``tokens·2·intermediate/tp`` bf16 values) and its activation (``tokens·intermediate/tp``),
    four hidden-state buffers (``4·tokens·hidden``), and the sampler's logits and probabilities for
    256 sequences in fp32 (``2·256·vocab·4`` bytes). Llama-3-8B on one GPU:
    ``(8192·(3·14336 + 4·4096)·2 + 2·256·128256·4) B = 1.15`` GiB, so 2.15 GiB in all.
    """
    shard = gpus if parallelism == "tp" else 1
    inter = model.intermediate or 4 * model.hidden
    per_token = (3 * inter / shard + 4 * model.hidden) * 2
    sampler = 2 * PROFILE_RUN_SEQS * model.vocab * 4
    return NON_TORCH_RESERVE_BYTES + PROFILE_RUN_TOKENS * per_token + sampler


def weights_resident_bytes(model: ModelSpec, gpus: int, parallelism: str) -> float:
    """Weight bytes held across all GPUs of a replica (EP replicates the non-expert weights)."""
    if parallelism == "ep":
        return gpus * model.dense_weight_bytes + model.expert_params_b * 1e9 * model.bytes_per_param
    return model.weight_bytes


def kv_capacity_blocks(
    accelerator: AcceleratorSpec, model: ModelSpec, gpus: int, parallelism: str = "tp"
) -> int:
    """KV-cache capacity in 16-token blocks (see the module docstring); 0 when weights don't fit."""
    usable = gpus * accelerator.memory_gib * GIB * GPU_MEMORY_UTILIZATION
    free = (
        usable
        - weights_resident_bytes(model, gpus, parallelism)
        - gpus * activation_reserve_bytes(model, gpus, parallelism)
    )
    return max(0, math.floor(free / (BLOCK_TOKENS * model.kv_bytes_per_token)))


@dataclass(frozen=True, slots=True)
class ServingProfile:
    """One way to serve a model: accelerator × model × GPU count, with its calibrated timing."""

    accelerator: AcceleratorSpec
    model: ModelSpec
    gpus: int
    """Tensor-parallel degree (``tp``), or GPUs in one expert-parallel unit (``ep``)."""
    parallelism: str
    step: StepTimeModel
    kv_blocks: int
    """KV capacity in 16-token blocks (:func:`kv_capacity_blocks`)."""
    frontend_overhead_s: float
    """API-server time added to the client-observed TTFT (HTTP, tokenize, detokenize)."""
    derived: bool
    source: str

    @property
    def kv_tokens(self) -> int:
        return self.kv_blocks * BLOCK_TOKENS

    @property
    def price_per_hour(self) -> float:
        """On-demand cost of one replica, USD/h."""
        return self.gpus * self.accelerator.price_per_gpu_hour

    def load_time_s(
        self,
        load_gbps: float = DEFAULT_LOAD_GBPS,
        container_start_s: float = DEFAULT_CONTAINER_START_S,
    ) -> float:
        """Seconds from container start to ready: ``weights / bandwidth + container start``.

        Llama-3-8B at the defaults: ``16.06 GB / 2 GB/s + 45 s = 53`` s.
        """
        if load_gbps <= 0:
            raise ValueError(f"load_gbps must be > 0, got {load_gbps}")
        return self.model.weight_bytes / (load_gbps * 1e9) + container_start_s


class Catalog:
    """Accelerators, models and the serving profiles of their valid combinations."""

    def __init__(
        self,
        accelerators: Mapping[str, AcceleratorSpec],
        models: Mapping[str, ModelSpec],
        profiles: Iterable[ServingProfile],
    ) -> None:
        self.accelerators: Mapping[str, AcceleratorSpec] = MappingProxyType(dict(accelerators))
        self.models: Mapping[str, ModelSpec] = MappingProxyType(dict(models))
        table: dict[tuple[str, str, int], ServingProfile] = {}
        for p in profiles:
            key = (p.accelerator.name, p.model.name, p.gpus)
            if key in table:
                raise CatalogError(f"duplicate serving profile {key}")
            table[key] = p
        self._profiles = table

    @property
    def profiles(self) -> tuple[ServingProfile, ...]:
        return tuple(self._profiles[k] for k in sorted(self._profiles))

    def gpu_options(self, accelerator: str, model: str) -> tuple[int, ...]:
        """GPU counts with a profile for this accelerator and model (empty if none)."""
        acc, mod = accelerator.lower(), model.lower()
        return tuple(sorted(g for a, m, g in self._profiles if a == acc and m == mod))

    def profile(self, accelerator: str, model: str, gpus: int) -> ServingProfile:
        """The profile for ``gpus`` × ``accelerator`` serving ``model``.

        Raises :class:`CatalogError` naming the valid choices when the combination is unknown.
        """
        acc, mod = accelerator.lower(), model.lower()
        if acc not in self.accelerators:
            valid = ", ".join(sorted(self.accelerators))
            raise CatalogError(f"unknown accelerator {accelerator!r}; valid: {valid}")
        if mod not in self.models:
            raise CatalogError(f"unknown model {model!r}; valid: {', '.join(sorted(self.models))}")
        found = self._profiles.get((acc, mod, gpus))
        if found is None:
            options = self.gpu_options(acc, mod)
            if options:
                valid = f"valid GPU counts: {', '.join(map(str, options))}"
            else:
                with_model = sorted({a for a, m, _ in self._profiles if m == mod})
                valid = f"accelerators with a profile for {mod}: {', '.join(with_model) or 'none'}"
            raise CatalogError(f"no serving profile for {mod} on {gpus}x {acc}; {valid}")
        return found


def _require(entry: Mapping[str, Any], keys: Iterable[str], where: str) -> None:
    missing = [k for k in keys if k not in entry]
    if missing:
        raise CatalogError(f"{where}: missing {', '.join(missing)}")


def _accelerator(entry: Mapping[str, Any]) -> AcceleratorSpec:
    where = f"accelerators.yaml: {entry.get('name', '?')}"
    fields = AcceleratorSpec.__dataclass_fields__
    _require(entry, [f for f in fields if f != "price_source"], where)
    unknown = set(entry) - set(fields)
    if unknown:
        raise CatalogError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    return AcceleratorSpec(**entry)


def _model(entry: Mapping[str, Any]) -> ModelSpec:
    where = f"models.yaml: {entry.get('name', '?')}"
    fields = ModelSpec.__dataclass_fields__
    required = [f for f, spec in fields.items() if spec.default is MISSING]
    _require(entry, required, where)
    unknown = set(entry) - set(fields)
    if unknown:
        raise CatalogError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    return ModelSpec(**entry)


def _profile(
    entry: Mapping[str, Any],
    accelerators: Mapping[str, AcceleratorSpec],
    models: Mapping[str, ModelSpec],
) -> ServingProfile:
    where = f"profiles.yaml: {entry.get('accelerator', '?')}/{entry.get('model', '?')}"
    keys = ["accelerator", "model", "gpus", "parallelism", "step", "frontend_overhead_s"]
    _require(entry, [*keys, "derived", "source"], where)
    acc = accelerators.get(entry["accelerator"])
    mod = models.get(entry["model"])
    if acc is None or mod is None:
        raise CatalogError(f"{where}: accelerator or model not in the catalog")
    if entry["parallelism"] not in PARALLELISMS:
        raise CatalogError(f"{where}: parallelism must be one of {PARALLELISMS}")
    try:
        step = StepTimeModel(**entry["step"])
    except TypeError as e:
        raise CatalogError(f"{where}: bad step coefficients: {e}") from None
    gpus = int(entry["gpus"])
    blocks = kv_capacity_blocks(acc, mod, gpus, entry["parallelism"])
    if blocks * BLOCK_TOKENS < mod.max_model_len:
        raise CatalogError(
            f"{where}: {gpus} GPUs cannot hold one {mod.max_model_len}-token sequence"
        )
    return ServingProfile(
        accelerator=acc,
        model=mod,
        gpus=gpus,
        parallelism=entry["parallelism"],
        step=step,
        kv_blocks=blocks,
        frontend_overhead_s=float(entry["frontend_overhead_s"]),
        derived=bool(entry["derived"]),
        source=str(entry["source"]),
    )


def build_catalog(
    accelerators: Iterable[Mapping[str, Any]],
    models: Iterable[Mapping[str, Any]],
    profiles: Iterable[Mapping[str, Any]],
) -> Catalog:
    """A catalog from the parsed YAML documents (lists of entries)."""
    accs = {a.name: a for a in map(_accelerator, accelerators)}
    mods = {m.name: m for m in map(_model, models)}
    return Catalog(accs, mods, [_profile(p, accs, mods) for p in profiles])


def read_data_file(name: str) -> list[dict[str, Any]]:
    """The ``entries`` list of one bundled ``simulator/perf/data/<name>`` file."""
    text = (resources.files("simulator.perf") / "data" / name).read_text()
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise CatalogError(f"{name}: expected a mapping with an 'entries' list")
    return list(doc["entries"])


def load_specs() -> tuple[dict[str, AcceleratorSpec], dict[str, ModelSpec]]:
    """The bundled accelerator and model specs, without the profiles (for the calibration)."""
    accs = {a.name: a for a in map(_accelerator, read_data_file("accelerators.yaml"))}
    mods = {m.name: m for m in map(_model, read_data_file("models.yaml"))}
    return accs, mods


@functools.cache
def load_catalog() -> Catalog:
    """The bundled catalog (read once per process)."""
    return build_catalog(
        read_data_file("accelerators.yaml"),
        read_data_file("models.yaml"),
        read_data_file("profiles.yaml"),
    )
