"""Re-generate the serving profiles from the measurements: ``python -m simulator.perf.calibrate``.

The simulator's timing must come from measured vLLM behaviour, and anyone must be able to re-run
the fit and get the same numbers. This module reads ``<repo>/../shared/data`` (override with
``--data``), fits and derives every profile, and writes ``simulator/perf/data/profiles.yaml``
and ``transports.yaml``; ``--check`` prints how the shipped profiles match the measurements
(Splitwise MAPE per hardware and TP, the H100 / Llama-3-8B sweep and saturation, Argonne: the
fit of the Llama-3-70B profiles, TTFT/ITL, throughput across vendors).

Pipeline (each step's method is in the module named):

1. Vidur NCCL all-reduce → TP communication terms per (system, TP) (:mod:`.fitting`);
   Vidur per-operator times → linear-layer roofline and effective HBM bandwidth.
2. Splitwise → Llama-2-70B on A100 and H100 at TP 2/4/8 (calibrated, ``derived: false``).
3. inference-perf sweep → Llama-3-8B on one H100 (calibrated); the frontend overhead.
4. Argonne (vLLM of 2024) → Llama-3-70B: the decode terms of H100 TP4 and MI300X TP 1/2/4/8
   fitted to the whole-batch latencies (``derived: false``), prefill terms from Splitwise's 70B
   prefill on H100 (MI300X: × the MI300X/H100 prefill time Argonne measured, Fig. 21); H100
   TP2/TP8 and A100 TP2/4/8 combine the TP4 decode terms moved to their GPUs with Splitwise's
   prefill at that GPU and TP (``derived: true``).
5. Everything else by scaling a calibrated profile (:mod:`.derive`, ``derived: true``): other TP
   degrees, other accelerators by their spec sheets; Llama-3-70B from the H100 Llama-3-70B
   profiles, Llama-2-70B from the Splitwise fits.
6. DeepSeek-V3 wide expert parallelism on H200 (and H100), from the dense H100 efficiencies,
   calibrated to llm-d 0.3's 2.2k output tokens/s per H200.
7. Transports from Vidur's cross-node NCCL send/recv (RDMA) and stated NIC speeds (TCP).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from simulator.perf.catalog import (
    BLOCK_TOKENS,
    AcceleratorSpec,
    ModelSpec,
    kv_capacity_blocks,
    load_catalog,
    load_specs,
)
from simulator.perf.derive import (
    Basis,
    WideEpTarget,
    attn_flops_per_pair,
    combine,
    linear_params,
    scale_step,
    wide_ep_comm_per_token,
    wide_ep_step,
)
from simulator.perf.fitting import (
    Collective,
    fit_argonne,
    fit_collective,
    fit_roofline,
    fit_splitwise,
    fit_sweep,
    tp_terms,
)
from simulator.perf.measurements import (
    ARGONNE_HARDWARE,
    ARGONNE_MODELS,
    ArgonneRun,
    ArgonneTtft,
    default_data_dir,
    read_argonne,
    read_argonne_ttft,
    read_inference_perf,
    read_splitwise,
    read_vidur_linear,
    read_vidur_network,
)
from simulator.perf.model import StepTimeModel
from simulator.perf.validate import (
    argonne_checks,
    argonne_fit_errors,
    argonne_ttft_checks,
    splitwise_errors,
    sweep_checks,
    utilisation_checks,
    vendor_ratios,
)

DATA_PACKAGE_DIR = Path(__file__).resolve().parent / "data"
TP_DEGREES = (1, 2, 4, 8)
EP_UNITS = (16, 32)
NETWORK_SYSTEMS = {"h100": "h100_dgx", "a100": "a100_dgx"}
SPLITWISE_TP = (2, 4, 8)
LLAMA2_7B_TO_LLAMA3_8B = {
    "attn_pre_proj": (32 + 2 * 8) / (3 * 32),  # fused QKV: 8 KV heads instead of 32
    "attn_rope": (32 + 8) / (32 + 32),  # rotary on q and k heads
    "mlp_up_proj": 14336 / 11008,
    "mlp_act": 14336 / 11008,
    "mlp_down_proj": 14336 / 11008,
}
"""Vidur measured Llama-2-7B; Llama-3-8B's operators differ by these weight (= FLOP) ratios."""
RDMA_NIC_GBPS = 200.0
"""200 Gb/s RoCE, the common per-GPU NIC of cloud P/D deployments llm-d validated."""
VIDUR_CROSS_NODE_NIC_GBPS = 400.0
"""DGX H100 (Vidur's h100_dgx): one 400 Gb/s ConnectX-7 per GPU."""
TCP = {
    "latency_s": 100e-6,
    "bandwidth_bytes_s": 25e9 / 8,
    "source": (
        "stated assumption, no measurement available: kernel TCP (NIXL/UCX TCP transport) "
        "sustains about 25 Gb/s per transfer on a 100 GbE NIC; 100 us per transfer for "
        "connection-level round trips. Cross-check: Vidur's RDMA path is 6x faster "
        "(18 GB/s) with 5x lower latency"
    ),
}


@dataclass(frozen=True, slots=True)
class ProfileEntry:
    accelerator: str
    model: str
    gpus: int
    parallelism: str
    step: StepTimeModel
    frontend_overhead_s: float
    derived: bool
    source: str


@dataclass(frozen=True, slots=True)
class Calibration:
    profiles: tuple[ProfileEntry, ...]
    transports: tuple[dict[str, Any], ...]
    notes: Mapping[str, float]
    """Intermediate measured quantities, for the docs (effective bandwidths, EP comm, …)."""


def _sig(x: float, digits: int = 5) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.{digits}g}")


def _network(data_dir: Path) -> dict[tuple[str, int], Collective]:
    out = {}
    for hw, system in NETWORK_SYSTEMS.items():
        samples = read_vidur_network(data_dir, system, "all_reduce")
        for tp in (2, 4, 8):
            out[(hw, tp)] = fit_collective(samples, tp)
    return out


def _vidur_rates(data_dir: Path, model: ModelSpec) -> tuple[dict[str, float], dict[str, float]]:
    """Bytes/s and FLOP/s of Vidur's Llama-2-70B linear layers on one GPU, per accelerator.

    The roofline floor streams every weight once (effective HBM bandwidth); its per-token rate
    is ``2·params`` FLOPs (effective matmul rate).
    """
    bandwidth, flops = {}, {}
    for hw in NETWORK_SYSTEMS:
        roof = fit_roofline(read_vidur_linear(data_dir, hw, "Llama-2-70b-hf", 1), model.layers)
        bandwidth[hw] = linear_params(model) * model.bytes_per_param / roof.floor_s
        flops[hw] = 2 * linear_params(model) / roof.token_s
    return bandwidth, flops


def calibrate(data_dir: Path) -> Calibration:
    """Fit and derive every profile from the measurements in ``data_dir``."""
    accs, models = load_specs()
    l2 = models["llama-2-70b"]
    l3_8b = models["llama-3-8b"]
    network = _network(data_dir)
    hbm_eff, flops_eff = _vidur_rates(data_dir, l2)
    notes: dict[str, float] = {f"effective_hbm_tbps.{k}": v / 1e12 for k, v in hbm_eff.items()}
    notes.update({f"effective_matmul_tflops.{k}": v / 1e12 for k, v in flops_eff.items()})
    for (hw, tp), c in network.items():
        notes[f"all_reduce_latency_us.{hw}.tp{tp}"] = c.latency_s * 1e6
        notes[f"all_reduce_gbps.{hw}.tp{tp}"] = c.bandwidth_bytes_s / 1e9

    # 1. Llama-2-70B: Splitwise, per hardware and TP.
    runs = read_splitwise(data_dir)
    bases: dict[tuple[str, str, int], Basis] = {}
    entries: list[ProfileEntry] = []
    for hw in ("a100", "h100"):
        for tp in SPLITWISE_TP:
            linear = fit_roofline(read_vidur_linear(data_dir, hw, "Llama-2-70b-hf", tp), l2.layers)
            comm = tp_terms(l2.layers, l2.hidden, network[(hw, tp)])
            capacity = kv_capacity_blocks(accs[hw], l2, tp) * BLOCK_TOKENS
            mine = [r for r in runs if r.hardware == hw and r.tp == tp]
            fit = fit_splitwise(mine, linear, comm, capacity)
            notes[f"splitwise_fit_prefill_mape.{hw}.tp{tp}"] = fit.prefill_mape
            notes[f"splitwise_fit_decode_mape.{hw}.tp{tp}"] = fit.decode_mape
            source = (
                f"fit to Splitwise perf_model.csv (llama2-70b, {hw}-80gb, TP{tp}): {fit.runs} "
                f"configurations (median of repeats; {fit.excluded} whose batch exceeds the KV "
                "capacity excluded), robust least squares on relative error of prefill and "
                f"decode steps; linear_token_s from the Vidur mlp.csv roofline ({hw}, "
                f"Llama-2-70b-hf, TP{tp}); tp terms from Vidur all_reduce.csv "
                f"({NETWORK_SYSTEMS[hw]}, {tp} workers)"
            )
            bases[(hw, l2.name, tp)] = Basis(accs[hw], l2, tp, fit.step, hbm_eff[hw], source)
            entries.append(ProfileEntry(hw, l2.name, tp, "tp", fit.step, 0.0, False, source))

    # 2. Llama-3-8B on one H100: the inference-perf sweep.
    linear_8b = fit_roofline(
        read_vidur_linear(data_dir, "h100", "Llama-2-7b-hf", 1, LLAMA2_7B_TO_LLAMA3_8B),
        l3_8b.layers,
    )
    h100_tp2 = bases[("h100", l2.name, 2)].step
    attn_rate = attn_flops_per_pair(l2) / 2 / h100_tp2.prefill_attn_s
    notes["attention_tflops.h100"] = attn_rate / 1e12
    fixed = StepTimeModel(
        c0_s=0.0,
        prefill_token_s=0.0,
        prefill_attn_s=attn_flops_per_pair(l3_8b) / attn_rate,
        decode_seq_s=0.0,
        kv_token_s=l3_8b.kv_bytes_per_token / hbm_eff["h100"],
    )
    notes["vidur_llama3_8b_floor_ms"] = linear_8b.floor_s * 1e3
    notes["vidur_llama3_8b_token_us"] = linear_8b.token_s * 1e6
    sweep = fit_sweep(read_inference_perf(data_dir), fixed, linear_8b)
    frontend = sweep.frontend_overhead_s
    notes["sweep_fit_mape"] = sweep.mape
    notes["frontend_overhead_ms"] = frontend * 1e3
    source_8b = (
        "fit to the inference-perf H100 / Llama-3-8B / vLLM 0.11 rate sweep (summary_by_stage.csv,"
        " both variants, 14 stages: step a request sees = (latency p50 - TTFT p50)/(output - 1)) "
        "through a steady-state continuous-batching model (c0, linear floor and rate, "
        "prefill_token, decode_seq fitted; started from the Vidur mlp.csv roofline of h100 "
        "Llama-2-7b-hf TP1 with operators scaled to Llama-3-8B); kv_token_s = KV bytes / "
        "Vidur-measured H100 weight streaming bandwidth; prefill_attn_s from the Splitwise "
        "H100 TP2 attention rate; "
        "frontend overhead = stage-0 TTFT p50 - prefill step - wait"
    )
    bases[("h100", l3_8b.name, 1)] = Basis(
        accs["h100"], l3_8b, 1, sweep.step, hbm_eff["h100"], source_8b
    )
    entries.append(
        ProfileEntry("h100", l3_8b.name, 1, "tp", sweep.step, frontend, False, source_8b)
    )
    entries = [e if e.frontend_overhead_s else _with_frontend(e, frontend) for e in entries]

    # 3. Llama-3-70B: Argonne's vLLM runs (decode), Splitwise's 70B prefill.
    entries += _llama3_70b(data_dir, accs, models, network, hbm_eff, flops_eff, bases, notes)
    entries = [e if e.frontend_overhead_s else _with_frontend(e, frontend) for e in entries]

    # 4. Derived dense profiles.
    calibrated = {(e.accelerator, e.model, e.gpus) for e in entries}
    derived_keys = {(e.accelerator, e.model, e.gpus) for e in entries if e.derived}
    for acc in accs.values():
        for model in models.values():
            if model.moe:
                continue
            for tp in TP_DEGREES:
                key = (acc.name, model.name, tp)
                if key in calibrated or tp > model.kv_heads:
                    continue
                if kv_capacity_blocks(acc, model, tp) * BLOCK_TOKENS < model.max_model_len:
                    continue
                basis = _basis_for(bases, acc, model, tp)
                system = acc.name if acc.name in NETWORK_SYSTEMS else "h100"
                comm = tp_terms(model.layers, model.hidden, network.get((system, tp)))
                src = basis.accelerator.name
                measured = src != acc.name and acc.name in hbm_eff
                step = scale_step(
                    basis,
                    acc,
                    model,
                    tp,
                    comm,
                    memory_ratio=hbm_eff[src] / hbm_eff[acc.name] if measured else None,
                    compute_ratio=flops_eff[src] / flops_eff[acc.name] if measured else None,
                )
                ratios = (
                    f"Vidur-measured {src}/{acc.name} bandwidth and matmul-rate ratios"
                    if measured
                    else f"HBM ratio ({basis.accelerator.hbm_tbps}/{acc.hbm_tbps} TB/s) and BF16"
                    f" peak ratio ({basis.accelerator.peak_bf16_tflops}/{acc.peak_bf16_tflops} "
                    "TFLOP/s)"
                )
                name = f"{src} / {basis.model.name} / {basis.gpus} GPU profile"
                if (src, basis.model.name, basis.gpus) in derived_keys:
                    name += " (itself derived: see its source)"
                else:
                    name = "calibrated " + name
                source = (
                    f"derived from the {name}: memory-bound terms x bytes per GPU, compute-bound "
                    f"terms x FLOPs per GPU, both x {ratios}; software overhead kept"
                    + (
                        f"; tp terms from Vidur all_reduce.csv ({NETWORK_SYSTEMS[system]}, "
                        f"{tp} workers{'' if system == acc.name else ', H100 NVLink assumed'})"
                        if tp > 1
                        else ""
                    )
                )
                entries.append(
                    ProfileEntry(acc.name, model.name, tp, "tp", step, frontend, True, source)
                )

    # 5. DeepSeek-V3 wide expert parallelism.
    ds = models["deepseek-v3"]
    basis_8b = bases[("h100", l3_8b.name, 1)]
    target = WideEpTarget()
    comm_tok = wide_ep_comm_per_token(basis_8b, accs["h200"], ds, EP_UNITS[0], target)
    notes["wide_ep_comm_per_token_gpu_ms"] = comm_tok * 1e3
    for acc_name in ("h200", "h100"):
        acc = accs[acc_name]
        for gpus in EP_UNITS:
            if kv_capacity_blocks(acc, ds, gpus, "ep") * BLOCK_TOKENS < ds.max_model_len:
                continue
            step = wide_ep_step(basis_8b, acc, ds, gpus, comm_tok)
            source = (
                f"derived: DeepSeek-V3 wide-EP unit of {gpus} {acc_name} (data-parallel attention,"
                " expert parallel MoE) from active parameters (37B) and the H100 / Llama-3-8B "
                "profile's measured compute and HBM efficiencies (FP8 matmuls at 2x BF16 peak); "
                f"per-token EP all-to-all cost {comm_tok * 1e3:.3f} ms/GPU calibrated so that "
                f"{EP_UNITS[0]} H200 decoding {target.decode_batch_per_gpu} sequences of "
                f"{target.context_tokens} tokens per GPU reach {target.output_tokens_per_gpu_s:g}"
                " output tokens/s per GPU (llm-d 0.3 release: 'wide EP scaling to 2.2k tokens "
                "per second per H200 GPU')"
            )
            entries.append(
                ProfileEntry(acc_name, ds.name, gpus, "ep", step, frontend, True, source)
            )

    return Calibration(tuple(entries), _transports(data_dir, notes), notes)


def _with_frontend(e: ProfileEntry, frontend: float) -> ProfileEntry:
    return ProfileEntry(
        e.accelerator, e.model, e.gpus, e.parallelism, e.step, frontend, e.derived, e.source
    )


def _nearest_tp(tp: int) -> int:
    return min(SPLITWISE_TP, key=lambda g: (abs(math.log2(g / tp)), g))


def _basis_for(
    bases: Mapping[tuple[str, str, int], Basis], acc: AcceleratorSpec, model: ModelSpec, tp: int
) -> Basis:
    """The calibrated profile to scale: same model family and size, nearest TP, same GPU if any.

    Llama-3-70B scales from the H100 Llama-3-70B profiles (decode fitted to Argonne's vLLM);
    Llama-2-70B from the Splitwise fit on the same GPU (A100, H100) or on the H100.
    """
    if model.params_b < 20:
        return bases[("h100", "llama-3-8b", 1)]
    if ("h100", model.name, _nearest_tp(tp)) in bases:
        return bases[("h100", model.name, _nearest_tp(tp))]
    hw = acc.name if acc.name in NETWORK_SYSTEMS else "h100"
    return bases[(hw, "llama-2-70b", _nearest_tp(tp))]


ARGONNE_TTFT_MODEL = "llama-3-8b"
"""Argonne's TTFT table (Fig. 21) has no 70B model; Llama-3-8B is the same family."""


def _argonne_rows(runs: list[ArgonneRun], hw: str, model: str, gpus: int) -> list[ArgonneRun]:
    return [
        r
        for r in runs
        if ARGONNE_HARDWARE.get(r.hardware) == hw
        and ARGONNE_MODELS.get(r.model) == model
        and r.gpus == gpus
    ]


def _argonne_ttft(rows: list[ArgonneTtft], hw: str, model: str) -> float | None:
    for r in rows:
        if ARGONNE_HARDWARE.get(r.hardware) == hw and ARGONNE_MODELS.get(r.model) == model:
            return r.ttft_s
    return None


def _holds_a_sequence(acc: AcceleratorSpec, model: ModelSpec, tp: int) -> bool:
    if tp > model.kv_heads:
        return False
    return kv_capacity_blocks(acc, model, tp) * BLOCK_TOKENS >= model.max_model_len


def _llama3_70b(
    data_dir: Path,
    accs: Mapping[str, AcceleratorSpec],
    models: Mapping[str, ModelSpec],
    network: Mapping[tuple[str, int], Collective],
    hbm_eff: Mapping[str, float],
    flops_eff: Mapping[str, float],
    bases: dict[tuple[str, str, int], Basis],
    notes: dict[str, float],
) -> list[ProfileEntry]:
    """Llama-3-70B on H100, A100 and every accelerator Argonne measured with vLLM.

    * decode (step constant, per sequence, per context token): fitted to Argonne's whole-batch
      latencies (:func:`.fitting.fit_argonne`) on H100 TP4 and on every MI300X TP Argonne ran;
    * prefill (``prefill_token``, ``prefill_attn``, ``prefill_step``, ``linear_token``): Argonne's
      runs cannot separate it from the per-sequence decode cost, so it comes from Splitwise's 70B
      prefill measurements at the same GPU and TP (Llama-2-70B: the same 80 layers, × Llama-3-70B
      FLOPs); on MI300X the H100 prefill × the MI300X/H100 prefill time Argonne measured (Fig. 21);
    * H100 TP2/TP8 and A100 TP2/4/8 (no Argonne vLLM run): the TP4 decode terms moved to that GPU
      count (and to the A100 by Vidur's measured ratios) with Splitwise's prefill there.

    Adds the H100 profiles to ``bases``; the other accelerators are derived from them later.
    """
    l2, l3 = models["llama-2-70b"], models["llama-3-70b"]
    h100 = accs["h100"]
    runs = read_argonne(data_dir)
    out: list[ProfileEntry] = []

    def comm(acc: AcceleratorSpec, tp: int) -> tuple[float, float]:
        system = acc.name if acc.name in NETWORK_SYSTEMS else "h100"
        return tp_terms(l3.layers, l3.hidden, network.get((system, tp)))

    def tp_source(acc: AcceleratorSpec, tp: int) -> str:
        system = acc.name if acc.name in NETWORK_SYSTEMS else "h100"
        assumed = "" if system == acc.name else ", H100 NVLink assumed"
        return (
            f"tp terms from Vidur all_reduce.csv ({NETWORK_SYSTEMS[system]}, {tp} workers{assumed})"
        )

    prefill = {
        (hw, tp): scale_step(bases[(hw, l2.name, tp)], accs[hw], l3, tp, comm(accs[hw], tp))
        for hw in NETWORK_SYSTEMS
        for tp in SPLITWISE_TP
    }

    def prefill_source(hw: str, tp: int) -> str:
        return (
            f"prefill terms (prefill_token, prefill_attn, prefill_step, linear_token) from the "
            f"Splitwise {hw} TP{tp} fit (llama2-70b, the same 80 layers) x Llama-3-70B/Llama-2-70B"
            " FLOPs per token"
        )

    # H100 TP4: the fit.
    tp = 4
    rows = _argonne_rows(runs, "h100", l3.name, tp)
    streaming = l3.weight_bytes / tp / hbm_eff["h100"]
    capacity = kv_capacity_blocks(h100, l3, tp) * BLOCK_TOKENS
    fit = fit_argonne(rows, prefill[("h100", tp)], streaming, capacity)
    notes[f"argonne_fit_mape.h100.tp{tp}"] = fit.mape
    notes[f"argonne_fit_max_error.h100.tp{tp}"] = fit.max_error
    source = (
        f"fit to Argonne LLM-Inference-Bench All_results.csv (vLLM, Nvidia H100 GPU x{tp}, "
        f"Meta-Llama-3-70B): {fit.runs} whole-batch latencies (input = output length "
        f"{min(r.length for r in rows)}-{max(r.length for r in rows)}, batch "
        f"{min(r.batch for r in rows)}-{max(r.batch for r in rows)}), latency = prefill in "
        "8,192-token steps + (length - 1) decode steps; fitted "
        "(soft-L1 least squares of the relative error): decode step constant (linear floor = "
        f"weights per GPU / Vidur-measured {hbm_eff['h100'] / 1e12:.2f} TB/s, c0 = the rest), "
        f"decode_seq, kv_token; {prefill_source('h100', tp)}; {tp_source(h100, tp)}"
    )
    anchor = Basis(h100, l3, tp, fit.step, hbm_eff["h100"], source)
    bases[("h100", l3.name, tp)] = anchor
    out.append(ProfileEntry("h100", l3.name, tp, "tp", fit.step, 0.0, False, source))

    # H100 TP2/TP8, A100 TP2/4/8: the TP4 decode terms there, Splitwise's prefill there.
    for hw in ("h100", "a100"):
        acc = accs[hw]
        for tp in SPLITWISE_TP:
            if (hw, l3.name, tp) in bases or not _holds_a_sequence(acc, l3, tp):
                continue
            vidur = hw != anchor.accelerator.name
            decode = scale_step(
                anchor,
                acc,
                l3,
                tp,
                comm(acc, tp),
                memory_ratio=hbm_eff["h100"] / hbm_eff[hw] if vidur else None,
                compute_ratio=flops_eff["h100"] / flops_eff[hw] if vidur else None,
            )
            step = combine(decode, prefill[(hw, tp)])
            ratio = (
                f" x the Vidur-measured h100/{hw} weight-streaming bandwidth ratio "
                f"({hbm_eff['h100'] / hbm_eff[hw]:.2f})"
                if vidur
                else ""
            )
            source = (
                f"derived: decode terms (c0, linear floor, decode_seq, kv_token) from the h100 / "
                f"llama-3-70b / 4 GPU profile fitted to Argonne's vLLM runs, memory-bound terms x "
                f"bytes per GPU (4/{tp}){ratio}, software overhead kept; {prefill_source(hw, tp)}; "
                f"{tp_source(acc, tp)}"
            )
            if hw == "h100":
                bases[(hw, l3.name, tp)] = Basis(acc, l3, tp, step, hbm_eff[hw], source)
            out.append(ProfileEntry(hw, l3.name, tp, "tp", step, 0.0, True, source))

    # Other accelerators Argonne ran with vLLM (MI300X): fitted, prefill scaled by Fig. 21.
    ttft = read_argonne_ttft(data_dir)
    h100_ttft = _argonne_ttft(ttft, "h100", ARGONNE_TTFT_MODEL)
    for acc in accs.values():
        if acc.name in NETWORK_SYSTEMS:
            continue
        tps = [g for g in TP_DEGREES if _argonne_rows(runs, acc.name, l3.name, g)]
        their_ttft = _argonne_ttft(ttft, acc.name, ARGONNE_TTFT_MODEL)
        prefill_ratio = their_ttft / h100_ttft if their_ttft and h100_ttft else None
        if prefill_ratio is not None:
            notes[f"argonne_prefill_time_ratio.{acc.name}"] = prefill_ratio
        for tp in tps:
            if not _holds_a_sequence(acc, l3, tp):
                continue
            basis = bases[("h100", l3.name, _nearest_tp(tp))]
            fixed = scale_step(basis, acc, l3, tp, comm(acc, tp), compute_ratio=prefill_ratio)
            bandwidth = hbm_eff["h100"] * acc.hbm_tbps / h100.hbm_tbps
            rows = _argonne_rows(runs, acc.name, l3.name, tp)
            capacity = kv_capacity_blocks(acc, l3, tp) * BLOCK_TOKENS
            fit = fit_argonne(rows, fixed, l3.weight_bytes / tp / bandwidth, capacity)
            notes[f"argonne_fit_mape.{acc.name}.tp{tp}"] = fit.mape
            notes[f"argonne_fit_max_error.{acc.name}.tp{tp}"] = fit.max_error
            compute = (
                f"x {prefill_ratio:.2f}, the {acc.name}/h100 prefill time Argonne measured with "
                f"vLLM (Fig_21: TTFT of 16 prompts of 1,024 tokens, {ARGONNE_TTFT_MODEL}, 1 GPU: "
                f"{their_ttft:.3f} s / {h100_ttft:.3f} s)"
                if prefill_ratio is not None
                else f"x BF16 peak ratio ({h100.peak_bf16_tflops}/{acc.peak_bf16_tflops} TFLOP/s)"
            )
            source = (
                f"fit to Argonne LLM-Inference-Bench All_results.csv (vLLM, {acc.name} x{tp}, "
                f"Meta-Llama-3-70B): {fit.runs} whole-batch latencies ({fit.excluded} whose KV "
                "exceeds the capacity excluded), latency = prefill in 8,192-token steps + "
                "(length - 1) decode steps; fitted (soft-L1 least squares of the relative error): "
                "decode step constant (linear floor = weights per GPU / the H100-measured "
                "bandwidth x HBM ratio, c0 = the rest), decode_seq, kv_token; prefill terms "
                f"(compute-bound: prefill_token, prefill_attn, linear_token) from the h100 / "
                f"llama-3-70b / {basis.gpus} GPU profile x FLOPs per GPU {compute}, its "
                f"prefill_step kept; "
                f"{tp_source(acc, tp)}"
            )
            out.append(ProfileEntry(acc.name, l3.name, tp, "tp", fit.step, 0.0, False, source))
    return out


def _transports(data_dir: Path, notes: dict[str, float]) -> tuple[dict[str, Any], ...]:
    cross = read_vidur_network(data_dir, "h100_dgx", "send_recv", cross_node=True)
    link = fit_collective(cross, 2)
    efficiency = link.bandwidth_bytes_s * 8 / (VIDUR_CROSS_NODE_NIC_GBPS * 1e9)
    notes["vidur_cross_node_gbs"] = link.bandwidth_bytes_s / 1e9
    notes["vidur_cross_node_latency_us"] = link.latency_s * 1e6
    notes["vidur_cross_node_efficiency"] = efficiency
    rdma = {
        "name": "rdma",
        "latency_s": _sig(link.latency_s),
        "bandwidth_bytes_s": _sig(RDMA_NIC_GBPS * 1e9 / 8 * efficiency),
        "source": (
            "Vidur send_recv.csv (h100_dgx, 2 nodes x 1 GPU): fitted latency "
            f"{link.latency_s * 1e6:.1f} us and {link.bandwidth_bytes_s / 1e9:.1f} GB/s on a "
            f"400 Gb/s ConnectX-7 ({efficiency:.0%} of line rate); that efficiency applied to "
            "a 200 Gb/s RoCE NIC"
        ),
    }
    tcp = {"name": "tcp", **TCP}
    return (rdma, tcp)


def _entry_dict(e: ProfileEntry) -> dict[str, Any]:
    return {
        "accelerator": e.accelerator,
        "model": e.model,
        "gpus": e.gpus,
        "parallelism": e.parallelism,
        "derived": e.derived,
        "frontend_overhead_s": _sig(e.frontend_overhead_s),
        "step": {k: _sig(v) for k, v in e.step.as_dict().items()},
        "source": e.source,
    }


HEADER = """\
# GENERATED by `python -m simulator.perf.calibrate` from ../shared/data/calibration; do not edit.
# Method and sources: docs/calibration.md and each entry's `source`. Times in seconds.
"""


def write(calibration: Calibration, out_dir: Path = DATA_PACKAGE_DIR) -> None:
    doc = {"entries": [_entry_dict(e) for e in calibration.profiles]}
    text = HEADER + yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True)
    (out_dir / "profiles.yaml").write_text(text)
    tdoc = {"entries": list(calibration.transports)}
    (out_dir / "transports.yaml").write_text(
        HEADER + yaml.safe_dump(tdoc, sort_keys=False, width=100, allow_unicode=True)
    )


def check(data_dir: Path) -> str:
    """The report of ``--check``: how the shipped profiles reproduce the measurements."""
    catalog = load_catalog()
    lines = ["Splitwise Llama-2-70B: median absolute percentage error per (hardware, TP)", ""]
    lines.append("| hardware | TP | rows | excluded | prefill MAPE | decode MAPE |")
    lines.append("|---|---|---|---|---|---|")
    for s in splitwise_errors(catalog, data_dir):
        lines.append(
            f"| {s.hardware} | {s.tp} | {s.rows} | {s.excluded} | {s.prefill_mape:.1%} | "
            f"{s.decode_mape:.1%} |"
        )
    h100 = catalog.profile("h100", "llama-3-8b", 1)
    lines += ["", "inference-perf H100 / Llama-3-8B: step a request sees (ms)", ""]
    lines.append("| variant | stage | req/s | measured | model | error | decoding seqs |")
    lines.append("|---|---|---|---|---|---|---|")
    for c in sweep_checks(h100, data_dir):
        err = c.modelled_step_s / c.measured_step_s - 1
        lines.append(
            f"| {c.variant} | {c.stage} | {c.rate:.1f} | {c.measured_step_s * 1e3:.2f} | "
            f"{c.modelled_step_s * 1e3:.2f} | {err:+.1%} | {c.decode_seqs:.0f} |"
        )
    lines += ["", "Saturation check (GPU-seconds per second, max-num-seqs 128)", ""]
    for k, v in utilisation_checks(h100).items():
        lines.append(f"- {k}: {v:.3f}")
    lines += [
        "",
        "Argonne vLLM, Llama-3-70B: whole-batch latency (input = output length), measured vs "
        "profile",
        "",
    ]
    lines.append(
        "| hardware | GPUs | profile | runs | excluded (KV) | latency MAPE | max error | "
        "batch-1 step measured (ms) | model (ms) |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for e in argonne_fit_errors(catalog, data_dir):
        lines.append(
            f"| {e.hardware} | {e.gpus} | {'derived' if e.derived else 'fit'} | {e.rows} | "
            f"{e.excluded} | {e.latency_mape:.1%} | {e.max_error:.1%} | "
            f"{e.step_b1_measured_s * 1e3:.2f} | {e.step_b1_model_s * 1e3:.2f} |"
        )
    lines += [
        "",
        "Argonne Fig. 21/22 (vLLM, one GPU, 16 prompts of 1,024 tokens): TTFT and ITL",
        "",
    ]
    lines.append(
        "| hardware | model | TTFT measured (s) | model (s) | ITL measured (ms) | model (ms) |"
    )
    lines.append("|---|---|---|---|---|---|")
    for t in argonne_ttft_checks(catalog, data_dir):
        itl = f"{t.itl_measured_s * 1e3:.2f}" if t.itl_measured_s is not None else "-"
        lines.append(
            f"| {t.hardware} | {t.model} | {t.ttft_measured_s:.3f} | {t.ttft_model_s:.3f} | "
            f"{itl} | {t.itl_model_s * 1e3:.2f} |"
        )
    lines += ["", "Argonne vLLM: measured / predicted whole-batch throughput (median)", ""]
    lines.append("| hardware | model | GPUs | runs | measured/model |")
    lines.append("|---|---|---|---|---|")
    for a in argonne_checks(catalog, data_dir):
        lines.append(
            f"| {a.hardware} | {a.model} | {a.gpus} | {a.runs} | {a.measured_over_model:.2f} |"
        )
    lines += ["", "MI300X / H100 throughput on the same Argonne runs (median)", ""]
    lines.append("| model | GPUs | pairs | measured | profiles |")
    lines.append("|---|---|---|---|---|")
    for r in vendor_ratios(catalog, data_dir):
        lines.append(f"| {r.model} | {r.gpus} | {r.pairs} | {r.measured:.2f} | {r.modelled:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulator.perf.calibrate",
        description="Fit the simulator's step-time profiles to the shared measurements.",
    )
    parser.add_argument(
        "--data", type=Path, default=default_data_dir(), help="shared data dir (has calibration/)"
    )
    parser.add_argument(
        "--check", action="store_true", help="print how the shipped profiles match the data"
    )
    args = parser.parse_args(argv)
    data_dir: Path = args.data
    if not (data_dir / "calibration").is_dir():
        print(f"error: {data_dir}/calibration not found (use --data)", file=sys.stderr)
        return 2
    if args.check:
        print(check(data_dir))
        return 0
    calibration = calibrate(data_dir)
    write(calibration)
    print(f"wrote {len(calibration.profiles)} profiles to {DATA_PACKAGE_DIR / 'profiles.yaml'}")
    for k, v in sorted(calibration.notes.items()):
        print(f"  {k} = {v:.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
