"""Requests as traces describe them, independent of where they come from.

Every trace loader (Azure, Mooncake, ServeGen, synthetic, the native CSV) produces a :class:`Trace`
of :class:`RequestSpec`; the engine never sees file formats.

Shared prefixes are described by *prefix units*: ``prefix_ids`` are the ids of the leading units of
the prompt, each ``prefix_unit_tokens`` long. Two requests whose ``prefix_ids`` start with the same
ids share that many leading tokens of KV cache (Mooncake's ``hash_ids`` are exactly this with
512-token units). Example: ``prefix_ids=(7, 9)``, ``prefix_unit_tokens=512`` and
``input_tokens=1500`` means tokens 0–1023 are shareable with any request starting ``(7, 9, ...)``
and tokens 1024–1499 are this request's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request of a trace: when it arrives and how many tokens go in and come out."""

    arrival_s: float
    input_tokens: int
    output_tokens: int
    priority: int = 0
    model: str | None = None
    prefix_ids: tuple[int, ...] = ()
    prefix_unit_tokens: int = 0

    @property
    def shared_prefix_tokens(self) -> int:
        """Leading prompt tokens that may be shared with other requests (capped at the prompt)."""
        return min(self.input_tokens, len(self.prefix_ids) * self.prefix_unit_tokens)

    @property
    def sheddable(self) -> bool:
        """Requests with a negative priority may be shed by admission control."""
        return self.priority < 0


@dataclass(frozen=True, slots=True)
class Trace:
    """Arrival-ordered requests plus where they came from (for reports and attribution)."""

    name: str
    requests: tuple[RequestSpec, ...]
    source: str = ""
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.requests[-1].arrival_s if self.requests else 0.0

    def window(self, start_s: float, end_s: float) -> Trace:
        """Requests arriving in ``[start_s, end_s)``, re-based so the first window starts at 0."""
        reqs = tuple(
            RequestSpec(
                r.arrival_s - start_s,
                r.input_tokens,
                r.output_tokens,
                r.priority,
                r.model,
                r.prefix_ids,
                r.prefix_unit_tokens,
            )
            for r in self.requests
            if start_s <= r.arrival_s < end_s
        )
        return Trace(self.name, reqs, self.source, dict(self.meta))
