"""``sloscaler dashboards``: render the Grafana dashboards to JSON, or check the files.

Why a command: operators and CI need the JSON without writing Python — ``render`` writes one
file per dashboard for a ConfigMap or the UI, ``render --check`` fails when the committed files
no longer match the code (exit 1, naming each file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

dashboards_app = typer.Typer(help="Grafana dashboards as code.", no_args_is_help=True)


@dashboards_app.command("render")
def render_command(
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="directory of the JSON files")
    ] = Path("dashboards/json"),
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="write nothing; exit 1 listing the files that differ from the code"
        ),
    ] = False,
) -> None:
    """Write one Grafana dashboard JSON file per dashboard (only those that changed)."""
    from dashboards.render import DASHBOARDS, differing, write

    if check:
        stale = differing(output_dir)
        for name in stale:
            typer.echo(f"{output_dir / name} differs from the code", err=True)
        if stale:
            typer.echo("run: sloscaler dashboards render", err=True)
            raise typer.Exit(1)
        typer.echo(f"{len(DASHBOARDS)} dashboards in {output_dir} match the code")
        return
    written = write(output_dir)
    for name in written:
        typer.echo(f"wrote {output_dir / name}")
    typer.echo(f"{len(DASHBOARDS)} dashboards in {output_dir}, {len(written)} written")
