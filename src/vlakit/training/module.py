"""The LightningModule around a :class:`~vlakit.policy.VLAPolicy` for one training stage."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn

from vlakit.errors import VlakitError
from vlakit.recipe.train_spec import OptimizerSpec, ScheduleSpec, StageSpec
from vlakit.training.data import DataFeed
from vlakit.training.schedule import Ema, warmup_cosine

#: parameter groups a stage may name in ``trainable`` (VLAPolicy.trainable_groups keys)
TRAINABLE_GROUPS = ("vision", "language", "expert", "heads")


class NonFiniteLossError(VlakitError):
    """Training produced a NaN/inf loss; the message names the step, sources and last good checkpoint."""


class RunState:
    """Facts shared by the module and the callbacks of one run (survives across stages)."""

    def __init__(self) -> None:
        self.last_checkpoint: str | None = None
        self.step_offset = 0  #: global steps of the stages before the current one


#: devices whose parameters torch's fused AdamW kernel updates
FUSED_ADAMW_DEVICES = ("cpu", "cuda")


def build_adamw(params: list[nn.Parameter] | list[dict[str, Any]], spec: OptimizerSpec, *,
                scaled_gradients: bool = False, sharded: bool = False) -> torch.optim.AdamW:
    """AdamW with the recipe's settings, over parameters or parameter groups (see :func:`param_groups`).

    ``spec.implementation`` picks the update kernels: ``fused`` (one kernel per parameter, the fastest
    where torch has it), ``foreach``, a per-parameter Python ``loop``, or ``auto`` -- fused where every
    parameter is a floating tensor on a device in :data:`FUSED_ADAMW_DEVICES`, else torch's default.
    All compute the same update up to float rounding. ``scaled_gradients``: the run scales its
    gradients (``16-mixed``); a fused AdamW would unscale them itself, after gradient clipping had
    seen them scaled, so ``auto`` does not fuse then and an explicit ``fused`` with clipping is refused.
    ``sharded``: FSDP shards the parameters; ``auto`` leaves its gradient clipping to Lightning's FSDP
    plugin and does not fuse.

    Raises:
        VlakitError: ``fused`` asked for with scaled gradients and ``grad_clip``.
    """
    impl = spec.implementation
    if impl == "fused" and scaled_gradients and spec.grad_clip:
        raise VlakitError("train.optimizer.implementation: fused cannot be combined with gradient clipping "
                          "(optimizer.grad_clip) under precision 16-mixed, whose scaled gradients the fused "
                          "kernel unscales itself; use implementation: auto or foreach, or bf16-mixed")
    if impl == "auto":
        flat = [p for item in params for p in (item["params"] if isinstance(item, dict) else [item])]
        fusable = not scaled_gradients and not sharded and all(
            p.is_floating_point() and p.device.type in FUSED_ADAMW_DEVICES for p in flat)
        impl = "fused" if fusable else None
    kwargs = {"fused": {"fused": True}, "foreach": {"foreach": True}, "loop": {"foreach": False}, None: {}}[impl]
    return torch.optim.AdamW(params, lr=spec.lr, betas=tuple(spec.betas), eps=spec.eps,
                             weight_decay=spec.weight_decay, **kwargs)


def param_groups(policy: nn.Module, spec: OptimizerSpec) -> list[dict[str, Any]]:
    """The policy's trainable parameters as AdamW groups: the rest at ``spec.lr`` first, then one per part
    named in ``spec.lr_scale`` (its ``lr`` scaled; the schedule then scales every group alike). Each group
    records its ``lr_scale``, so the base learning rate is ``group["lr"] / group["lr_scale"]``.

    Raises:
        VlakitError: ``lr_scale`` names a part this policy does not have (e.g. ``expert`` without a
            flow-matching expert). A stage that trains nothing gets no groups (its module refuses it).
    """
    parts = policy.trainable_groups() if spec.lr_scale else {}
    unknown = sorted(set(spec.lr_scale) - set(parts))
    if unknown:
        raise VlakitError(f"train.optimizer.lr_scale names part(s) {unknown} that this policy does not have; "
                          f"its parts are {sorted(parts)}")
    scaled = {id(p) for name in spec.lr_scale for p in parts[name]}
    groups = [{"params": [p for p in policy.parameters() if p.requires_grad and id(p) not in scaled],
               "lr": spec.lr, "lr_scale": 1.0}]
    groups += [{"params": [p for p in parts[name] if p.requires_grad], "lr": spec.lr * scale, "lr_scale": scale,
                "part": name} for name, scale in spec.lr_scale.items()]
    return [g for g in groups if g["params"]]


class StageModule(pl.LightningModule):
    """Trains ``policy`` for one stage: weighted losses, trainable parts, AdamW + warmup/cosine, EMA.

    Args:
        policy: the VLAPolicy (any nn.Module with ``compute_loss`` and ``trainable_groups``).
        stage: the stage spec (steps, loss weights, trainable parts, optional overrides).
        optimizer: AdamW settings (the stage's own, or the recipe's).
        schedule: warmup/cosine settings.
        feed: the data feed shared by all stages (its position is checkpointed).
        ema: the run's EMA (shared across stages) or None.
        run_state: shared run facts (last good checkpoint for error messages).
        camera_dropout: camera -> probability of hiding it from a training sample (``train.camera_dropout``).
    """

    def __init__(self, *, policy: nn.Module, stage: StageSpec, optimizer: OptimizerSpec, schedule: ScheduleSpec,
                 feed: DataFeed, ema: Ema | None, run_state: RunState,
                 camera_dropout: dict[str, float] | None = None) -> None:
        super().__init__()
        self.policy = policy
        self.stage = stage
        self.opt_spec = optimizer
        self.schedule_spec = schedule
        self.feed = feed
        self.ema = ema
        self.run_state = run_state
        self.camera_dropout = dict(camera_dropout or {})
        self.loss_weights = {k: float(v) for k, v in stage.losses.items() if float(v) != 0.0}
        if not self.loss_weights:
            raise VlakitError(f"stage {stage.name!r}: every loss weight is zero, nothing to train")
        self.last_losses: dict[str, float] = {}
        self.last_batch_size = 0
        self._pending_rng: dict[str, Any] | None = None
        apply_trainable(policy, stage)

    # -- data ------------------------------------------------------------------------------------
    def train_dataloader(self) -> Any:
        return self.feed.iterable(rank=self.global_rank, world_size=self.trainer.world_size)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        data, position = batch
        return data.to(device), position

    # -- step ------------------------------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        data, position = batch
        if self.camera_dropout:
            data = drop_cameras(data, self.camera_dropout)
        losses = self.policy.compute_loss(data, losses=list(self.loss_weights))
        missing = [name for name in self.loss_weights if name not in losses]
        if missing:
            raise VlakitError(f"stage {self.stage.name!r} weights loss(es) {missing} but the policy returned only "
                              f"{sorted(losses)}; check the recipe's heads and model.text_loss")
        total = sum(self.loss_weights[name] * losses[name] for name in self.loss_weights)
        if not bool(torch.isfinite(total.detach())):
            self._raise_non_finite(losses, data)
        self.feed.consumed(position)
        self.last_losses = {name: float(losses[name].detach()) for name in self.loss_weights}
        self.last_losses["loss"] = float(total.detach())
        self.last_batch_size = data.batch_size
        return total

    def _raise_non_finite(self, losses: dict[str, torch.Tensor], data: Any) -> None:
        step = self.run_state.step_offset + self.global_step + 1
        values = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
        sources = Counter(getattr(data, "source", None) or ["<unnamed>"])
        src = ", ".join(f"{name} x{n}" for name, n in sorted(sources.items()))
        ckpt = self.run_state.last_checkpoint or "none yet (no checkpoint was written before this step)"
        raise NonFiniteLossError(
            f"non-finite loss in stage {self.stage.name!r} at step {step} (stage step {self.global_step + 1}): "
            f"{values}. Batch sources: {src}. Last good checkpoint: {ckpt}. Lower the learning rate or check "
            f"those sources, then rerun with --resume.")

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:  # here, not in on_train_batch_end: checkpoints then see the updated EMA
            self.ema.update(self.policy)

    # -- optimizer -------------------------------------------------------------------------------
    def configure_gradient_clipping(self, optimizer: Any, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        """Lightning's clipping, also for a fused AdamW: its mixed-precision plugin refuses any fused
        optimizer because one would unscale fp16 gradients itself, but :func:`build_adamw` fuses only
        where nothing scales the gradients (fp32, bf16), so they are clipped here as Lightning would."""
        from lightning.pytorch.plugins.precision import MixedPrecision

        raw = getattr(optimizer, "optimizer", optimizer)
        refusing = isinstance(self.trainer.precision_plugin, MixedPrecision)  # the plugin that refuses fused ones
        if (refusing and gradient_clip_val and raw.defaults.get("fused")
                and gradient_clip_algorithm in (None, "norm")):
            params = [p for group in raw.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self) -> Any:
        params = param_groups(self.policy, self.opt_spec)
        if not params:
            raise VlakitError(f"stage {self.stage.name!r}: no trainable parameters (trainable={self.stage.trainable})")
        trainer = self._trainer  # None when the module is used outside a Trainer
        scaled = trainer is not None and getattr(trainer.precision_plugin, "scaler", None) is not None
        from lightning.pytorch.strategies import FSDPStrategy

        sharded = trainer is not None and isinstance(trainer.strategy, FSDPStrategy)
        opt = build_adamw(params, self.opt_spec, scaled_gradients=scaled, sharded=sharded)
        total, spec = self.stage.steps, self.schedule_spec
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: warmup_cosine(
            step, total_steps=total, warmup_steps=spec.warmup_steps, final_lr_ratio=spec.final_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    # -- checkpoint extras: EMA, data position, RNG ----------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["vlakit"] = {
            "stage": self.stage.name,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "data": self.feed.state_dict(),
            "rng": capture_rng(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        extra = checkpoint.get("vlakit")
        if extra is None:
            raise VlakitError("checkpoint has no vlakit section (not written by vlakit train)")
        if extra["stage"] != self.stage.name:
            raise VlakitError(f"checkpoint belongs to stage {extra['stage']!r}, not {self.stage.name!r}")
        if (extra["ema"] is None) != (self.ema is None):
            raise VlakitError("checkpoint and recipe disagree on EMA (train.ema_decay changed since the run began?)")
        if self.ema is not None:
            self.ema.load_state_dict(extra["ema"])
        self.feed.load_state_dict(extra["data"])
        self._pending_rng = extra["rng"]

    def on_train_start(self) -> None:
        if self._pending_rng is not None:  # restored last, after Lightning's own setup
            restore_rng(self._pending_rng)
            self._pending_rng = None


def drop_cameras(batch: Any, rates: dict[str, float]) -> Any:
    """A copy of ``batch`` whose image masks hide camera ``c`` from each sample with probability
    ``rates[c]`` (drawn from torch's global RNG, so a resumed run draws the same). The policy then
    leaves those image tokens out of attention, exactly as for a camera a dataset lacks."""
    obs = batch.observation
    masks = dict(obs.image_masks)
    for cam, p in rates.items():
        if p > 0 and cam in masks:
            keep = torch.rand(masks[cam].shape, device=masks[cam].device) >= p
            masks[cam] = masks[cam] & keep
    return dataclasses.replace(batch, observation=dataclasses.replace(obs, image_masks=masks))


def apply_trainable(policy: nn.Module, stage: StageSpec) -> None:
    """Set ``requires_grad`` from the stage's ``trainable`` ("all" or a list of group names)."""
    if stage.trainable == "all":
        for p in policy.parameters():
            p.requires_grad_(True)
        return
    groups = policy.trainable_groups()
    unknown = [g for g in stage.trainable if g not in groups]
    if unknown:
        raise VlakitError(f"stage {stage.name!r}: trainable part(s) {unknown} unknown; this policy has "
                          f"{sorted(groups)}")
    for p in policy.parameters():
        p.requires_grad_(False)
    for g in stage.trainable:
        for p in groups[g]:
            p.requires_grad_(True)


def capture_rng() -> dict[str, Any]:
    """Python, numpy and torch RNG states as checkpoint-safe values (tensors, ints, lists)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
