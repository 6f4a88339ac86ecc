"""End-of-run training artefacts: ``metrics.csv`` (from ``metrics.jsonl``) and ``loss_curve.png``."""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path
from typing import Any

from vlakit.io import atomic_write_bytes, atomic_write_text

_NOT_LOSSES = {"stage", "step", "stage_step", "lr", "samples_per_s", "elapsed_s"}


def read_metrics(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_metrics_csv(records: list[dict[str, Any]], path: Path) -> None:
    """One row per logged step; columns are the union of every record's keys (blank where absent)."""
    columns: list[str] = []
    for r in records:
        columns += [k for k in r if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(records)
    atomic_write_text(path, buffer.getvalue())


def plot_loss_curve(records: list[dict[str, Any]], path: Path, *, title: str = "") -> None:
    """Total and per-head losses against the global step (log scale), stage boundaries dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    names = []
    for r in records:
        names += [k for k in r if k not in _NOT_LOSSES and k not in names]
    for name in names:
        pts = [(r["step"], r[name]) for r in records if name in r and r[name] > 0]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, label=name, linewidth=2.0 if name == "loss" else 1.2)
    for prev, cur in itertools.pairwise(records):
        if cur["stage"] != prev["stage"]:
            ax.axvline(prev["step"], color="grey", linestyle="--", linewidth=0.8)
            ax.text(prev["step"], 1.0, f" {cur['stage']}", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title or "training loss")
    ax.grid(alpha=0.3)
    if names:
        ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
