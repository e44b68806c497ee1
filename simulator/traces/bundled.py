"""Real public traces shipped inside the package, with their attribution.

Why it exists: ``sloscaler simulate`` and the benchmarks must run on real traffic out of the box,
without network access. The files are byte-for-byte copies of the public originals, only
gzip-compressed (see ``docs/DATA.md``); this module names them, says where each comes from and under
which license, and finds them through ``importlib.resources`` wherever the package is installed.
"""

from __future__ import annotations

import atexit
import contextlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

_PACKAGE = "simulator"
_DATA_DIR = ("data", "traces")


@dataclass(frozen=True, slots=True)
class BundledTrace:
    """One shipped trace file and its provenance."""

    name: str
    filename: str
    kind: str
    rows: int
    repository: str
    origin_path: str
    license: str
    description: str

    @property
    def attribution(self) -> str:
        """``repo: path, license``, for reports and a trace's ``meta``."""
        return f"{self.repository}: {self.origin_path}, {self.license}"


BUNDLED: dict[str, BundledTrace] = {
    entry.name: entry
    for entry in (
        BundledTrace(
            name="azure-conv-2023",
            filename="AzureLLMInferenceTrace_conv.csv.gz",
            kind="azure-2023",
            rows=19_366,
            repository="Azure/AzurePublicDataset",
            origin_path="data/AzureLLMInferenceTrace_conv.csv",
            license="CC-BY-4.0",
            description="Azure LLM inference, conversation service, ~1 h on 2023-11-16 (Splitwise)",
        ),
        BundledTrace(
            name="azure-code-2023",
            filename="AzureLLMInferenceTrace_code.csv.gz",
            kind="azure-2023",
            rows=8_819,
            repository="Azure/AzurePublicDataset",
            origin_path="data/AzureLLMInferenceTrace_code.csv",
            license="CC-BY-4.0",
            description="Azure LLM inference, coding service, ~1 h on 2023-11-16 (Splitwise)",
        ),
        BundledTrace(
            name="mooncake",
            filename="mooncake_synthetic_trace.jsonl.gz",
            kind="mooncake",
            rows=3_993,
            repository="kvcache-ai/Mooncake",
            origin_path="FAST25-release/traces/synthetic_trace.jsonl",
            license="Apache-2.0",
            description="Mooncake (FAST'25) requests with 512-token prefix block ids, ~17 min",
        ),
        BundledTrace(
            name="servegen-m-large",
            filename="language_m-large_aggregate.csv.gz",
            kind="servegen-aggregate",
            rows=2_016,
            repository="alibaba/ServeGen",
            origin_path="data/language/m-large/ (summed over clients per 600 s)",
            license="Apache-2.0",
            description="ServeGen language model M-large: 14 days of load, one row per 600 s",
        ),
        BundledTrace(
            name="servegen-m-small",
            filename="language_m-small_aggregate.csv.gz",
            kind="servegen-aggregate",
            rows=2_016,
            repository="alibaba/ServeGen",
            origin_path="data/language/m-small/ (summed over clients per 600 s)",
            license="Apache-2.0",
            description="ServeGen language model M-small: 14 days of load, one row per 600 s",
        ),
    )
}

_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


def list_bundled() -> list[str]:
    """Names of the shipped traces, e.g. ``['azure-code-2023', 'azure-conv-2023', ...]``."""
    return sorted(BUNDLED)


def bundled_info(name: str) -> BundledTrace:
    """Provenance of a shipped trace; ``ValueError`` naming the choices for an unknown name."""
    try:
        return BUNDLED[name]
    except KeyError:
        raise ValueError(
            f"no bundled trace {name!r}; choose one of {', '.join(list_bundled())}"
        ) from None


def bundled_trace(name: str) -> Path:
    """Filesystem path of a shipped trace file (extracted to a temporary file if zipped)."""
    entry = bundled_info(name)
    resource = resources.files(_PACKAGE).joinpath(*_DATA_DIR, entry.filename)
    if isinstance(resource, Path):
        return resource
    return _extracted.enter_context(resources.as_file(resource))


def bundled_entry_for(path: Path) -> BundledTrace | None:
    """The shipped trace a path points at, if it is one (to attach attribution when loading)."""
    for entry in BUNDLED.values():
        if entry.filename != path.name:
            continue
        try:
            if bundled_trace(entry.name).resolve() == path.resolve():
                return entry
        except OSError:
            return None
    return None
