"""Run a recipe's training stages in order with Lightning: one Trainer per stage, resumable.

Layout under the run folder::

    checkpoints/<NN>-<stage>/last.ckpt   atomic; periodic during the stage, final at its end
    checkpoints/<NN>-<stage>/done.json   written once the stage has finished
    metrics.jsonl                        one record per logged step (see MetricsLogger)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from vlakit.errors import VlakitError
from vlakit.interfaces.backend import ComputeBackend
from vlakit.io import atomic_write_text
from vlakit.recipe.train_spec import StageSpec, TrainSpec
from vlakit.training.callbacks import AtomicCheckpointIO, MetricsLogger, PeriodicCheckpoint, ProgressReporter
from vlakit.training.data import DataFeed
from vlakit.training.module import RunState, StageModule
from vlakit.training.schedule import Ema


@dataclass
class StagesResult:
    """What :func:`run_stages` leaves behind."""

    ema: Ema | None
    total_steps: int
    metrics_path: Path
    is_global_zero: bool
    #: wall seconds of each stage this call trained (set-up and final checkpoint included), by name
    stage_wall_s: dict[str, float] = field(default_factory=dict)


def stage_dir(out_dir: Path, index: int, stage: StageSpec) -> Path:
    return Path(out_dir) / "checkpoints" / f"{index:02d}-{stage.name}"


def has_checkpoints(out_dir: Path) -> bool:
    root = Path(out_dir) / "checkpoints"
    return root.is_dir() and any(root.rglob("*.ckpt"))


def make_strategy(train: TrainSpec, backend: ComputeBackend) -> Any:
    """The Lightning strategy the recipe asks for (``ddp``/``fsdp`` use the backend's process group)."""
    devices = train.devices
    if train.strategy == "ddp" or (train.strategy == "auto" and devices not in (1, "auto")):
        from lightning.pytorch.strategies import DDPStrategy

        # find_unused_parameters: a stage may not touch every head (e.g. flow matching in pre-training)
        return DDPStrategy(process_group_backend=backend.process_group_backend, find_unused_parameters=True)
    if train.strategy == "fsdp":
        if train.ema_decay is not None:
            raise VlakitError("train.ema_decay is not supported with strategy fsdp (parameters are sharded); "
                              "set train.ema_decay: null or use ddp")
        from lightning.pytorch.strategies import FSDPStrategy

        return FSDPStrategy(process_group_backend=backend.process_group_backend)
    return "auto"


def run_stages(*, policy: nn.Module, train: TrainSpec, feed: DataFeed, out_dir: Path, backend: ComputeBackend,
               resume: bool, console: Any, progress: bool = True, extra_callbacks: list[Any] | None = None,
               stage_data: Any | None = None) -> StagesResult:
    """Train ``policy`` through every stage of ``train``.

    Args:
        policy: the model (moved to the backend's device by Lightning).
        train: the recipe's ``train:`` section.
        feed: the shared data feed.
        out_dir: run folder (checkpoints, metrics).
        backend: device and precision.
        resume: continue from the last checkpoint (same optimizer, scheduler, RNG and data position).
        console: a rich console for progress.
        extra_callbacks: more Lightning callbacks (tests use this to interrupt a run).
        stage_data: per-stage data (:class:`vlakit.training.stage_data.StageData`): ``feed(index)`` gives the
            feed a stage trains on (the same object while the mixture stays the same) and
            ``prepare(index, ...)`` runs before it trains (collecting on-policy corrections). Needed
            by stages with ``dagger`` or ``mixture``; without it every stage trains on ``feed``.
    Raises:
        VlakitError: checkpoints exist but ``resume`` is False; or a stage/recipe mismatch on resume.
        NonFiniteLossError: a loss became NaN/inf.
    """
    out_dir = Path(out_dir)
    if stage_data is None and any(s.dagger is not None or s.mixture is not None for s in train.stages):
        raise VlakitError("stages with `dagger` or `mixture` need the recipe's environment and data; train them "
                          "with `vlakit train` (train_recipe), not run_stages alone")
    if has_checkpoints(out_dir) and not resume:
        raise VlakitError(f"{out_dir} already holds checkpoints of a previous run; pass --resume to continue it, "
                          f"or choose another --out")
    ema = Ema(policy, decay=train.ema_decay) if train.ema_decay is not None else None
    run_state = RunState()
    metrics_path = out_dir / "metrics.jsonl"
    reporter = ProgressReporter(console=console, enabled=progress)
    carry: Path | None = None  # final checkpoint of a finished stage whose successor starts fresh
    is_zero = True
    previous_feed = feed
    used: list[Any] = []  # the feeds trained on; their background batch processes stop at the end
    stage_wall: dict[str, float] = {}
    try:
        for index, stage in enumerate(train.stages):
            folder = stage_dir(out_dir, index, stage)
            last = folder / "last.ckpt"
            stage_feed = stage_data.feed(index) if stage_data is not None else feed
            if stage_feed is not previous_feed:
                previous_feed.close()  # a replaced feed's batch process would hold its datasets until collected
            used.append(stage_feed)
            if resume and (folder / "done.json").is_file():
                carry, run_state.step_offset = last, run_state.step_offset + stage.steps
                run_state.last_checkpoint = str(last)
                previous_feed = stage_feed
                continue
            t_stage = time.perf_counter()
            module = StageModule(policy=policy, stage=stage, optimizer=stage.optimizer or train.optimizer,
                                 schedule=stage.schedule or train.schedule, feed=stage_feed, ema=ema,
                                 run_state=run_state, camera_dropout=train.camera_dropout)
            ckpt_path = None
            start = 0
            if resume and last.is_file():
                ckpt_path = str(last)
                run_state.last_checkpoint = ckpt_path
                start = int(torch.load(last, map_location="cpu", weights_only=False)["global_step"])
                _truncate_metrics(metrics_path, after=run_state.step_offset + start)
            elif carry is not None:
                # a stage whose mixture changed (new corrections) starts its feed from the beginning
                _load_stage_end(module, carry, data=stage_feed is previous_feed)
            carry = None
            previous_feed = stage_feed
            if stage_data is not None:
                stage_data.prepare(index, policy=policy, ema=ema, step=run_state.step_offset,
                                   started=ckpt_path is not None)
            if resume and ckpt_path is None and index == 0:
                _truncate_metrics(metrics_path, after=0)
            optimizer = stage.optimizer or train.optimizer
            callbacks = [PeriodicCheckpoint(folder=folder, every=train.checkpoint_every, run_state=run_state),
                         MetricsLogger(path=metrics_path, every=train.log_every, run_state=run_state,
                                       progress=reporter),
                         *(extra_callbacks or [])]
            trainer = pl.Trainer(
                max_steps=stage.steps, max_epochs=-1, accelerator=backend.lightning_accelerator, devices=train.devices,
                num_nodes=train.num_nodes, strategy=make_strategy(train, backend), precision=backend.precision,
                gradient_clip_val=optimizer.grad_clip, gradient_clip_algorithm="norm", logger=False,
                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                num_sanity_val_steps=0, limit_val_batches=0, use_distributed_sampler=False, callbacks=callbacks,
                plugins=[AtomicCheckpointIO()], default_root_dir=str(out_dir))
            is_zero = trainer.is_global_zero
            reporter.enabled = progress and is_zero
            reporter.start_stage(stage.name, total=stage.steps, start=start)
            try:
                trainer.fit(module, ckpt_path=ckpt_path)
            finally:
                reporter.end_stage()
            trainer.save_checkpoint(last)
            run_state.last_checkpoint = str(last)
            if trainer.is_global_zero:
                atomic_write_text(folder / "done.json", json.dumps({"stage": stage.name, "steps": stage.steps}) + "\n")
            run_state.step_offset += stage.steps
            stage_wall[stage.name] = time.perf_counter() - t_stage
    finally:
        for used_feed in used:  # closing twice is a no-op
            used_feed.close()
    if carry is not None:  # every stage was already done: bring back the final weights
        final = StageModule(policy=policy, stage=train.stages[-1], optimizer=train.optimizer,
                            schedule=train.schedule, feed=feed, ema=ema, run_state=run_state)
        _load_stage_end(final, carry)
    return StagesResult(ema=ema, total_steps=run_state.step_offset, metrics_path=metrics_path, is_global_zero=is_zero,
                        stage_wall_s=stage_wall)


def _load_stage_end(module: StageModule, path: Path, *, data: bool = True) -> None:
    """Weights, EMA, data position (unless ``data`` is False) and RNG from a finished stage, for the next
    stage's fresh start."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    module.load_state_dict(ckpt["state_dict"])
    extra = dict(ckpt["vlakit"], stage=module.stage.name)
    if not data:
        extra["data"] = None
    module.on_load_checkpoint({"vlakit": extra})


def _truncate_metrics(path: Path, *, after: int) -> None:
    """Drop metric records past ``after`` (they belong to steps the resumed run will redo)."""
    if not path.is_file() or int(os.environ.get("LOCAL_RANK", "0")) != 0:
        return
    keep = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line)["step"] <= after]
    atomic_write_text(path, "".join(line + "\n" for line in keep))
