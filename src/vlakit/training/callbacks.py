"""Training callbacks: atomic periodic checkpoints, metrics JSONL, rich progress with per-head losses."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from vlakit.io import atomic_write_bytes
from vlakit.training.module import RunState, StageModule


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes checkpoints through :func:`vlakit.io.atomic_write_bytes`: never a half-written file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        # vlakit's own files: optimizer/scheduler state and python RNG tuples are plain data.
        return torch.load(path, map_location=map_location or "cpu", weights_only=False)


class PeriodicCheckpoint(pl.Callback):
    """Saves ``<dir>/last.ckpt`` every ``every`` stage steps (atomically) and records it as last good."""

    def __init__(self, *, folder: Path, every: int, run_state: RunState) -> None:
        self.folder = Path(folder)
        self.every = every
        self.run_state = run_state

    @property
    def path(self) -> Path:
        return self.folder / "last.ckpt"

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if step % self.every == 0 and step < (trainer.max_steps or 0):
            trainer.save_checkpoint(self.path)
            self.run_state.last_checkpoint = str(self.path)


class MetricsLogger(pl.Callback):
    """Appends one JSON record per ``every`` steps (and the last step) to ``metrics.jsonl`` (rank 0).

    Records: ``stage``, ``step`` (global over stages), ``stage_step``, ``lr``, ``loss``, each weighted
    loss by name, ``samples_per_s`` (all processes) and ``elapsed_s``.
    """

    def __init__(self, *, path: Path, every: int, run_state: RunState, progress: Any | None = None) -> None:
        self.path = Path(path)
        self.every = every
        self.run_state = run_state
        self.progress = progress
        self._t0 = 0.0
        self._window_start = 0.0
        self._window_samples = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0 = self._window_start = time.perf_counter()
        self._window_samples = 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        assert isinstance(pl_module, StageModule)
        self._window_samples += pl_module.last_batch_size * trainer.world_size
        step = trainer.global_step
        if step % self.every and step != trainer.max_steps:
            return
        now = time.perf_counter()
        rate = self._window_samples / max(now - self._window_start, 1e-9)
        self._window_start, self._window_samples = now, 0
        record = {"stage": pl_module.stage.name, "step": self.run_state.step_offset + step, "stage_step": step,
                  "lr": base_lr(trainer.optimizers[0]), **pl_module.last_losses,
                  "samples_per_s": round(rate, 3), "elapsed_s": round(now - self._t0, 3)}
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        if self.progress is not None:
            self.progress.update(record, total=trainer.max_steps)


def base_lr(optimizer: Any) -> float:
    """The schedule's current learning rate, before any part's ``lr_scale`` (see ``param_groups``)."""
    group = optimizer.param_groups[0]
    return float(group["lr"]) / float(group.get("lr_scale", 1.0))


class ProgressReporter:
    """Rich progress bar on a terminal (step, per-head losses, samples/s, ETA); plain lines otherwise."""

    def __init__(self, *, console: Any, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None

    def start_stage(self, name: str, *, total: int, start: int = 0) -> None:
        if not self.enabled:
            return
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                      TextColumn("{task.fields[info]}"), console=self.console, transient=False)
            self._progress.start()
            self._task = self._progress.add_task(f"stage {name}", total=total, completed=start, info="")
        else:
            self.console.print(f"stage {name}: {total} steps" + (f" (resuming at {start})" if start else ""))

    def update(self, record: dict[str, Any], *, total: int | None) -> None:
        if not self.enabled:
            return
        skip = {"stage", "step", "stage_step", "lr", "samples_per_s", "elapsed_s"}
        losses = "  ".join(f"{k} {v:.4f}" for k, v in record.items() if k not in skip)
        info = f"{losses}  {record['samples_per_s']:.1f} samples/s  lr {record['lr']:.2e}"
        if self._progress is not None:
            self._progress.update(self._task, completed=record["stage_step"], info=info)
        else:
            eta = ""
            if total and record["stage_step"]:
                left = record["elapsed_s"] / record["stage_step"] * (total - record["stage_step"])
                eta = f"  eta {left:.0f}s"
            self.console.print(f"  [{record['stage']}] step {record['stage_step']}/{total}  {info}{eta}")

    def end_stage(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
