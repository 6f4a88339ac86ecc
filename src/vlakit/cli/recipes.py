"""``vlakit recipes list|show|validate|schema``."""

from __future__ import annotations

from pathlib import Path

import typer

from vlakit.cli._common import EXIT_BAD_INPUT, SetOption, console, err_console, handle_errors

app = typer.Typer(no_args_is_help=True)


@app.command("list")
@handle_errors
def list_recipes() -> None:
    """List recipes shipped with vlakit and with installed plugins."""
    from rich.table import Table

    from vlakit.recipe.load import available_recipes

    table = Table(title="vlakit recipes")
    table.add_column("name")
    table.add_column("from")
    table.add_column("path")
    for name, (origin, path) in sorted(available_recipes().items()):
        table.add_row(name, origin, str(path))
    console.print(table)


@app.command("show")
@handle_errors
def show(
    recipe: str = typer.Argument(..., help="Recipe name (see `vlakit recipes list`) or path to a YAML file."),
    overrides: list[str] = SetOption,
    params: bool = typer.Option(False, "--params", help="Build the policy on the meta device and print "
                                "exact parameter counts per component."),
) -> None:
    """Print the fully resolved recipe (extends merged, overrides applied, defaults filled) as YAML."""
    from rich.syntax import Syntax

    from vlakit.recipe.load import load_recipe, recipe_to_yaml

    r = load_recipe(recipe, overrides or [])
    if params:
        from vlakit.recipe.build import parameter_table

        console.print(parameter_table(r))
        return
    console.print(Syntax(recipe_to_yaml(r), "yaml", background_color="default"))


@app.command("validate")
@handle_errors
def validate(
    recipes: list[str] = typer.Argument(..., help="Recipe names or paths."),
    overrides: list[str] = SetOption,
) -> None:
    """Validate recipes. Reports every failure (not just the first); exit code 2 if any fails."""
    from vlakit.errors import VlakitError
    from vlakit.recipe.load import load_recipe

    failed = 0
    for ref in recipes:
        try:
            load_recipe(ref, overrides or [])
        except VlakitError as exc:
            failed += 1
            err_console.print(f"[bold red]FAIL[/] {ref}\n{exc}")
        else:
            console.print(f"[green]ok[/]   {ref}")
    if failed:
        err_console.print(f"{failed} of {len(recipes)} recipe(s) invalid")
        raise typer.Exit(EXIT_BAD_INPUT)


@app.command("schema")
@handle_errors
def schema(out: Path = typer.Option(None, "--out", "-o", help="Write to this file instead of stdout.")) -> None:
    """Print the JSON schema of recipes (component configs of every registered type included)."""
    import json

    from vlakit.recipe.schema import Recipe

    text = json.dumps(Recipe.model_json_schema(), indent=2)
    if out:
        from vlakit.io import atomic_write_text

        atomic_write_text(out, text + "\n")
        console.print(f"wrote {out}")
    else:
        print(text)
