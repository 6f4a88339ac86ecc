"""``vlakit tokenizer``: fit a FAST action tokenizer on LeRobot v3 datasets and report on it.

Light at import time: numpy, tokenizers and pyarrow are imported inside the command bodies.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vlakit.cli._common import console, handle_errors

if TYPE_CHECKING:
    from vlakit.components.action_tokenizers.report import TokenizerReport

app = typer.Typer(no_args_is_help=True, add_completion=False)

_DATA_HELP = "LeRobot v3 dataset folder (repeatable)."


@app.command()
@handle_errors
def fit(
    data: list[Path] = typer.Option(..., "--data", help=_DATA_HELP),
    out: Path = typer.Option(..., "--out", help="Folder to write the fitted tokenizer to (replaced)."),
    vocab_size: int = typer.Option(1024, "--vocab-size", min=2, help="BPE vocabulary size."),
    scale: float = typer.Option(10.0, "--scale", min=0.0, help="DCT coefficient scale before rounding."),
    horizon: int = typer.Option(50, "--horizon", min=1, help="Chunk length H (stored in the tokenizer)."),
    stride: int = typer.Option(1, "--stride", min=1, help="Start a chunk every STRIDE frames."),
    max_chunks: int | None = typer.Option(None, "--max-chunks", min=1,
                                          help="Fit on at most this many (evenly spaced) chunks per dataset."),
    key: str = typer.Option("action", "--key", help="Action feature to tokenize."),
) -> None:
    """Fit a FAST tokenizer (DCT + BPE) on the normalised action chunks of DATASETs."""
    import numpy as np

    from vlakit.components.action_tokenizers.dataset_chunks import load_action_chunks
    from vlakit.components.action_tokenizers.fast import FastConfig
    from vlakit.components.action_tokenizers.report import evaluate_tokenizer
    from vlakit.interfaces.action_tokenizer import ActionTokenizerError
    from vlakit.io import atomic_dir

    sets = [load_action_chunks(d, horizon=horizon, stride=stride, max_chunks=max_chunks, key=key) for d in data]
    _print_clipped(sets, key=key)
    dims = {s.name: s.chunks.shape[2] for s in sets}
    if len(set(dims.values())) != 1:
        raise ActionTokenizerError(f"datasets disagree on the {key!r} dim: {dims}; fit one tokenizer per "
                                   "action space")
    chunks = np.concatenate([s.chunks for s in sets])
    config = FastConfig(scale=scale, vocab_size=vocab_size, horizon=horizon, action_dim=chunks.shape[2])
    tokenizer = config.build()
    with console.status(f"fitting FAST on {len(chunks)} chunks of {horizon}x{chunks.shape[2]}"):
        tokenizer.fit(chunks)
    with atomic_dir(out) as tmp:
        tokenizer.save(tmp)
    lo, hi = tokenizer.coefficient_range
    console.print(f"wrote {out}: {tokenizer.trained_vocab_size} BPE tokens (vocab_size {vocab_size}), "
                  f"coefficients [{lo}, {hi}] at scale {scale}, fitted on {len(chunks)} chunks")
    _print_reports([(s.name, evaluate_tokenizer(tokenizer, s.chunks)) for s in sets], title="fit data")


@app.command()
@handle_errors
def report(
    folder: Path = typer.Argument(..., help="Saved action tokenizer folder (vlakit, or FAST+ layout)."),
    data: list[Path] = typer.Option(..., "--data", help=_DATA_HELP),
    horizon: int | None = typer.Option(None, "--horizon", min=1,
                                       help="Chunk length H (default: the tokenizer's own, else 50)."),
    stride: int = typer.Option(1, "--stride", min=1, help="Start a chunk every STRIDE frames."),
    max_chunks: int | None = typer.Option(None, "--max-chunks", min=1, help="Evaluate at most this many chunks."),
    key: str = typer.Option("action", "--key", help="Action feature to tokenize."),
) -> None:
    """Per dataset: mean/max tokens per chunk, naive H x A count, compression, round-trip error."""
    from vlakit.components.action_tokenizers import load_action_tokenizer
    from vlakit.components.action_tokenizers.dataset_chunks import load_action_chunks
    from vlakit.components.action_tokenizers.report import evaluate_tokenizer

    tokenizer = load_action_tokenizer(folder)
    h = horizon or getattr(getattr(tokenizer, "config", None), "horizon", None) or 50
    sets = [load_action_chunks(d, horizon=h, stride=stride, max_chunks=max_chunks, key=key) for d in data]
    _print_clipped(sets, key=key)
    _print_reports([(s.name, evaluate_tokenizer(tokenizer, s.chunks)) for s in sets], title=f"{folder}")


def _print_clipped(sets: list, *, key: str) -> None:
    for s in sets:
        if s.clipped:
            console.print(f"{s.name}: {s.clipped} {key!r} values outside the dataset's q01..q99 were clipped "
                          f"to [-1, 1] ({100 * s.clipped / max(s.num_frames * s.chunks.shape[2], 1):.2f} %)")


def _print_reports(rows: list[tuple[str, TokenizerReport]], *, title: str) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in ("dataset", "chunks", "HxA", "mean tok", "max tok", "compression", "failed",
                "max abs err", "RMSE"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for name, r in rows:
        table.add_row(name, str(r.num_chunks), f"{r.horizon}x{r.action_dim}={r.naive_tokens}",
                      f"{r.mean_tokens:.1f}", str(r.max_tokens), f"{r.compression:.2f}x", str(r.failed),
                      f"{r.max_abs_error:.4f}", f"{r.rmse:.4f}")
    console.print(table)
    console.print("errors are in normalised action units (q01/q99 -> [-1, 1], clipped, as in training)")
