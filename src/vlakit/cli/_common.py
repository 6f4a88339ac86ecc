"""Shared CLI plumbing: error handling, the console, option types. Keep this module light (no torch)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)

#: exit code for bad input (recipe, dataset, arguments)
EXIT_BAD_INPUT = 2


class _State:
    verbose: bool = os.environ.get("VLAKIT_VERBOSE", "") not in ("", "0")


state = _State()


def handle_errors(fn: F) -> F:
    """Print vlakit errors as one paragraph (exit 2); tracebacks only with ``--verbose``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vlakit.errors import VlakitError

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except VlakitError as exc:
            if state.verbose:
                err_console.print_exception()
            # soft wrap: the terminal wraps the lines, so paths and field names stay whole when copied
            err_console.print(f"[bold red]error:[/] {_escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


SetOption = typer.Option(
    None, "--set", "-s", help="Override a recipe field: dotted.path=value (repeatable). "
    "Values are parsed as YAML, e.g. --set train.stages.0.steps=10.", show_default=False)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {_escape(message)}", soft_wrap=True)


def is_tty() -> bool:
    return sys.stdout.isatty()
