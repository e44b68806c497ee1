"""How well the catalog's profiles reproduce the measurements: the tables of ``--check``.

* Splitwise: per (hardware, TP), the median absolute percentage error of the simulated prefill
  and decode step over every measured row (repeats included), Llama-2-70B;
* inference-perf: the step a request sees at each stage of the H100 / Llama-3-8B sweep, and the
  saturation check (GPU-seconds per second at 106 and 92 req/s);
* Argonne: the batch-latency MAPE of the Llama-3-70B profiles fitted to Argonne's vLLM runs;
  TTFT and inter-token latency of 16 prompts of 1,024 tokens (Fig. 21/22, 8B models on one GPU);
  predicted vs measured whole-batch throughput of vLLM runs, per (hardware, model, GPUs), and the
  MI300X / H100 ratio both ways — the cross-check of the spec-sheet derivation.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from simulator.perf.catalog import BLOCK_TOKENS, Catalog, CatalogError, ServingProfile
from simulator.perf.fitting import (
    batch_latency,
    batch_prefill_time,
    mape,
    saturation_utilisation,
    stage_cached_tokens,
    sweep_step_time,
)
from simulator.perf.measurements import (
    ARGONNE_HARDWARE,
    ARGONNE_MODELS,
    HARDWARE_IDS,
    ArgonneRun,
    read_argonne,
    read_argonne_ttft,
    read_inference_perf,
)
from simulator.perf.model import prefill_attn_pairs


@dataclass(frozen=True, slots=True)
class SplitwiseError:
    hardware: str
    tp: int
    rows: int
    excluded: int
    prefill_mape: float
    decode_mape: float


def splitwise_errors(catalog: Catalog, data_dir: Path) -> list[SplitwiseError]:
    """Per (hardware, TP): MAPE of the catalog's Llama-2-70B profile over every Splitwise row.

    Rows whose batch cannot fit the profile's KV cache are excluded (counted in ``excluded``).
    """
    groups: dict[tuple[str, int], list[tuple[float, float, float, float]]] = defaultdict(list)
    skipped: dict[tuple[str, int], int] = defaultdict(int)
    with (data_dir / "calibration" / "splitwise_perf_model.csv").open() as f:
        for row in csv.DictReader(f):
            hw = HARDWARE_IDS.get(row["hardware"])
            if row["model"] != "llama2-70b" or hw is None:
                continue
            tp = int(row["tensor_parallel"])
            profile = catalog.profile(hw, "llama-2-70b", tp)
            b, prompt, tokens = (int(row[k]) for k in ("batch_size", "prompt_size", "token_size"))
            if b * (prompt + tokens) > profile.kv_blocks * BLOCK_TOKENS:
                skipped[(hw, tp)] += 1
                continue
            step = profile.step
            prefill = step.step_time(b * prompt, b * prefill_attn_pairs(prompt, 0), 0, 0)
            decode = step.step_time(0, 0.0, b, round(b * (prompt + tokens / 2)))
            groups[(hw, tp)].append(
                (prefill, float(row["prompt_time"]) / 1e3, decode, float(row["token_time"]) / 1e3)
            )
    return [
        SplitwiseError(
            hw,
            tp,
            len(rows),
            skipped[(hw, tp)],
            mape([r[0] for r in rows], [r[1] for r in rows]),
            mape([r[2] for r in rows], [r[3] for r in rows]),
        )
        for (hw, tp), rows in sorted(groups.items())
    ]


@dataclass(frozen=True, slots=True)
class StageCheck:
    variant: str
    stage: int
    rate: float
    measured_step_s: float
    modelled_step_s: float
    decode_seqs: float


def sweep_checks(profile: ServingProfile, data_dir: Path) -> list[StageCheck]:
    """The step a request sees at every stage of the inference-perf sweep, measured vs model."""
    out = []
    for s in read_inference_perf(data_dir):
        tau, d = sweep_step_time(
            profile.step, s.achieved_rps, s.prompt_tokens, s.output_tokens, stage_cached_tokens(s)
        )
        out.append(StageCheck(s.variant, s.stage, s.achieved_rps, s.decode_step_s, tau, d))
    return out


def utilisation_checks(profile: ServingProfile) -> dict[str, float]:
    """Saturation check of the H100 / Llama-3-8B profile (204 prompt, 62.4 output tokens)."""
    return {
        f"{rate:g} rps{' (prefix cached)' if cached else ''}": saturation_utilisation(
            profile.step, rate, 204.1, 62.4, cached
        )
        for rate, cached in ((106.0, 0), (92.0, 0), (176.0, 128), (128.0, 128))
    }


@dataclass(frozen=True, slots=True)
class ArgonneFitError:
    """How one profile reproduces Argonne's whole-batch latencies of its (hardware, model, GPUs)."""

    hardware: str
    model: str
    gpus: int
    derived: bool
    rows: int
    excluded: int
    """Runs whose ``batch·2·length`` tokens exceed the profile's KV capacity (not compared)."""
    latency_mape: float
    """Median absolute percentage error of the batch latency (= of the time per output token)."""
    max_error: float
    step_b1_measured_s: float
    """Median over the batch-1 runs of latency / output tokens: the decode step of one sequence
    (the prefill is under 2% of those runs)."""
    step_b1_model_s: float


def argonne_fit_errors(
    catalog: Catalog, data_dir: Path, model: str = "llama-3-70b"
) -> list[ArgonneFitError]:
    """Per (hardware, GPUs) with vLLM runs of ``model`` and a profile: batch-latency errors.

    The model of a run is :func:`.fitting.batch_latency`: prefill in 8,192-token steps, then
    ``length − 1`` decode steps of the whole batch.
    """
    groups: dict[tuple[str, int], list[ArgonneRun]] = defaultdict(list)
    for r in read_argonne(data_dir):
        hw = ARGONNE_HARDWARE.get(r.hardware)
        if hw is not None and ARGONNE_MODELS.get(r.model) == model:
            groups[(hw, r.gpus)].append(r)
    out = []
    for (hw, gpus), runs in sorted(groups.items()):
        try:
            profile = catalog.profile(hw, model, gpus)
        except CatalogError:
            continue
        kept = [r for r in runs if r.batch * 2 * r.length <= profile.kv_tokens]
        predicted = [batch_latency(profile.step, r.length, r.batch) for r in kept]
        errors = [abs(p / r.latency_s - 1) for p, r in zip(predicted, kept, strict=True)]
        single = [(r, p) for r, p in zip(kept, predicted, strict=True) if r.batch == 1]
        out.append(
            ArgonneFitError(
                hw,
                model,
                gpus,
                profile.derived,
                len(kept),
                len(runs) - len(kept),
                mape(predicted, [r.latency_s for r in kept]),
                max(errors),
                median(r.latency_s / r.length for r, _ in single),
                median(p / r.length for r, p in single),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class TtftCheck:
    """Argonne Fig. 21/22: 16 prompts of 1,024 tokens on one GPU, measured vs the profile."""

    hardware: str
    model: str
    ttft_measured_s: float
    ttft_model_s: float
    itl_measured_s: float | None
    """``(end_latency − TTFT)/1,023``: the mean decode step of the batch generating 1,024 tokens."""
    itl_model_s: float


def argonne_ttft_checks(catalog: Catalog, data_dir: Path) -> list[TtftCheck]:
    out = []
    for r in read_argonne_ttft(data_dir):
        hw, model = ARGONNE_HARDWARE.get(r.hardware), ARGONNE_MODELS.get(r.model)
        if hw is None or model is None:
            continue
        try:
            profile = catalog.profile(hw, model, r.gpus)
        except CatalogError:
            continue
        prefill = batch_prefill_time(profile.step, r.prompt, r.batch)
        decode = (batch_latency(profile.step, r.prompt, r.batch) - prefill) / (r.prompt - 1)
        out.append(TtftCheck(hw, model, r.ttft_s, prefill, r.itl_s, decode))
    return out


@dataclass(frozen=True, slots=True)
class ArgonneCheck:
    hardware: str
    model: str
    gpus: int
    runs: int
    measured_over_model: float
    """Median of measured / predicted throughput (1.0 = exact, < 1: the profile is optimistic)."""


def _predicted_throughput(profile: ServingProfile, run: ArgonneRun) -> float:
    return 2 * run.length * run.batch / batch_latency(profile.step, run.length, run.batch)


def _matched(catalog: Catalog, runs: Sequence[ArgonneRun]) -> list[tuple[ArgonneRun, float]]:
    out = []
    for r in runs:
        hw, model = ARGONNE_HARDWARE.get(r.hardware), ARGONNE_MODELS.get(r.model)
        if hw is None or model is None:
            continue
        try:
            profile = catalog.profile(hw, model, r.gpus)
        except CatalogError:
            continue
        if r.batch * 2 * r.length > profile.kv_tokens:
            continue
        out.append((r, _predicted_throughput(profile, r)))
    return out


def argonne_checks(catalog: Catalog, data_dir: Path) -> list[ArgonneCheck]:
    groups: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for r, predicted in _matched(catalog, read_argonne(data_dir)):
        key = (ARGONNE_HARDWARE[r.hardware], ARGONNE_MODELS[r.model], r.gpus)
        groups[key].append(r.throughput_tok_s / predicted)
    return [ArgonneCheck(*k, len(v), median(v)) for k, v in sorted(groups.items())]


@dataclass(frozen=True, slots=True)
class VendorRatio:
    model: str
    gpus: int
    pairs: int
    measured: float
    """Median MI300X / H100 throughput over matched (length, batch) runs."""
    modelled: float


def vendor_ratios(catalog: Catalog, data_dir: Path, other: str = "mi300x") -> list[VendorRatio]:
    """``other`` / H100 throughput, measured by Argonne and predicted, on the same runs."""
    by_key: dict[tuple[str, str, int, int, int], tuple[float, float]] = {}
    for r, predicted in _matched(catalog, read_argonne(data_dir)):
        key = (ARGONNE_HARDWARE[r.hardware], ARGONNE_MODELS[r.model], r.gpus, r.length, r.batch)
        by_key[key] = (r.throughput_tok_s, predicted)
    groups: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    for (hw, model, gpus, length, batch), (measured, predicted) in by_key.items():
        base = by_key.get(("h100", model, gpus, length, batch))
        if hw != other or base is None:
            continue
        groups[(model, gpus)].append((measured / base[0], predicted / base[1]))
    return [
        VendorRatio(m, g, len(v), median(x for x, _ in v), median(y for _, y in v))
        for (m, g), v in sorted(groups.items())
    ]
