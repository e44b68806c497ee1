"""How long one vLLM engine step takes: the clock of the simulated engine.

vLLM V1 runs one forward pass per scheduler step over every scheduled sequence: prefill chunks and
one token for each decoding sequence, batched together. The simulator needs that step's duration
millions of times per run, so the model is a handful of coefficients and plain float arithmetic,
fitted to measurements by :mod:`simulator.perf.calibrate`.

The model (every time in seconds)::

    t = c0
      + max(linear_floor, (P + D) · linear_token)         # linear layers: roofline
      + P · prefill_token + A · prefill_attn              # prefill: rest of the work, attention
      + D · decode_seq + K · kv_token                     # decode: per sequence, KV reads
      + tp_fixed + tp_token · (P + D)                     # tensor-parallel all-reduces
      + prefill_step · [P > 0]                            # fixed cost of a step that prefills

``P`` prefill tokens scheduled in the step (all chunks); ``A`` prefill attention work in token
pairs, ``Σ chunk·(ctx_before + chunk/2)`` over the prefill chunks (see :func:`prefill_attn_pairs`);
``D`` decoding sequences; ``K`` the context tokens those sequences attend to.

Why the ``max``: the matmuls of a step stream every weight from HBM once (the floor) or, for big
batches, are compute bound (time per token). With the floor and the per-token rate at zero the
model is the plain affine form ``c0 + P·p + A·a + D·d + K·k + tp_fixed + tp_token·(P + D)``.

Worked example — the calibrated H100 / Llama-3-8B profile (rounded: ``c0`` 2.0 ms, floor
5.26 ms, 14.9 µs per token above it, 18.2 µs per prefill token, 2.0 ns per attention pair, 52 ns
per context token; ``docs/calibration.md`` has the exact numbers):

* decode-only, 1 sequence with 235 tokens of context: ``2.0 + max(5.26, 1·0.0149) + 235·52e-6``
  ms ≈ 7.27 ms (the measured step at 1 request/s is 7.22 ms);
* 128 decodes (context 235 each) plus two 204-token prompts: ``P + D = 536`` tokens →
  ``2.0 + max(5.26, 536·0.0149) = 7.98`` ms, ``+ 408·0.0182 = 7.44`` ms, ``+ 41,616·2e-6 =
  0.08`` ms, ``+ 30,080·52e-6 = 1.57`` ms ≈ 19.1 ms — the step of a server saturated at about
  106 requests/s (measured: 20.1 ms).

The engine advances decode-only stretches analytically, so :meth:`StepTimeModel.decode_affine`
returns ``(alpha, beta)`` with ``step_time(0, 0, n, ctx) == alpha + beta·ctx`` exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


def prefill_attn_pairs(chunk_tokens: int, computed_tokens: int) -> float:
    """Attention work of one prefill chunk, in (query, key) token pairs.

    A chunk of ``c`` new tokens after ``n`` already-computed (or prefix-cached) tokens attends to
    ``n`` earlier keys each plus, causally, half of its own: ``c·(n + c/2)``.
    Example: a 76-token chunk after a 128-token cached prefix → ``76·(128 + 38) = 12,616``.
    """
    return chunk_tokens * (computed_tokens + chunk_tokens / 2)


@dataclass(frozen=True, slots=True)
class StepTimeModel:
    """Time of one vLLM engine step (seconds):
    ``t = c0 + prefill_token·P + prefill_attn·A + decode_seq·D + kv_token·K + tp_fixed
    + tp_token·(P + D)``, plus the optional linear-layer roofline
    ``max(linear_floor, (P + D)·linear_token)`` and ``prefill_step`` when ``P > 0``.

    ``P`` prefill tokens scheduled in the step (all chunks); ``A`` prefill attention work in token
    pairs, ``Σ chunk_len·(cached_or_already_computed_ctx + chunk_len/2)`` over the prefill chunks;
    ``D`` the number of decode sequences in the step; ``K`` the sum of their context tokens.
    """

    c0_s: float
    """Fixed cost of every step (scheduler, launch, sampling setup), s."""
    prefill_token_s: float
    """Per prefill token, outside the linear-layer roofline, s/token."""
    prefill_attn_s: float
    """Per prefill attention pair, s/pair."""
    decode_seq_s: float
    """Per decoding sequence (sampling, per-sequence bookkeeping), s/sequence."""
    kv_token_s: float
    """Per context token read by decode attention, s/token."""
    tp_fixed_s: float = 0.0
    """Latency of the step's tensor-parallel all-reduces (2 per layer), s."""
    tp_token_s: float = 0.0
    """All-reduce transfer time per token in the step, s/token."""
    linear_floor_s: float = 0.0
    """Floor of the linear layers: streaming the weights once (and overhead hidden under it), s."""
    linear_token_s: float = 0.0
    """Compute-bound time of the linear layers per token (prefill or decode), s/token."""
    prefill_step_s: float = 0.0
    """Extra fixed cost of a step that contains any prefill, s."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not value >= 0.0:  # also rejects NaN
                raise ValueError(f"StepTimeModel.{f.name} must be >= 0, got {value!r}")

    def step_time(
        self, prefill_tokens: int, prefill_attn: float, decode_seqs: int, decode_ctx_tokens: int
    ) -> float:
        """Duration of one step; ``0.0`` for a step with no tokens at all."""
        tokens = prefill_tokens + decode_seqs
        if tokens <= 0:
            return 0.0
        linear = tokens * self.linear_token_s
        if linear < self.linear_floor_s:  # noqa: PLR1730 -- hot path: cheaper than max()
            linear = self.linear_floor_s
        t = (
            self.c0_s
            + linear
            + prefill_tokens * self.prefill_token_s
            + prefill_attn * self.prefill_attn_s
            + decode_seqs * self.decode_seq_s
            + decode_ctx_tokens * self.kv_token_s
            + self.tp_fixed_s
            + tokens * self.tp_token_s
        )
        if prefill_tokens > 0:
            t += self.prefill_step_s
        return t

    def decode_affine(self, n: int) -> tuple[float, float]:
        """``(alpha, beta)`` so that a decode-only step with ``n`` sequences holding ``ctx`` tokens
        in total takes ``alpha + beta·ctx`` — exactly :meth:`step_time` ``(0, 0, n, ctx)``.

        Example (rounded H100 / Llama-3-8B numbers above): ``decode_affine(1)`` ≈ (7.26 ms,
        52 ns), so one sequence with 235 context tokens takes 7.26 + 0.012 ≈ 7.27 ms.
        """
        if n < 1:
            raise ValueError(f"a decode step needs at least one sequence, got n={n}")
        linear = n * self.linear_token_s
        if linear < self.linear_floor_s:  # noqa: PLR1730 -- hot path: cheaper than max()
            linear = self.linear_floor_s
        alpha = self.c0_s + linear + n * self.decode_seq_s + self.tp_fixed_s + n * self.tp_token_s
        return alpha, self.kv_token_s

    def prefill_time(self, prompt_tokens: int, cached_tokens: int = 0) -> float:
        """One prefill-only step of a single prompt (``cached_tokens`` of it already computed)."""
        new = prompt_tokens - cached_tokens
        return self.step_time(new, prefill_attn_pairs(new, cached_tokens), 0, 0)

    def as_dict(self) -> dict[str, float]:
        """Coefficients by field name (the YAML form)."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}
