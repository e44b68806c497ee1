"""The documentation tells the truth: every command it shows is exercised, and the reference
tables are what the code says.

Why: a command in a doc that no longer exists, or that nothing runs, is the first thing a new
user copies and the last thing anyone notices is broken. So every line of every fenced block
tagged ``sh``, ``bash``, ``shell``, ``zsh`` or ``console`` in README.md and docs/*.md is parsed
(``console``: only the ``$ `` lines; ``\\`` continuations joined; ``# …`` comments dropped; a line
split at ``&&``, ``||``, ``;`` and ``|``; redirections ignored), and each command must pass its
rule, or the test fails naming the doc file and line:

* ``sloscaler …`` (also ``.venv/bin/sloscaler``) — parsed by the typer app: the command and every
  option must exist and every value convert; bundled scenario and policy names must exist.
  ``--help`` and the read-only commands in ``RUN_READ_ONLY`` are run. Every other one (it writes
  files, simulates, talks to a cluster or a server) must be in ``EXERCISED_BY``: the test
  function or Makefile target that runs it. The mapped test must exist, and its module (or the
  target's recipe) must mention the subcommand and every long option the doc uses.
* ``make X`` — ``X`` is a target of the Makefile.
* ``kubectl apply -k DIR``, ``kubectl diff -k DIR``, ``kubectl kustomize DIR`` — ``DIR`` is a
  kustomization in the repository and renders with ``kubectl kustomize`` (when kubectl is
  installed; tests/test_deploy.py validates what the overlays render).
* any other ``kubectl`` command passes without a mapping **only if it is read-only cluster
  inspection**: one of the verbs in ``READ_ONLY_KUBECTL`` (get, describe, logs, wait, ``auth
  can-i``, ``rollout status``, …). A command that changes a cluster (``apply -f``, ``delete``,
  ``patch``, ``scale``, ``rollout restart``, …) needs an ``EXERCISED_BY`` entry like any other.
* after a pipe, the text filters in ``TEXT_FILTERS`` (grep, head, …) pass.
* ``.venv/bin/pytest PATH…`` — every path (``file.py`` or ``file.py::test``) exists.
* anything else (helm, promtool, curl, python, …) must be in ``EXERCISED_BY``; the mapped test's
  module must mention the program and every repository file the command names.

Besides commands: SLOPolicies shown in YAML blocks validate against the CRD's schema and the
controller's models; the user guide's full example is deploy/examples/slopolicy.yaml and its
overlay renders; every alert in deploy/base/prometheusrule.yaml has a runbook in
docs/operations.md at its ``runbook_url`` anchor; repository paths, test names and relative links
in the docs exist; and the generated sections of docs/reference.md (CLI, CRD fields, validation
rules, policy parameters, decision reasons) equal what the code renders. Regenerate those with
``.venv/bin/python -m tests.test_docs`` from the repository root.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from autoscaler import crd
from autoscaler.cli import app
from autoscaler.k8s.schema import CustomSchema
from autoscaler.policies import POLICIES
from simulator.scenario import bundled_scenarios

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DOC_FILES = (ROOT / "README.md", *sorted(DOCS.glob("*.md")))
REFERENCE = DOCS / "reference.md"
CRD_FILE = ROOT / "deploy/crd/sloscaler.dev_slopolicies.yaml"
RULES_FILE = ROOT / "deploy/base/prometheusrule.yaml"
EXAMPLE_POLICY = ROOT / "deploy/examples/slopolicy.yaml"
KUBECTL = shutil.which("kubectl")
SHELL_LANGS = frozenset({"sh", "bash", "shell", "zsh", "console"})
REGENERATE = ".venv/bin/python -m tests.test_docs"

runner = CliRunner()

# --- what each command needs ----------------------------------------------------------------

#: commands that read only and finish in well under a second: run, not just parsed
RUN_READ_ONLY: frozenset[tuple[str, ...]] = frozenset(
    {("scenarios",), ("catalog",), ("crd", "render"), ("dashboards", "render")}
)
#: options that make a RUN_READ_ONLY command write a file: then it needs a mapping
WRITES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("crd", "render"): ("-o", "--output"),
    ("dashboards", "render"): ("-o", "--output-dir"),
}
#: a RUN_READ_ONLY command that writes unless given one of these
READ_ONLY_WITH: dict[tuple[str, ...], str] = {("dashboards", "render"): "--check"}

#: kubectl verbs that only inspect a cluster (or read local config)
READ_ONLY_KUBECTL = frozenset(
    {
        ("get",),
        ("describe",),
        ("logs",),
        ("explain",),
        ("events",),
        ("top",),
        ("wait",),
        ("version",),
        ("api-resources",),
        ("api-versions",),
        ("cluster-info",),
        ("auth", "can-i"),
        ("auth", "whoami"),
        ("rollout", "status"),
        ("rollout", "history"),
        ("config", "view"),
        ("config", "current-context"),
    }
)
KUSTOMIZE_VERBS = frozenset({"apply", "diff", "kustomize"})
#: programs that only filter text on a pipe
TEXT_FILTERS = frozenset({"grep", "head", "tail", "jq", "sort", "uniq", "wc", "less"})

#: documented command (as the doc writes it, comments and continuations removed) → what runs it:
#: ``tests/<file>.py::<test function>`` or ``make <target>``
EXERCISED_BY: dict[str, str] = {
    # README.md
    "sloscaler simulate --scenario azure-conv-h100 --report report.html": "make demo",
    "sloscaler simulate --policy static-peak --json -": (
        "tests/test_docs.py::test_the_own_traffic_commands_run"
    ),
    "sloscaler simulate --trace my-trace.csv --duration 600 --seed 3": (
        "tests/test_cli.py::test_trace_option_accepts_native_csv"
    ),
    "sloscaler explain --scenario azure-conv-h100 --at 1800": (
        "tests/test_cli.py::test_explain_prints_every_stage_of_a_decision"
    ),
    "sloscaler predictor train --data samples.csv --out models/": (
        "tests/predictor/test_predictor_cli.py::test_train_then_eval_round_trip"
    ),
    "sloscaler predictor serve --model models/": (
        "tests/predictor/test_predictor_cli.py::"
        "test_serve_starts_on_the_registry_with_windows_and_profiles"
    ),
    # docs/predictor.md
    "sloscaler predictor serve --model models/ --windows windows/ --prometheus-url "
    "http://prometheus:9090 --train-windows-every 3600 --train-windows-lookback 21600 "
    "--match namespace=llm": (
        "tests/predictor/test_predictor_window_training.py::"
        "test_serve_trains_window_models_from_prometheus"
    ),
    # docs/bench.md
    "sloscaler bench": "make bench",
    "sloscaler bench --scenarios azure-conv-h100,wide-ep --policies hpa-kv,slo --seeds 1 "
    "--out run1": "tests/test_bench.py::test_bench_writes_json_csv_and_report",
    # docs/controller.md
    "sloscaler run --once --no-leader-elect --kubeconfig KUBECONFIG --predictor-url URL "
    "--predictor-timeout 2 --log-level warning": (
        "tests/k8s/test_predictor_capacity.py::test_run_once_asks_the_predictor_url"
    ),
    # docs/dashboards.md
    "sloscaler dashboards render": (
        "tests/test_dashboards_render.py::test_the_documented_sloscaler_commands_run"
    ),
    # docs/policy.md
    "sloscaler simulate --policy slo": (
        "tests/test_cli.py::test_simulate_json_contract_and_reproducibility"
    ),
    # docs/simulator.md
    "sloscaler simulate": "make demo",
    "sloscaler simulate --scenario mooncake-pd --json -": (
        "tests/test_cli.py::test_simulate_json_contract_and_reproducibility"
    ),
    "sloscaler simulate --trace my.csv --duration 600 --seed 7 --report run.html": (
        "tests/test_cli.py::test_simulate_writes_report_and_json_files"
    ),
    "sloscaler simulate --openmetrics run.om": (
        "tests/test_cli.py::test_openmetrics_file_loads_into_a_prometheus_tsdb"
    ),
    # docs/user-guide.md
    "sloscaler simulate --scenario my-cluster.yaml --trace my-trace.csv --report slo.html": (
        "tests/test_docs.py::test_the_own_traffic_commands_run"
    ),
    "sloscaler simulate --scenario my-cluster.yaml --trace my-trace.csv --policy static-peak "
    "--json static-peak.json": "tests/test_docs.py::test_the_own_traffic_commands_run",
    "sloscaler explain --scenario my-cluster.yaml --trace my-trace.csv --at 600": (
        "tests/test_docs.py::test_the_own_traffic_commands_run"
    ),
    "helm install prometheus-adapter prometheus-community/prometheus-adapter -n monitoring "
    "-f deploy/overlays/prometheus-adapter/values.yaml": (
        "tests/test_docs.py::test_prometheus_adapter_values_match_its_config"
    ),
    # docs/reference.md
    "sloscaler crd render -o deploy/crd/sloscaler.dev_slopolicies.yaml": (
        "tests/k8s/test_crd.py::test_cli_renders_the_same_yaml"
    ),
}


# --- finding the commands -------------------------------------------------------------------


@dataclass(frozen=True)
class DocCommand:
    """One command of a fenced shell block: where it is, and its words."""

    doc: Path
    line: int
    text: str  # the whole line as written (continuations joined, comment dropped)
    words: tuple[str, ...]  # one command of it (split at pipes and ;, &&, ||)
    piped: bool = False  # it reads the previous command's output

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def key(self) -> str:
        return " ".join(self.words)


_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\s`]*)")


def fenced_blocks(path: Path) -> Iterator[tuple[str, int, list[str]]]:
    """``(language, line number of the first content line, lines)`` of every fenced block."""
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            line = lines[j]
            body.append(line[indent:] if not line[:indent].strip() else line.lstrip())
            j += 1
        yield m["info"].lower(), i + 2, body
        i = j + 1


def strip_comment(line: str) -> str:
    """Drop a shell comment: ``#`` outside quotes at the start of a word."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def split_commands(text: str) -> list[tuple[tuple[str, ...], bool]]:
    """Each command on a shell line (split at ``|``, ``;``, ``&&``, ``||``): its words, and
    whether it reads the previous one's output through a pipe."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    commands: list[tuple[tuple[str, ...], bool]] = []
    words: list[str] = []
    piped = redirect = False
    for token in lexer:
        if redirect:
            redirect = False
            continue
        if token in {"|", ";", "&&", "||", "&"}:
            if words:
                commands.append((tuple(words), piped))
            words, piped = [], token == "|"
        elif set(token) <= set("<>&"):  # a redirection: drop its file (or fd) and `2` of `2>`
            if words and words[-1].isdigit():
                words.pop()
            redirect = True
        else:
            words.append(token)
    if words:
        commands.append((tuple(words), piped))
    return commands


def shell_lines(lang: str, first: int, body: list[str]) -> Iterator[tuple[int, str]]:
    """``(line number, command line)`` of a shell block, continuations joined."""
    pending, start = "", 0
    for n, raw in enumerate(body, start=first):
        line = raw.rstrip()
        if not pending:
            if lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            start = n
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, strip_comment(pending + line)
        pending = ""
    if pending:
        yield start, strip_comment(pending)


def documented_commands(paths: tuple[Path, ...] = DOC_FILES) -> list[DocCommand]:
    out = []
    for path in paths:
        for lang, first, body in fenced_blocks(path):
            if lang not in SHELL_LANGS:
                continue
            for line, text in shell_lines(lang, first, body):
                for words, piped in split_commands(text):
                    out.append(DocCommand(path, line, text, words, piped))
    return out


COMMANDS = documented_commands()


# --- the typer app --------------------------------------------------------------------------


@cache
def root_command() -> Any:
    return typer.main.get_command(app)


def resolve(words: tuple[str, ...]) -> tuple[Any, tuple[str, ...], list[str]]:
    """``sloscaler a b --x 1`` → (the command object, ``("a", "b")``, ``["--x", "1"]``)."""
    cmd, rest = root_command(), list(words[1:])
    path: list[str] = []
    while getattr(cmd, "commands", None) is not None and rest and not rest[0].startswith("-"):
        sub = cmd.commands.get(rest[0])
        if sub is None:
            known = ", ".join(sorted(cmd.commands))
            raise LookupError(f"no command {' '.join(['sloscaler', *path, rest[0]])!r} ({known})")
        cmd, path, rest = sub, [*path, rest[0]], rest[1:]
    return cmd, tuple(path), rest


def long_options(words: tuple[str, ...]) -> list[str]:
    return [w.split("=", 1)[0] for w in words if w.startswith("--") and len(w) > 2]


def option_values(rest: list[str], *names: str) -> list[str]:
    values = []
    for i, word in enumerate(rest):
        for name in names:
            if word == name and i + 1 < len(rest):
                values.append(rest[i + 1])
            elif word.startswith(name + "="):
                values.append(word.split("=", 1)[1])
    return values


def semantic_problems(rest: list[str]) -> list[str]:
    """Bundled scenario and policy names that do not exist (a YAML path is the user's own)."""
    problems = []
    scenarios = set(bundled_scenarios())
    for value in option_values(rest, "--scenario", "--scenarios"):
        for name in value.split(","):
            if not name.endswith((".yaml", ".yml")) and name not in scenarios:
                problems.append(f"no bundled scenario {name!r}")
    for value in option_values(rest, "--policy", "--policies"):
        for name in value.split(","):
            if name.split("@", 1)[0] not in POLICIES:
                problems.append(f"no policy {name!r}")
    return problems


def run_cli(args: list[str], cwd: Path = ROOT) -> str | None:
    """Run ``sloscaler ARGS`` in process from ``cwd``; the problem, or None when it exits 0."""
    import os

    before = Path.cwd()
    os.chdir(cwd)
    try:
        result = runner.invoke(app, args)
    finally:
        os.chdir(before)
    if result.exit_code != 0:
        return f"`sloscaler {' '.join(args)}` exited {result.exit_code}: {result.output[-800:]}"
    return None


# --- what exercises a command ---------------------------------------------------------------


@cache
def makefile_targets() -> dict[str, str]:
    """Target → its recipe (the lines under it)."""
    targets: dict[str, str] = {}
    current: str | None = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", line)
        if m:
            current = m[1]
            targets.setdefault(current, "")
        elif current and line.startswith("\t"):
            targets[current] += line + "\n"
        elif line.strip() and not line.startswith("#"):
            current = None
    return targets


def missing_test_function(ref: str) -> str | None:
    """``tests/x.py::test_y`` (or ``::Class::test_y``) → the problem, or None."""
    file, _, name = ref.partition("::")
    path = ROOT / file
    if not path.is_file():
        return f"{file} does not exist"
    if not name:
        return None
    tree = ast.parse(path.read_text())
    scope: list[ast.stmt] = tree.body
    for part in name.split("::"):
        found = [
            n
            for n in scope
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and n.name == part
        ]
        if not found:
            return f"{file} has no {name}"
        node = found[0]
        scope = node.body if isinstance(node, ast.ClassDef) else []
    return None


def exerciser_text(exerciser: str) -> tuple[str | None, str]:
    """(problem, the text that must mention the command's words)."""
    if exerciser.startswith("make "):
        target = exerciser.split()[1]
        recipe = makefile_targets().get(target)
        if recipe is None:
            return f"the Makefile has no target {target!r}", ""
        return None, recipe
    problem = missing_test_function(exerciser)
    if problem:
        return problem, ""
    return None, (ROOT / exerciser.partition("::")[0]).read_text()


def mapped_problem(cmd: DocCommand, needs: list[str]) -> str | None:
    exerciser = EXERCISED_BY.get(cmd.key)
    if exerciser is None:
        return (
            f"{cmd.where}: nothing exercises `{cmd.key}`; run it from a test (or a Makefile "
            f"target) and add it to EXERCISED_BY in tests/test_docs.py"
        )
    problem, text = exerciser_text(exerciser)
    if problem:
        return f"{cmd.where}: `{cmd.key}` maps to {exerciser}, but {problem}"
    missing = [w for w in needs if w not in text]
    if missing:
        return (
            f"{cmd.where}: `{cmd.key}` maps to {exerciser}, which never mentions "
            f"{', '.join(missing)}"
        )
    return None


def sloscaler_problem(cmd: DocCommand) -> str | None:
    try:
        leaf, path, rest = resolve(cmd.words)
    except LookupError as e:
        return f"{cmd.where}: {e}"
    if getattr(leaf, "commands", None) is not None:
        return f"{cmd.where}: `{cmd.key}` names a command group, not a command"
    if "--help" in rest:
        return run_cli([*path, "--help"])
    try:
        leaf.make_context(" ".join(["sloscaler", *path]), list(rest))
    except Exception as e:  # typer's vendored click raises UsageError and friends
        return f"{cmd.where}: `{cmd.key}`: {e}"
    problems = semantic_problems(rest)
    if problems:
        return f"{cmd.where}: `{cmd.key}`: {'; '.join(problems)}"
    writes = set(WRITES.get(path, ())) & {w.split("=", 1)[0] for w in rest}
    needed_flag = READ_ONLY_WITH.get(path)
    if path in RUN_READ_ONLY and not writes and (needed_flag is None or needed_flag in rest):
        problem = run_cli([*path, *rest])
        return f"{cmd.where}: {problem}" if problem else None
    return mapped_problem(cmd, [*path, *long_options(cmd.words)])


def kubectl_verb(words: tuple[str, ...]) -> tuple[str, ...]:
    plain = [w for w in words[1:] if not w.startswith("-")]
    return tuple(plain[:2])


@cache
def kustomize_render(directory: str) -> str | None:
    """The problem rendering ``directory`` with ``kubectl kustomize``, or None."""
    path = ROOT / directory
    if not (path / "kustomization.yaml").is_file():
        return f"{directory} is not a kustomization in the repository"
    if KUBECTL is None:
        return None  # the directory exists; rendering needs kubectl (make test installs it)
    done = subprocess.run(
        [KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        return f"`kubectl kustomize {directory}` fails: {done.stderr.strip()[-500:]}"
    if not list(yaml.safe_load_all(done.stdout)):
        return f"`kubectl kustomize {directory}` renders nothing"
    return None


def kubectl_problem(cmd: DocCommand) -> str | None:
    words = cmd.words
    verb = kubectl_verb(words)
    if verb[:1] and verb[0] in KUSTOMIZE_VERBS:
        if verb[0] == "kustomize":
            dirs = [w for w in words[2:] if not w.startswith("-")][:1]
        else:
            dirs = option_values(list(words), "-k", "--kustomize")
        if dirs and not (set(option_values(list(words), "-f", "--filename"))):
            problems = [p for d in dirs if (p := kustomize_render(d.rstrip("/")))]
            return f"{cmd.where}: {'; '.join(problems)}" if problems else None
    if verb[:1] in READ_ONLY_KUBECTL or verb in READ_ONLY_KUBECTL:
        return None
    if cmd.key in EXERCISED_BY:
        return mapped_problem(cmd, [])
    inspection = ", ".join(sorted(" ".join(v) for v in READ_ONLY_KUBECTL))
    return (
        f"{cmd.where}: `{cmd.key}` changes a cluster; only `kubectl apply -k DIR` of a "
        f"kustomization here and read-only inspection ({inspection}) need no mapping — "
        f"exercise it from a test and add it to EXERCISED_BY"
    )


def pytest_problem(cmd: DocCommand) -> str | None:
    paths = [w for w in cmd.words[1:] if not w.startswith("-") and w.startswith("tests")]
    if not paths:
        return f"{cmd.where}: `{cmd.key}` names no test file"
    problems = [p for w in paths if (p := missing_test_function(w))]
    return f"{cmd.where}: {'; '.join(problems)}" if problems else None


def other_problem(cmd: DocCommand) -> str | None:
    program = Path(cmd.words[0]).name
    files = [w for w in cmd.words[1:] if "/" in w and (ROOT / w).exists()]
    return mapped_problem(cmd, [program, *files])


def command_problem(cmd: DocCommand) -> str | None:
    program = Path(cmd.words[0]).name
    if program == "sloscaler":
        return sloscaler_problem(cmd)
    if program == "make":
        targets = [w for w in cmd.words[1:] if not w.startswith("-") and "=" not in w]
        missing = [t for t in targets if t not in makefile_targets()]
        if not targets or missing:
            return f"{cmd.where}: `{cmd.key}`: the Makefile has no target {missing or targets}"
        return None
    if program == "kubectl":
        return kubectl_problem(cmd)
    if program == "pytest":
        return pytest_problem(cmd)
    if program in TEXT_FILTERS and cmd.piped:
        return None
    return other_problem(cmd)


# --- the tests: commands --------------------------------------------------------------------


def test_the_readme_shows_the_two_commands() -> None:
    readme = [c.key for c in COMMANDS if c.doc.name == "README.md"]
    assert "make demo" in readme
    assert "make test" in readme


@pytest.mark.parametrize("cmd", COMMANDS, ids=[f"{c.where} {c.key}"[:90] for c in COMMANDS])
def test_every_documented_command_is_exercised(cmd: DocCommand) -> None:
    problem = command_problem(cmd)
    assert problem is None, problem


def test_every_mapping_is_used_and_exists() -> None:
    keys = {c.key for c in COMMANDS}
    stale = sorted(set(EXERCISED_BY) - keys)
    assert not stale, f"EXERCISED_BY names commands no doc shows any more: {stale}"
    for command, exerciser in EXERCISED_BY.items():
        problem, _ = exerciser_text(exerciser)
        assert problem is None, f"{command}: {exerciser}: {problem}"


def _parse_fixture(text: str) -> list[tuple[str, ...]]:
    lines = list(shell_lines("sh", 1, text.splitlines()))
    return [words for _, line in lines for words, _ in split_commands(line)]


def test_the_parser_reads_shell_as_a_shell_does() -> None:
    assert _parse_fixture("a --x=y#z  # note\n# only a comment\n\nb 'c # d' \\\n  --e f\n") == [
        ("a", "--x=y#z"),
        ("b", "c # d", "--e", "f"),
    ]
    assert _parse_fixture("k get x | grep y && make z > out.txt 2>&1\n") == [
        ("k", "get", "x"),
        ("grep", "y"),
        ("make", "z"),
    ]
    console = list(shell_lines("console", 1, ["$ sloscaler scenarios", "output line"]))
    assert console == [(1, "sloscaler scenarios")]


def test_the_rules_catch_what_they_promise() -> None:
    """Each rule fails where it should (so a passing run means something)."""
    doc = ROOT / "README.md"

    def problem(text: str) -> str | None:
        ((words, piped),) = split_commands(text)
        return command_problem(DocCommand(doc, 1, text, words, piped))

    assert "no command" in str(problem("sloscaler simulat"))
    assert "No such option" in str(problem("sloscaler simulate --nope 1"))
    assert "no bundled scenario" in str(problem("sloscaler simulate --scenario nope"))
    assert "no policy" in str(problem("sloscaler bench --policies hpa-kv,nope"))
    assert "nothing exercises" in str(problem("sloscaler simulate --seed 99"))
    assert "no target" in str(problem("make no-such-target"))
    assert "not a kustomization" in str(problem("kubectl apply -k deploy/overlays/nope"))
    assert "changes a cluster" in str(problem("kubectl delete slopolicy x"))
    assert "nothing exercises" in str(problem("curl http://localhost:8080/metrics"))
    assert problem("kubectl get slopolicies -A") is None
    assert problem("make demo") is None


# --- exercisers that live here --------------------------------------------------------------

OWN_TRACE = "arrival_s,input_tokens,output_tokens\n" + "".join(
    f"{i * 0.5},{300 + 40 * (i % 5)},{20 + i % 7}\n" for i in range(120)
)


def test_the_own_traffic_commands_run(tmp_path: Path) -> None:
    """The user guide's "your own traffic" commands, verbatim, on its scenario file and a
    one-minute native CSV trace standing in for the user's (also: simulate --policy
    static-peak --json, as the README shows it)."""
    guide = DOCS / "user-guide.md"
    scenarios = [
        text
        for lang, _, body in fenced_blocks(guide)
        if lang == "yaml" and (text := "\n".join(body)) and "name: my-cluster" in text
    ]
    assert len(scenarios) == 1, "docs/user-guide.md: one YAML block is the scenario my-cluster"
    (tmp_path / "my-cluster.yaml").write_text(scenarios[0] + "\n")
    (tmp_path / "my-trace.csv").write_text(OWN_TRACE)
    commands = [c for c in documented_commands((guide,)) if "my-cluster.yaml" in c.words]
    assert len(commands) >= 3
    for cmd in commands:
        problem = run_cli(list(cmd.words[1:]), cwd=tmp_path)
        assert problem is None, f"{cmd.where}: {problem}"
    assert (tmp_path / "slo.html").read_text().startswith("<!DOCTYPE html>")
    summary = json.loads((tmp_path / "static-peak.json").read_text())
    assert (summary["policy"], summary["requests"]) == ("static-peak", 120)


def test_prometheus_adapter_values_match_its_config() -> None:
    """The helm command of the user guide installs prometheus-adapter with
    deploy/overlays/prometheus-adapter/values.yaml: its rules must be the overlay's config.yaml
    rules, and its Prometheus the one the controller reads."""
    folder = ROOT / "deploy/overlays/prometheus-adapter"
    values = yaml.safe_load((folder / "values.yaml").read_text())
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert values["rules"]["default"] is False
    assert values["rules"]["external"] == config["externalRules"]
    (rule,) = config["externalRules"]
    assert "sloscaler_desired_replicas" in rule["seriesQuery"]
    controller = yaml.safe_load((ROOT / "deploy/base/controller.yaml").read_text().split("---")[0])
    args = controller["spec"]["template"]["spec"]["containers"][0]["args"]
    (url,) = [a.split("=", 1)[1] for a in args if a.startswith("--prometheus-url=")]
    assert url == f"{values['prometheus']['url']}:{values['prometheus']['port']}"


# --- every command's help renders -----------------------------------------------------------


def _leaves(cmd: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    subs = getattr(cmd, "commands", None)
    if subs is None:
        yield path
        return
    for name in subs:
        yield from _leaves(subs[name], (*path, name))


def test_every_command_has_help() -> None:
    leaves = list(_leaves(root_command(), ()))
    assert ("simulate",) in leaves
    assert ("predictor", "serve") in leaves
    for path in leaves:
        problem = run_cli([*path, "--help"])
        assert problem is None, problem


# --- YAML shown in the docs -----------------------------------------------------------------


def _yaml_docs(path: Path) -> Iterator[tuple[int, Any]]:
    for lang, first, body in fenced_blocks(path):
        if lang in {"yaml", "yml"}:
            for doc in yaml.safe_load_all("\n".join(body)):
                yield first, doc


def test_documented_slopolicies_are_valid() -> None:
    crd_doc = yaml.safe_load(CRD_FILE.read_text())
    schema = CustomSchema(crd_doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    seen = 0
    for path in DOC_FILES:
        for line, doc in _yaml_docs(path):
            if isinstance(doc, dict) and doc.get("kind") == crd.KIND:
                where = f"{path.relative_to(ROOT)}:{line}"
                assert schema.validate(doc) == [], where
                crd.parse_spec(doc["spec"])
                seen += 1
    assert seen >= 1


def test_the_user_guide_example_is_the_shipped_one() -> None:
    example = yaml.safe_load(EXAMPLE_POLICY.read_text())
    shown = [d for _, d in _yaml_docs(DOCS / "user-guide.md") if d == example]
    assert shown, "docs/user-guide.md must show deploy/examples/slopolicy.yaml as it is"


@pytest.mark.skipif(KUBECTL is None, reason="kubectl (kustomize) not on PATH")
def test_the_user_guide_overlay_renders(tmp_path: Path) -> None:
    """The user guide's own overlay, next to a checkout of this repository, renders with its
    image and its --capacity patch applied."""
    (overlay,) = [
        "\n".join(body)
        for lang, _, body in fenced_blocks(DOCS / "user-guide.md")
        if lang == "yaml" and body and body[0].startswith("# my-sloscaler/kustomization.yaml")
    ]
    (tmp_path / "sloscaler").symlink_to(ROOT, target_is_directory=True)
    mine = tmp_path / "my-sloscaler"
    mine.mkdir()
    (mine / "kustomization.yaml").write_text(overlay + "\n")
    policy = yaml.safe_load(EXAMPLE_POLICY.read_text())
    policy["spec"]["mode"] = "advisory"
    (mine / "slopolicy.yaml").write_text(yaml.safe_dump(policy))
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, "kustomize", str(mine)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    objs = [d for d in yaml.safe_load_all(out) if d]
    (dep,) = [
        o
        for o in objs
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "sloscaler-controller"
    ]
    (ctl,) = dep["spec"]["template"]["spec"]["containers"]
    assert any(a.startswith("--capacity=") for a in ctl["args"])
    base_image = "ghcr.io/sloscaler/sloscaler"
    assert not [o for o in objs if base_image in json.dumps(o)], "the image was not replaced"
    assert [o["spec"]["mode"] for o in objs if o["kind"] == crd.KIND] == ["advisory"]


# --- alerts and their runbooks --------------------------------------------------------------


def github_anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    anchors: set[str] = set()
    counts: dict[str, int] = {}
    in_fence = False
    for line in path.read_text().splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        if in_fence:
            continue
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        text = re.sub(r"[`*]|<[^>]+>", "", m[1]).lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        n = counts.get(slug, 0)
        counts[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _alerts() -> list[dict[str, Any]]:
    rule = yaml.safe_load(RULES_FILE.read_text())
    return [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]


def _section(text: str, heading: str) -> str:
    m = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.MULTILINE)
    assert m, f"docs/operations.md has no heading {heading!r}"
    level = len(m[1])
    rest = text[m.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def test_every_alert_has_a_runbook() -> None:
    ops = DOCS / "operations.md"
    text, anchors = ops.read_text(), github_anchors(ops)
    alerts = _alerts()
    assert len(alerts) >= 5
    for alert in alerts:
        name = alert["alert"]
        url = alert.get("annotations", {}).get("runbook_url", "")
        page, _, anchor = url.partition("#")
        assert page.endswith("docs/operations.md"), f"{name}: runbook_url {url!r}"
        assert anchor == name.lower(), f"{name}: runbook_url anchor #{anchor}"
        assert anchor in anchors, f"{name}: docs/operations.md has no heading #{anchor}"
        body = _section(text, name)
        for part in ("**Meaning**", "**Impact**", "**Diagnosis**", "**Fix**"):
            assert part in body, f"docs/operations.md: the runbook of {name} lacks {part}"
    documented = set(re.findall(r"^### (\w+)\s*$", _section(text, "Alerts"), re.MULTILINE))
    assert documented == {a["alert"] for a in alerts}, "a runbook without an alert, or v.v."


# --- paths, tests and links named in the docs -----------------------------------

_TOP = ("autoscaler", "policies", "predictor", "simulator", "dashboards", "deploy", "docs")
_PATH = re.compile(r"^(?:" + "|".join((*_TOP, "tests", "benchmarks")) + r")/[\w./-]*(::\w+)*$")


def test_paths_tests_and_links_in_the_docs_exist() -> None:
    problems = []
    for page in DOC_FILES:
        text = page.read_text()
        where = page.relative_to(ROOT)
        for span in re.findall(r"`([^`\n]+)`", text):
            if _PATH.match(span) and "*" not in span:
                if "::" in span:
                    if problem := missing_test_function(span):
                        problems.append(f"{where}: `{span}`: {problem}")
                elif not (ROOT / span).exists():
                    problems.append(f"{where}: `{span}` does not exist")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (page.parent / file).resolve() if file else page
            if not dest.exists():
                problems.append(f"{where}: link {target} → {file} does not exist")
            elif anchor and dest.suffix == ".md" and anchor not in github_anchors(dest):
                problems.append(f"{where}: link {target} → no heading #{anchor}")
    assert not problems, "\n".join(problems)


def test_the_architecture_names_every_layer_contract() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = [c["name"] for c in config["tool"]["importlinter"]["contracts"]]
    text = (DOCS / "architecture.md").read_text()
    missing = [name for name in contracts if name not in text]
    assert not missing, f"docs/architecture.md does not name the import-linter contracts {missing}"


# --- generated sections of docs/reference.md ------------------------------------------------


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    return "`" + text.replace("|", "\\|") + "`"


def _paragraphs(help_text: str) -> list[str]:
    text = help_text.replace("``", "`")
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def cli_reference() -> str:
    """Every command with its help and every option (as ``--help`` prints them)."""
    from typer._click.core import Context

    out: list[str] = []

    def visit(cmd: Any, path: tuple[str, ...], parent: Any) -> None:
        ctx = Context(cmd, info_name=path[-1], parent=parent)
        subs = getattr(cmd, "commands", None)
        if subs is not None:
            if len(path) > 1:
                out.extend([f"### `{' '.join(path)}`", "", *_paragraphs(cmd.help or ""), ""])
            for name in subs:
                visit(subs[name], (*path, name), ctx)
            return
        heading = "###" if len(path) == 2 else "####"
        out.extend([f"{heading} `{' '.join(path)}`", ""])
        for paragraph in _paragraphs(cmd.help or ""):
            out.extend([paragraph, ""])
        rows = [
            record
            for p in cmd.params
            if not getattr(p, "hidden", False) and (record := p.get_help_record(ctx))
        ]
        if rows:
            out.extend(["| option | meaning |", "|---|---|"])
            out.extend(f"| {_code(decl)} | {_cell(help_)} |" for decl, help_ in rows)
        else:
            out.append("No options.")
        out.append("")

    visit(root_command(), ("sloscaler",), None)
    return "\n".join(out).rstrip() + "\n"


_PATTERNS = {
    crd.DNS_LABEL: "DNS label",
    crd.DNS_SUBDOMAIN: "DNS subdomain",
    crd.REASON_PATTERN: "CamelCase",
}


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _constraints(node: dict[str, Any]) -> str:
    parts = []
    if "enum" in node:
        values = [_code(str(v)) for v in node["enum"]]
        parts.append(f"only {values[0]}" if len(values) == 1 else "one of " + ", ".join(values))
    if "minimum" in node:
        parts.append(("> " if node.get("exclusiveMinimum") else "≥ ") + _number(node["minimum"]))
    if "maximum" in node:
        parts.append(("< " if node.get("exclusiveMaximum") else "≤ ") + _number(node["maximum"]))
    lo, hi = node.get("minLength"), node.get("maxLength")
    if hi is not None:
        parts.append(f"length {lo}–{hi}" if lo else f"length ≤ {hi}")
    lo, hi = node.get("minItems"), node.get("maxItems")
    if hi is not None:
        parts.append(f"{lo}–{hi} items" if lo else f"≤ {hi} items")
    if "pattern" in node:
        parts.append(_PATTERNS.get(node["pattern"], _code(node["pattern"])))
    if "format" in node:
        parts.append(node["format"])
    if node.get("x-kubernetes-list-type") == "map":
        keys = ", ".join(_code(k) for k in node["x-kubernetes-list-map-keys"])
        parts.append(f"unique by {keys}")
    return "; ".join(parts)


def _type(node: dict[str, Any]) -> str:
    if node.get("type") == "array":
        return f"array of {_type(node.get('items', {}))}"
    return str(node.get("type", ""))


def _crd_schema() -> dict[str, Any]:
    doc = yaml.safe_load(CRD_FILE.read_text())
    schema: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _crd_nodes() -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(field path, schema node, required) of every field under spec and status."""

    def walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any], bool]]:
        if node.get("type") == "array":
            node = node.get("items", {})
            path += "[]"
        required = set(node.get("required", ()))
        for name, child in node.get("properties", {}).items():
            yield f"{path}.{name}", child, name in required
            yield from walk(child, f"{path}.{name}")

    root = _crd_schema()
    for top in ("spec", "status"):
        yield top, root["properties"][top], top in root.get("required", ())
        yield from walk(root["properties"][top], top)


def crd_fields() -> str:
    rows = ["| field | type | required | constraints | meaning |", "|---|---|---|---|---|"]
    for path, node, required in _crd_nodes():
        rows.append(
            f"| {_code(path)} | {_type(node)} | {'yes' if required else ''} | "
            f"{_constraints(node)} | {_cell(node.get('description', ''))} |"
        )
    return "\n".join(rows) + "\n"


def crd_rules() -> str:
    rows = ["| on | rule (CEL) | message |", "|---|---|---|"]
    for path, node, _ in _crd_nodes():
        target = node.get("items", node) if node.get("type") == "array" else node
        for rule in target.get("x-kubernetes-validations", ()):
            where = path + ("[]" if node.get("type") == "array" else "")
            rows.append(f"| {_code(where)} | {_code(rule['rule'])} | {_cell(rule['message'])} |")
    return "\n".join(rows) + "\n"


def policy_params() -> str:
    schema = json.loads((DOCS / "policy-params.schema.json").read_text())
    rows = ["| field | type | default | constraints | meaning |", "|---|---|---|---|---|"]
    for name, node in schema["properties"].items():
        default = node.get("default", [] if node.get("type") == "array" else "")
        bounds = dict(node)
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            if key in node:  # JSON Schema 2020: the bound itself
                bounds[key.replace("exclusiveM", "m")] = node[key]
                bounds[key] = True
        rows.append(
            f"| {_code(name)} | {_type(node)} | {_code(json.dumps(default))} | "
            f"{_constraints(bounds)} | {_cell(node.get('description', ''))} |"
        )
    return "\n".join(rows) + "\n"


def decision_reasons() -> str:
    """policies/reasons.py's members, grouped by their section comment."""
    rows = ["| reason | where | meaning |", "|---|---|---|"]
    group = ""
    for line in (ROOT / "policies/reasons.py").read_text().splitlines():
        if m := re.match(r"^\s+# (.+)$", line):
            group = m[1]
        elif m := re.match(r'^\s+(\w+) = "(\w+)"\s+#\s*(.+)$', line):
            rows.append(f"| {_code(m[2])} | {group} | {_cell(m[3])} |")
    return "\n".join(rows) + "\n"


GENERATED: dict[str, Callable[[], str]] = {
    "cli": cli_reference,
    "crd-fields": crd_fields,
    "crd-rules": crd_rules,
    "policy-params": policy_params,
    "decision-reasons": decision_reasons,
}


def _markers(name: str) -> tuple[str, str]:
    return (
        f"<!-- generated: {name} (by {REGENERATE}; do not edit) -->\n",
        f"<!-- end generated: {name} -->",
    )


def generated_section(text: str, name: str) -> str | None:
    begin, end = _markers(name)
    start = text.find(begin)
    stop = text.find(end)
    if start < 0 or stop < start:
        return None
    return text[start + len(begin) : stop]


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_reference_sections_equal_the_code(name: str) -> None:
    shown = generated_section(REFERENCE.read_text(), name)
    begin, _ = _markers(name)
    assert shown is not None, f"docs/reference.md lacks the section starting {begin.strip()}"
    assert shown == GENERATED[name](), f"docs/reference.md: {name} is out of date; run {REGENERATE}"


def write_generated_sections() -> list[str]:
    """Rewrite every generated section of docs/reference.md; the names that changed."""
    text = REFERENCE.read_text()
    changed = []
    for name, render in GENERATED.items():
        begin, end = _markers(name)
        shown = generated_section(text, name)
        if shown is None:
            raise SystemExit(f"docs/reference.md lacks the markers {begin.strip()} … {end}")
        fresh = render()
        if shown != fresh:
            text = text.replace(begin + shown + end, begin + fresh + end)
            changed.append(name)
    REFERENCE.write_text(text)
    return changed


if __name__ == "__main__":
    names = write_generated_sections()
    sys.stdout.write(f"docs/reference.md: {', '.join(names) or 'nothing'} regenerated\n")
