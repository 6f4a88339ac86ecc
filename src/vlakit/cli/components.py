"""``vlakit components list [KIND]``."""

from __future__ import annotations

import typer

from vlakit.cli._common import console, handle_errors

app = typer.Typer(no_args_is_help=True)


@app.command("list")
@handle_errors
def list_components(
    kind: str = typer.Argument(None, help="A kind such as vision_encoders, action_heads, envs (default: all)."),
) -> None:
    """List registered components: built-ins and installed plugins (plugins are not imported)."""
    from rich.table import Table

    from vlakit.registry import REGISTRIES, registry

    kinds = [registry(kind).kind] if kind else list(REGISTRIES)
    table = Table(title="vlakit components")
    table.add_column("kind")
    table.add_column("type")
    table.add_column("from")
    for k in kinds:
        reg = REGISTRIES[k]
        for key in reg.keys():
            table.add_row(k, key, reg.origin(key))
    console.print(table)
