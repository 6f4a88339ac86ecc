"""The ``vlakit`` command. Thin: every command imports heavy modules (torch, lightning) in its body.

``vlakit --help`` must not import torch (tested).
"""

from __future__ import annotations

import typer

from vlakit.cli import _common
from vlakit.cli.components import app as components_app
from vlakit.cli.plugins_cmd import app as plugins_app
from vlakit.cli.recipes import app as recipes_app

app = typer.Typer(
    name="vlakit",
    help="vlakit: build, train, evaluate and serve vision-language-action robot policies from recipes.\n\n"
    "Start with `vlakit run pi05_tabletop` (train + evaluate the default recipe on the embedded "
    "tabletop world), or `vlakit recipes list` to see what is shipped.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show full tracebacks on errors."),
) -> None:
    if verbose:
        _common.state.verbose = True


@app.command()
def version() -> None:
    """Print the vlakit version (and torch's, if installed)."""
    import importlib.metadata as md

    import vlakit

    try:
        torch_version = md.version("torch")
    except md.PackageNotFoundError:
        torch_version = "not installed"
    _common.console.print(f"vlakit {vlakit.__version__} (torch {torch_version})")


app.add_typer(components_app, name="components", help="List registered components by kind.")
app.add_typer(plugins_app, name="plugins", help="List installed plugins (without importing them).")
app.add_typer(recipes_app, name="recipes", help="List, show, validate recipes; print the recipe JSON schema.")

# Commands contributed by other subsystems register themselves here (each module stays light).
from vlakit.cli.data import app as data_app  # noqa: E402
from vlakit.cli.tokenizer import app as tokenizer_app  # noqa: E402

app.add_typer(data_app, name="data", help="Generate, inspect and read datasets (LeRobot v3 format).")
app.add_typer(tokenizer_app, name="tokenizer", help="Fit and report action tokenizers (FAST, binning).")

# Top-level commands (train / eval / run, ablate, serve, inspect); each module stays light.
for _module in ("vlakit.cli.jobs", "vlakit.cli.ablate", "vlakit.cli.serve", "vlakit.cli.inspect_cmd"):
    import importlib

    importlib.import_module(_module).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
