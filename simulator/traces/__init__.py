"""Request traces for the simulator: real ones from files, synthetic ones from a seed.

Why it exists: every claim the project makes is measured by replaying traffic through the simulated
cluster, so traffic must be easy to get right — real public traces (Azure 2023, Mooncake, ServeGen)
shipped in the package with their attribution, the user's own traffic in a plain CSV, and synthetic
load whose rate, burstiness, lengths and prefixes are controlled. All of them produce the same
:class:`~simulator.workload.Trace`; a malformed file always raises :class:`TraceFormatError` naming
the file and line. Formats and parameters are documented in ``docs/traces.md``.

Typical use::

    from simulator.traces import load_bundled, load_trace, step_trace

    real = load_bundled("azure-conv-2023")          # 19,366 requests, ~1 h
    mine = load_trace("my-traffic.csv.gz")          # format detected from name and header
    ramp = step_trace([(300, 5), (300, 20)], seed=1)
"""

from simulator.traces.arrivals import RateProfile, gamma_shape_scale, renewal_arrivals
from simulator.traces.azure import load_azure_csv
from simulator.traces.bundled import BundledTrace, bundled_info, bundled_trace, list_bundled
from simulator.traces.errors import TraceFormatError
from simulator.traces.lengths import (
    EmpiricalLengths,
    FixedLengths,
    LengthSampler,
    LogNormalLengths,
)
from simulator.traces.loading import TraceFormat, detect_format, load_bundled, load_trace
from simulator.traces.mooncake import MOONCAKE_BLOCK_TOKENS, load_mooncake_jsonl
from simulator.traces.native import load_native_csv, stable_int_hash, write_native_csv
from simulator.traces.servegen import (
    SERVEGEN_DEFAULTS,
    ServeGenCurves,
    ServeGenParams,
    generate_servegen_trace,
    load_servegen_curves,
)
from simulator.traces.synthetic import (
    SharedPrefix,
    diurnal_trace,
    gamma_trace,
    poisson_trace,
    profile_trace,
    step_trace,
)

__all__ = [
    "MOONCAKE_BLOCK_TOKENS",
    "SERVEGEN_DEFAULTS",
    "BundledTrace",
    "EmpiricalLengths",
    "FixedLengths",
    "LengthSampler",
    "LogNormalLengths",
    "RateProfile",
    "ServeGenCurves",
    "ServeGenParams",
    "SharedPrefix",
    "TraceFormat",
    "TraceFormatError",
    "bundled_info",
    "bundled_trace",
    "detect_format",
    "diurnal_trace",
    "gamma_shape_scale",
    "gamma_trace",
    "generate_servegen_trace",
    "list_bundled",
    "load_azure_csv",
    "load_bundled",
    "load_mooncake_jsonl",
    "load_native_csv",
    "load_servegen_curves",
    "load_trace",
    "poisson_trace",
    "profile_trace",
    "renewal_arrivals",
    "stable_int_hash",
    "step_trace",
    "write_native_csv",
]
