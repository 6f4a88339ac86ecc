"""``vlakit plugins list``."""

from __future__ import annotations

import typer

from vlakit.cli._common import console, handle_errors

app = typer.Typer(no_args_is_help=True)


@app.command("list")
@handle_errors
def list_plugins() -> None:
    """List installed plugin entry points: name, group, distribution, version, load status.

    Reads package metadata only; no plugin code is imported. Set VLAKIT_DISABLE_PLUGIN_AUTOLOAD=1
    to turn plugin discovery off.
    """
    from rich.table import Table

    from vlakit import plugins

    if plugins.autoload_disabled():
        console.print(f"plugin discovery is disabled ({plugins.DISABLE_ENV}=1)")
        return
    rows = plugins.list_plugins()
    table = Table(title="vlakit plugins")
    for col in ("name", "group", "target", "distribution", "version", "status"):
        table.add_column(col)
    for p in rows:
        table.add_row(p.name, p.group, p.target, p.distribution, p.version, p.status)
    console.print(table if rows else "no vlakit plugins installed")
