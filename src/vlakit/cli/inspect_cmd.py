"""``vlakit inspect POLICY_DIR`` -- what is inside a saved policy folder, without building it."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from vlakit.cli._common import console, handle_errors


def inspect(
    policy_dir: Path = typer.Argument(..., help="A policy folder written by `vlakit train` / `vlakit run`."),
) -> None:
    """Summarise a saved policy folder without building it.

    Shows parameters per top-level module (read from the safetensors header, no weights loaded),
    the recipe and training facts, norm-stat robot types and the files.
    """
    from rich.table import Table
    from safetensors import safe_open

    from vlakit.errors import VlakitError

    folder = Path(policy_dir)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise VlakitError(f"{folder} is not a policy folder: {weights.name} is missing")
    from vlakit.policy_io import META_FILE

    meta_path = folder / META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    counts: dict[str, int] = {}
    dtypes: set[str] = set()
    with safe_open(str(weights), framework="pt") as fh:
        for name in fh.keys():
            sl = fh.get_slice(name)
            n = 1
            for d in sl.get_shape():
                n *= int(d)
            top = ".".join(name.split(".")[:2]) if name.startswith("heads.") else name.split(".")[0]
            counts[top] = counts.get(top, 0) + n
            dtypes.add(str(sl.get_dtype()))
    table = Table(title=f"policy {folder}")
    table.add_column("module")
    table.add_column("parameters", justify="right")
    for top, n in sorted(counts.items()):
        table.add_row(top, f"{n:,}")
    table.add_row("[bold]total[/]", f"[bold]{sum(counts.values()):,}[/]")
    console.print(table)
    for key in ("recipe", "vlakit_version", "components", "training"):
        if key in meta:
            console.print(f"{key}: {meta[key]}")
    console.print(f"weight dtypes: {', '.join(sorted(dtypes))}")
    stats_path = folder / "norm_stats.json"
    if stats_path.is_file():
        stats = json.loads(stats_path.read_text())
        entries = stats.get("entries", stats)
        console.print(f"norm stats for robot types: {', '.join(sorted(entries))}")
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    console.print("files: " + ", ".join(files))


def register(app: typer.Typer) -> None:
    app.command("inspect")(handle_errors(inspect))
