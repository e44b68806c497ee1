"""Step-time models for combinations nobody measured, scaled from ones that were.

Every coefficient of a calibrated profile belongs to one class, and a class scales one way:

=========================  =======================================  ===========================
class                      coefficients                             scales with
=========================  =======================================  ===========================
memory-bound               weight-streaming part of the linear      bytes per GPU × HBM
                           floor; ``kv_token``                      bandwidth ratio
compute-bound              ``linear_token``, ``prefill_token``,     FLOPs per GPU × peak
                           ``prefill_attn``                         BF16 FLOPs ratio
software overhead          ``c0``, ``prefill_step``,                kept as measured
                           ``decode_seq``, rest of the linear floor
interconnect               ``tp_fixed``, ``tp_token``               re-derived from the NCCL
                                                                    fit at the target TP
=========================  =======================================  ===========================

Where the target accelerator was profiled too (A100 next to H100 in Vidur), the measured
bandwidth and matmul-rate ratios replace the spec-sheet ones.

"Bytes per GPU" and "FLOPs per GPU" carry the model change (weights, ``2·active params`` per
token, ``4·layers·heads·head_dim`` per attention pair, KV bytes per token) and the TP change
(divide by the GPU count). The efficiency measured on the calibrated accelerator is kept: a
derived H200 streams weights at the fraction of peak the H100 reached.

The weight-streaming part of a calibrated floor is ``weights per GPU / effective bandwidth``,
the bandwidth Vidur measured for Llama-2-70B's linear layers on one GPU (H100: 2.51 TB/s, 75% of
peak); what the floor holds beyond it is overhead and is not scaled.

Worked example — Llama-3-8B on one H200 from one H100: the H100 floor is 5.26 ms, all of it
weight streaming (``16.06 GB / 2.51 TB/s = 6.39 ms`` ≥ 5.26) → ``5.26·3.35/4.8 = 3.67`` ms;
``c0`` (2.0 ms) is kept; ``linear_token`` 14.9 µs × 989.5/989.5 = 14.9 µs (same BF16 peak).
Llama-2-70B on 4 H100 → 4 H200: floor 24.2 ms, of which ``138 GB/4 / 2.51 TB/s = 13.7`` ms
streams weights → ``13.7·3.35/4.8 + 10.4 = 20.0`` ms.

Llama-3-70B profiles scale from the H100 Llama-3-70B profiles (TP 2/4/8), whose decode terms are
the fit to Argonne's vLLM runs at TP4 (:func:`.fitting.fit_argonne`); the fitted floor is all
weight streaming (14.0 ms at TP4), so 4 H200 get ``14.0·3.35/4.8 = 9.8`` ms plus the 0.3 ms
``c0``. Where two measurements cover one profile — the decode terms from one, the prefill terms
from another — :func:`combine` puts them together.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from simulator.perf.catalog import AcceleratorSpec, ModelSpec
from simulator.perf.model import StepTimeModel


def linear_params(model: ModelSpec) -> float:
    """Parameters of the transformer layers' linear projections (no embeddings, no LM head)."""
    heads = model.heads or model.hidden // model.head_dim
    qkv = model.hidden * (heads + 2 * model.kv_heads) * model.head_dim
    out = heads * model.head_dim * model.hidden
    mlp = 3 * model.hidden * model.intermediate
    return float(model.layers * (qkv + out + mlp))


def flops_per_token(model: ModelSpec) -> float:
    """Matmul FLOPs per token: ``2·active params``."""
    return 2.0 * model.active_params_b * 1e9


def attn_flops_per_pair(model: ModelSpec) -> float:
    """Attention FLOPs per (query, key) pair: ``QKᵀ`` and ``PV``, 2 FLOPs per MAC, all layers."""
    heads = model.heads or model.hidden // model.head_dim
    return 4.0 * model.layers * heads * model.head_dim


def compute_rate(accelerator: AcceleratorSpec, model: ModelSpec) -> float:
    """Peak matmul FLOP/s for the model's weights: BF16 peak, doubled for 1-byte (FP8) weights."""
    fp8 = 2.0 if model.bytes_per_param <= 1 else 1.0
    return accelerator.peak_bf16_tflops * 1e12 * fp8


@dataclass(frozen=True, slots=True)
class Basis:
    """A calibrated profile and what scaling it needs."""

    accelerator: AcceleratorSpec
    model: ModelSpec
    gpus: int
    step: StepTimeModel
    effective_hbm_bytes_s: float
    """Weight-streaming bandwidth Vidur measured on this accelerator."""
    source: str

    @property
    def floor_memory_s(self) -> float:
        """The weight-streaming part of the linear floor (at most the whole floor)."""
        streaming = self.model.weight_bytes / self.gpus / self.effective_hbm_bytes_s
        return min(self.step.linear_floor_s, streaming)

    @property
    def floor_overhead_s(self) -> float:
        return self.step.linear_floor_s - self.floor_memory_s


def scale_step(
    basis: Basis,
    accelerator: AcceleratorSpec,
    model: ModelSpec,
    gpus: int,
    tp: tuple[float, float],
    *,
    memory_ratio: float | None = None,
    compute_ratio: float | None = None,
) -> StepTimeModel:
    """The basis's step model moved to ``gpus`` × ``accelerator`` serving ``model``.

    ``tp`` is ``(tp_fixed_s, tp_token_s)`` at the target (0, 0 for one GPU). ``memory_ratio``
    and ``compute_ratio`` (basis speed / target speed) replace the spec-sheet ratios where both
    accelerators were measured (Vidur profiled A100 and H100 alike).
    """
    b = basis
    mem = memory_ratio or b.accelerator.hbm_tbps / accelerator.hbm_tbps
    flops = compute_ratio or compute_rate(b.accelerator, b.model) / compute_rate(accelerator, model)
    per_gpu = b.gpus / gpus
    weights = model.weight_bytes / b.model.weight_bytes * per_gpu * mem
    kv = model.kv_bytes_per_token / b.model.kv_bytes_per_token * per_gpu * mem
    compute = flops_per_token(model) / flops_per_token(b.model) * per_gpu * flops
    attn = attn_flops_per_pair(model) / attn_flops_per_pair(b.model) * per_gpu * flops
    s = b.step
    return StepTimeModel(
        c0_s=s.c0_s,
        prefill_token_s=s.prefill_token_s * compute,
        prefill_attn_s=s.prefill_attn_s * attn,
        decode_seq_s=s.decode_seq_s,
        kv_token_s=s.kv_token_s * kv,
        tp_fixed_s=tp[0],
        tp_token_s=tp[1],
        linear_floor_s=b.floor_memory_s * weights + b.floor_overhead_s,
        linear_token_s=s.linear_token_s * compute,
        prefill_step_s=s.prefill_step_s,
    )


PREFILL_TERMS = ("prefill_token_s", "prefill_attn_s", "prefill_step_s", "linear_token_s")
"""The compute-bound terms a prefill is made of: what a prefill measurement pins down."""


def combine(decode: StepTimeModel, prefill: StepTimeModel) -> StepTimeModel:
    """``decode``'s step constant, per-sequence, KV and TP terms with ``prefill``'s
    :data:`PREFILL_TERMS`.

    Example: H100 TP8 Llama-3-70B takes its decode terms from the Argonne TP4 fit moved to 8 GPUs
    and its prefill terms from Splitwise's TP8 prefill measurements (Llama-2-70B, same layers).
    """
    return replace(decode, **{k: getattr(prefill, k) for k in PREFILL_TERMS})


@dataclass(frozen=True, slots=True)
class WideEpTarget:
    """What a wide expert-parallel unit is calibrated to reach (llm-d 0.3 release figure)."""

    output_tokens_per_gpu_s: float = 2200.0
    decode_batch_per_gpu: int = 128
    """Sequences decoding on each GPU (data-parallel attention rank) at that throughput."""
    context_tokens: int = 2048
    """Mean context of those sequences."""


def wide_ep_step(
    basis: Basis,
    accelerator: AcceleratorSpec,
    model: ModelSpec,
    gpus: int,
    comm_per_token_gpu_s: float,
) -> StepTimeModel:
    """A wide-EP unit of ``gpus`` GPUs as one engine: data-parallel attention, EP experts.

    Each GPU runs attention for its own ``D/gpus`` sequences and streams its share of the
    weights (every non-expert weight, ``1/gpus`` of the experts); tokens are dispatched to and
    combined from the experts over the network at ``comm_per_token_gpu_s`` per token per GPU.
    Unit-level coefficients are per-GPU costs divided by ``gpus`` (the GPUs work in parallel).
    Memory and compute efficiencies are the basis's (a dense model on the calibrated GPU).
    """
    b = basis
    hbm = b.effective_hbm_bytes_s * accelerator.hbm_tbps / b.accelerator.hbm_tbps
    dense_rate = flops_per_token(b.model) / b.gpus / b.step.linear_token_s
    efficiency = dense_rate / compute_rate(b.accelerator, b.model)
    rate = efficiency * compute_rate(accelerator, model)
    attn_rate = attn_flops_per_pair(b.model) / b.gpus / max(b.step.prefill_attn_s, 1e-30)
    attn_rate *= accelerator.peak_bf16_tflops / b.accelerator.peak_bf16_tflops
    weights_per_gpu = (
        model.dense_weight_bytes + model.expert_params_b * 1e9 * model.bytes_per_param / gpus
    )
    return StepTimeModel(
        c0_s=b.step.c0_s,
        prefill_token_s=comm_per_token_gpu_s / gpus,
        prefill_attn_s=attn_flops_per_pair(model) / attn_rate / gpus,
        decode_seq_s=comm_per_token_gpu_s / gpus + b.step.decode_seq_s / gpus,
        kv_token_s=model.kv_bytes_per_token / hbm / gpus,
        linear_floor_s=weights_per_gpu / hbm + b.floor_overhead_s,
        linear_token_s=flops_per_token(model) / rate / gpus,
        prefill_step_s=b.step.prefill_step_s,
    )


def wide_ep_comm_per_token(
    basis: Basis,
    accelerator: AcceleratorSpec,
    model: ModelSpec,
    gpus: int,
    target: WideEpTarget,
) -> float:
    """Per-token, per-GPU cost the dense physics leaves to reach ``target`` (EP all-to-all,
    expert load imbalance): ``(batch/throughput − physics step)/batch``.

    Example, DeepSeek-V3 on 16 H200 at 128 sequences × 2,048 tokens per GPU: the step must take
    ``128/2200 = 58.2`` ms; streaming 58 GB of weights per GPU and reading 18 GB of KV take about
    21 ms, plus 2 ms of step overhead, so about 0.27 ms per token per GPU is communication and
    imbalance.
    """
    free = wide_ep_step(basis, accelerator, model, gpus, 0.0)
    d = target.decode_batch_per_gpu * gpus
    physics = free.step_time(0, 0.0, d, d * target.context_tokens)
    wanted = target.decode_batch_per_gpu / target.output_tokens_per_gpu_s
    if wanted <= physics:
        raise ValueError(f"target {target} is faster than the memory/compute bound {physics:.4f} s")
    return (wanted - physics) / target.decode_batch_per_gpu
