"""The request-level feature schema, named exactly as llm-d's latency predictor names it.

Why this module exists: the gateway posts the same JSON fields to us that it posts to llm-d's
predictor, so the schema must match theirs name for name; the two targets use different feature
sets (as llm-d's do); and the monotone constraints that make capacity bisection exact are a
property of the *schema* (which columns are load), not of any one model. Keeping all three facts
here means models, the buffer, the service and the baselines cannot disagree about them.

Features (one row = one request on one pod, observed when the request is routed):

=========================== ======= ============================================================
name                        unit    meaning
=========================== ======= ============================================================
``kv_cache_percentage``     0–1     KV-cache blocks in use on the pod
``input_token_length``      tokens  prompt length of this request
``num_request_waiting``     count   requests queued on the pod
``num_request_running``     count   requests in the pod's running batch
``prefill_tokens_in_flight`` tokens prompt tokens admitted but not yet prefilled on the pod
``decode_tokens_in_flight`` tokens  context tokens of requests decoding on the pod
``prefix_cache_score``      0–1     fraction of this prompt already in the pod's prefix cache
``num_tokens_generated``    tokens  tokens generated so far (TPOT samples are taken mid-stream)
``pod_type``                enum    ``''`` (aggregated), ``prefill`` or ``decode``
``accelerator``             label   accelerator type of the pod (ours; llm-d has no such field)
=========================== ======= ============================================================

TTFT uses the prefix features and a derived ``effective_input_tokens = (1 − prefix)·input``: a
2,000-token prompt with a 0.75 prefix score has 500 tokens left to prefill. TPOT uses
``num_tokens_generated`` instead of the prefix features (the prefix no longer matters once
decoding has started).

Monotone directions: latency never decreases when the pod is busier, so every *load* feature
(KV use, waiting, running, tokens in flight) carries a +1 constraint in both targets. TTFT also
rises with the tokens left to prefill (+1 on ``input_token_length`` and
``effective_input_tokens``) and falls with the prefix score (−1). ``num_tokens_generated`` and the
categorical columns carry no constraint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class PodType(StrEnum):
    """llm-d's ``pod_type``: the role a pod plays in disaggregated serving."""

    AGGREGATED = ""
    PREFILL = "prefill"
    DECODE = "decode"

    @property
    def code(self) -> int:
        """Stable integer code used in feature matrices (categorical in LightGBM)."""
        return POD_TYPE_CODES[self]

    @property
    def role(self) -> str:
        """The pool role this pod type serves (``aggregated``, ``prefill`` or ``decode``)."""
        return "aggregated" if self is PodType.AGGREGATED else self.value


POD_TYPE_CODES: Final[Mapping[PodType, int]] = {
    PodType.AGGREGATED: 0,
    PodType.PREFILL: 1,
    PodType.DECODE: 2,
}
POD_TYPE_BY_CODE: Final[Mapping[int, PodType]] = {v: k for k, v in POD_TYPE_CODES.items()}


class Target(StrEnum):
    """What a model predicts, in milliseconds."""

    TTFT = "ttft"
    TPOT = "tpot"

    @property
    def actual_column(self) -> str:
        """The training column holding observed values (``actual_ttft_ms``/``actual_tpot_ms``)."""
        return f"actual_{self.value}_ms"


KV_CACHE_PERCENTAGE: Final = "kv_cache_percentage"
INPUT_TOKEN_LENGTH: Final = "input_token_length"
NUM_REQUEST_WAITING: Final = "num_request_waiting"
NUM_REQUEST_RUNNING: Final = "num_request_running"
PREFILL_TOKENS_IN_FLIGHT: Final = "prefill_tokens_in_flight"
DECODE_TOKENS_IN_FLIGHT: Final = "decode_tokens_in_flight"
PREFIX_CACHE_SCORE: Final = "prefix_cache_score"
NUM_TOKENS_GENERATED: Final = "num_tokens_generated"
POD_TYPE: Final = "pod_type"
ACCELERATOR: Final = "accelerator"
EFFECTIVE_INPUT_TOKENS: Final = "effective_input_tokens"

#: Numeric request fields, in llm-d's order (``pod_type`` and ``accelerator`` are labels).
NUMERIC_FEATURES: Final[tuple[str, ...]] = (
    KV_CACHE_PERCENTAGE,
    INPUT_TOKEN_LENGTH,
    NUM_REQUEST_WAITING,
    NUM_REQUEST_RUNNING,
    PREFILL_TOKENS_IN_FLIGHT,
    DECODE_TOKENS_IN_FLIGHT,
    PREFIX_CACHE_SCORE,
    NUM_TOKENS_GENERATED,
)
#: Every column a request sample carries besides its targets.
REQUEST_FIELDS: Final[tuple[str, ...]] = (*NUMERIC_FEATURES, POD_TYPE, ACCELERATOR)
#: Fields that hold fractions in [0, 1].
FRACTION_FEATURES: Final[frozenset[str]] = frozenset({KV_CACHE_PERCENTAGE, PREFIX_CACHE_SCORE})

#: The load features: latency is monotone non-decreasing in each, for both targets.
LOAD_FEATURES: Final[tuple[str, ...]] = (
    KV_CACHE_PERCENTAGE,
    NUM_REQUEST_WAITING,
    NUM_REQUEST_RUNNING,
    PREFILL_TOKENS_IN_FLIGHT,
    DECODE_TOKENS_IN_FLIGHT,
)

#: Waiting-queue strata ``[0, 1, 2–3, 4–7, 8–15, 16–31, ≥ 32]``: a value ``w`` is in stratum
#: ``searchsorted(edges, w, 'right')`` (5 waiting → stratum 3). The training buffer keeps rows per
#: stratum and conformal calibration fits one offset per stratum.
WAITING_EDGES: Final[tuple[float, ...]] = (1, 2, 4, 8, 16, 32)

#: Model inputs per target, before the categorical columns (``pod_type``, ``accelerator``).
TARGET_FEATURES: Final[Mapping[Target, tuple[str, ...]]] = {
    Target.TTFT: (
        KV_CACHE_PERCENTAGE,
        INPUT_TOKEN_LENGTH,
        NUM_REQUEST_WAITING,
        NUM_REQUEST_RUNNING,
        PREFILL_TOKENS_IN_FLIGHT,
        DECODE_TOKENS_IN_FLIGHT,
        PREFIX_CACHE_SCORE,
        EFFECTIVE_INPUT_TOKENS,
    ),
    Target.TPOT: (
        KV_CACHE_PERCENTAGE,
        INPUT_TOKEN_LENGTH,
        NUM_REQUEST_WAITING,
        NUM_REQUEST_RUNNING,
        PREFILL_TOKENS_IN_FLIGHT,
        DECODE_TOKENS_IN_FLIGHT,
        NUM_TOKENS_GENERATED,
    ),
}

_EXTRA_DIRECTIONS: Final[Mapping[Target, Mapping[str, int]]] = {
    Target.TTFT: {INPUT_TOKEN_LENGTH: 1, EFFECTIVE_INPUT_TOKENS: 1, PREFIX_CACHE_SCORE: -1},
    Target.TPOT: {},
}


def monotone_direction(target: Target, feature: str) -> int:
    """+1 if the target never decreases with ``feature``, −1 if it never increases, else 0."""
    if feature in LOAD_FEATURES:
        return 1
    return _EXTRA_DIRECTIONS[target].get(feature, 0)


@dataclass(frozen=True, slots=True)
class FeatureLayout:
    """The ordered columns one model reads, and which of them are categorical.

    A per-(accelerator, role) model reads only the numeric features of its target; a pooled model
    appends ``pod_type`` and ``accelerator`` as categorical codes (``accelerator`` coded by its
    index in ``accelerators``).
    """

    target: Target
    columns: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    accelerators: tuple[str, ...] = ()

    @classmethod
    def for_target(
        cls, target: Target, *, pooled: bool = False, accelerators: Sequence[str] = ()
    ) -> FeatureLayout:
        """The layout llm-d uses for ``target`` (plus the categorical columns when pooled)."""
        numeric = TARGET_FEATURES[target]
        if not pooled:
            return cls(target=target, columns=numeric)
        return cls(
            target=target,
            columns=(*numeric, POD_TYPE, ACCELERATOR),
            categorical=(POD_TYPE, ACCELERATOR),
            accelerators=tuple(accelerators),
        )

    @property
    def monotone_constraints(self) -> list[int]:
        """LightGBM's ``monotone_constraints``: one direction per column, in column order."""
        return [
            0 if c in self.categorical else monotone_direction(self.target, c) for c in self.columns
        ]

    @property
    def categorical_indices(self) -> list[int]:
        """Column indices LightGBM must treat as categorical."""
        return [self.columns.index(c) for c in self.categorical]

    def matrix(self, columns: FeatureColumns) -> FloatArray:
        """The model's input matrix (rows × ``len(self.columns)``, C-contiguous float64).

        An accelerator missing from ``self.accelerators`` is coded NaN, which LightGBM sends down
        the "other" side of categorical splits; callers that care refuse such rows first.
        """
        n = len(columns)
        out = np.empty((n, len(self.columns)), dtype=np.float64)
        for j, name in enumerate(self.columns):
            if name == ACCELERATOR:
                lookup = {a: float(i) for i, a in enumerate(self.accelerators)}
                out[:, j] = [lookup.get(a, np.nan) for a in columns.accelerator]
            else:
                out[:, j] = columns.numeric(name)
        return out


@dataclass(frozen=True, slots=True)
class RequestFeatures:
    """One request's features, as the gateway reports them (llm-d's field names)."""

    kv_cache_percentage: float
    input_token_length: int
    num_request_waiting: int
    num_request_running: int
    prefill_tokens_in_flight: int = 0
    decode_tokens_in_flight: int = 0
    prefix_cache_score: float = 0.0
    num_tokens_generated: int = 0
    pod_type: PodType = PodType.AGGREGATED
    accelerator: str = ""

    @property
    def effective_input_tokens(self) -> float:
        """Prompt tokens left to prefill: ``(1 − prefix_cache_score)·input_token_length``."""
        return (1.0 - self.prefix_cache_score) * self.input_token_length


@dataclass(frozen=True, slots=True)
class FeatureColumns:
    """A batch of requests, column-oriented: what models and buffers actually consume.

    ``values`` holds the eight numeric fields as float64 arrays of equal length;
    ``pod_type`` holds the integer codes of :class:`PodType`; ``accelerator`` the labels.
    """

    values: Mapping[str, FloatArray]
    pod_type: npt.NDArray[np.int8]
    accelerator: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.accelerator)

    def numeric(self, name: str) -> FloatArray:
        """A numeric column by name, including the derived ``effective_input_tokens``."""
        if name == EFFECTIVE_INPUT_TOKENS:
            return (1.0 - self.values[PREFIX_CACHE_SCORE]) * self.values[INPUT_TOKEN_LENGTH]
        if name == POD_TYPE:
            return self.pod_type.astype(np.float64)
        return self.values[name]

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> FeatureColumns:
        """The rows selected by an integer index or a boolean mask."""
        idx = np.flatnonzero(index) if index.dtype == np.bool_ else index
        return FeatureColumns(
            values={k: v[idx] for k, v in self.values.items()},
            pod_type=self.pod_type[idx],
            accelerator=tuple(self.accelerator[i] for i in idx.tolist()),
        )

    def row(self, i: int) -> RequestFeatures:
        """Row ``i`` as a :class:`RequestFeatures`."""
        v = self.values
        return RequestFeatures(
            kv_cache_percentage=float(v[KV_CACHE_PERCENTAGE][i]),
            input_token_length=int(v[INPUT_TOKEN_LENGTH][i]),
            num_request_waiting=int(v[NUM_REQUEST_WAITING][i]),
            num_request_running=int(v[NUM_REQUEST_RUNNING][i]),
            prefill_tokens_in_flight=int(v[PREFILL_TOKENS_IN_FLIGHT][i]),
            decode_tokens_in_flight=int(v[DECODE_TOKENS_IN_FLIGHT][i]),
            prefix_cache_score=float(v[PREFIX_CACHE_SCORE][i]),
            num_tokens_generated=int(v[NUM_TOKENS_GENERATED][i]),
            pod_type=POD_TYPE_BY_CODE[int(self.pod_type[i])],
            accelerator=self.accelerator[i],
        )

    @classmethod
    def from_requests(cls, rows: Sequence[RequestFeatures]) -> FeatureColumns:
        """Columns from row objects (the service's path; 32 rows take a few microseconds)."""
        values = {
            name: np.fromiter((getattr(r, name) for r in rows), dtype=np.float64, count=len(rows))
            for name in NUMERIC_FEATURES
        }
        codes = np.fromiter((r.pod_type.code for r in rows), dtype=np.int8, count=len(rows))
        return cls(values=values, pod_type=codes, accelerator=tuple(r.accelerator for r in rows))

    @classmethod
    def from_arrays(
        cls,
        values: Mapping[str, npt.ArrayLike],
        pod_type: npt.ArrayLike | None = None,
        accelerator: Sequence[str] | str = "",
    ) -> FeatureColumns:
        """Columns from arrays; missing ``prefill``/``decode``/``prefix``/``generated`` are 0.

        ``pod_type`` takes codes or :class:`PodType` values; a single ``accelerator`` string
        applies to every row.
        """
        n = len(np.asarray(values[INPUT_TOKEN_LENGTH]))
        cols: dict[str, FloatArray] = {}
        for name in NUMERIC_FEATURES:
            if name in values:
                arr = np.asarray(values[name], dtype=np.float64).reshape(-1)
                if len(arr) != n:
                    raise ValueError(f"column {name} has {len(arr)} rows, expected {n}")
                cols[name] = arr
            elif name in (KV_CACHE_PERCENTAGE, NUM_REQUEST_WAITING, NUM_REQUEST_RUNNING):
                raise ValueError(f"required column {name} is missing")
            else:
                cols[name] = np.zeros(n)
        if pod_type is None:
            codes = np.zeros(n, dtype=np.int8)
        else:
            raw = np.asarray(pod_type)
            if raw.dtype.kind in "iu":
                codes = raw.astype(np.int8)
            else:
                codes = np.array([PodType(str(p)).code for p in raw.tolist()], dtype=np.int8)
        accs = (accelerator,) * n if isinstance(accelerator, str) else tuple(accelerator)
        if len(codes) != n or len(accs) != n:
            raise ValueError("pod_type and accelerator must have one entry per row")
        return cls(values=cols, pod_type=codes, accelerator=accs)

    @classmethod
    def concat(cls, parts: Sequence[FeatureColumns]) -> FeatureColumns:
        """Rows of several batches, in order."""
        if not parts:
            return cls.from_arrays({n: np.zeros(0) for n in NUMERIC_FEATURES})
        return cls(
            values={n: np.concatenate([p.values[n] for p in parts]) for n in NUMERIC_FEATURES},
            pod_type=np.concatenate([p.pod_type for p in parts]),
            accelerator=tuple(a for p in parts for a in p.accelerator),
        )
