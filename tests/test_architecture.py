"""Rules the codebase keeps: time is injected, every public module says why it exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("autoscaler", "policies", "predictor", "simulator")
CLOCKS = {Path("autoscaler/clock.py"), Path("predictor/clock.py")}  # the only wall-clock reads
FORBIDDEN = re.compile(r"\b(time\.time|time\.monotonic|time\.sleep|asyncio\.sleep|datetime\.now)\(")


def sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_only_the_clocks_read_the_wall_clock() -> None:
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sources()
        if p.relative_to(ROOT) not in CLOCKS
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if FORBIDDEN.search(line)
    ]
    assert offenders == []


def test_policies_do_no_io_and_no_logging() -> None:
    banned = {"logging", "structlog", "socket", "http", "urllib", "requests", "httpx", "time"}
    for p in (ROOT / "policies").rglob("*.py"):
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            assert not set(names) & banned, f"{p.relative_to(ROOT)} imports {names}"


def test_every_module_starts_with_a_docstring() -> None:
    missing = [
        str(p.relative_to(ROOT))
        for p in sources()
        if p.stat().st_size > 0 and ast.get_docstring(ast.parse(p.read_text())) is None
    ]
    assert missing == []
