"""Dense vision pre-training (``train.vision_pretrain``): teach the encoder *what is where* first.

π0.5 starts from PaliGemma, whose SigLIP tower already separates objects, colours and positions;
a vision encoder trained from scratch inside the VLA does not. Measured on the tabletop world
(``benchmarks/grounding_probe.py``, README: Results), the from-scratch backbone sits on a long
plateau in which it ignores the images: a probe regressing the named object's position stays near
chance for 1,000 to more than 2,000 steps. After this pre-training (about a minute on one CPU core)
the same probe finds the named object in 82 % of unseen scenes at step 500.

The recipe's vision task (a :class:`~vlakit.interfaces.vision_task.VisionTask`) labels every token
cell; one linear probe per target reads the encoder's pre-projector features (class targets:
cross-entropy; regression targets: masked squared error). Only the encoder and the probes train; the
probes are discarded. The report (held-out accuracy per target) goes to the run folder.
"""

from __future__ import annotations

import math
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlakit.errors import VlakitError


class VisionPretrainError(VlakitError):
    """The encoder cannot be pre-trained densely, or the pre-training diverged."""


def _check_encoder(encoder: nn.Module) -> int:
    grid = getattr(encoder, "grid_size", None)
    if grid is None or not callable(getattr(encoder, "features", None)):
        raise VisionPretrainError(f"train.vision_pretrain needs a vision encoder with a square token grid and "
                                  f"`features()` (the built-in conv and siglip have them); "
                                  f"{type(encoder).__name__} has not")
    if grid * grid != encoder.num_tokens:
        raise VisionPretrainError(f"train.vision_pretrain needs a square token grid; {type(encoder).__name__} "
                                  f"has {encoder.num_tokens} tokens")
    return int(grid)


def _squared_error(pred: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Sum of squared errors over the labelled (non-NaN) values of ``y``, and how many there are."""
    seen = ~torch.isnan(y)
    return ((pred - torch.nan_to_num(y)) ** 2 * seen).sum(), seen.sum()


def _losses(feats: Tensor, heads: nn.ModuleDict, targets: list[Any], labels: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for t in targets:
        pred = heads[t.name](feats).float()
        y = labels[t.name]
        if t.kind == "class":  # summed over labelled cells: a batch with none gives 0, not NaN
            ce = F.cross_entropy(pred.flatten(0, 1), y.flatten(), ignore_index=-1, reduction="sum")
            out[t.name] = ce / (y >= 0).sum().clamp(min=1)
        else:
            total, count = _squared_error(pred, y)
            out[t.name] = total / count.clamp(min=1)
    return out


@torch.no_grad()
def _evaluate(encoder: nn.Module, heads: nn.ModuleDict, targets: list[Any], data: Any, *,
              autocast: AbstractContextManager, device: str, batch: int = 250) -> dict[str, float]:
    """Held-out metrics: per class target, accuracy on labelled cells whose label is not the last
    ("nothing here") class, and on all cells; per regression target, RMSE on labelled cells."""
    sums: dict[str, list[float]] = {}
    for i in range(0, len(data), batch):
        pixels = encoder.preprocess(torch.from_numpy(data.images[i:i + batch]).to(device))
        with autocast:
            feats = encoder.features(pixels)
        for t in targets:
            pred = heads[t.name](feats).float()
            y = torch.from_numpy(data.labels[t.name][i:i + batch]).to(device)
            acc = sums.setdefault(t.name, [0.0, 0.0, 0.0, 0.0])
            if t.kind == "class":
                hit, real = pred.argmax(-1) == y, (y >= 0) & (y != t.size - 1)
                acc[0] += float((hit & real).sum())
                acc[1] += float(real.sum())
                acc[2] += float((hit & (y >= 0)).sum())
                acc[3] += float((y >= 0).sum())
            else:
                total, count = _squared_error(pred, y)
                acc[0] += float(total)
                acc[1] += float(count)
    report: dict[str, float] = {}
    for t in targets:
        a = sums.get(t.name, [0.0] * 4)
        if t.kind == "class":
            report[f"{t.name}_acc_objects"] = a[0] / max(a[1], 1)
            report[f"{t.name}_acc_all"] = a[2] / max(a[3], 1)
        else:
            report[f"{t.name}_rmse"] = math.sqrt(a[0] / max(a[1], 1))
    return {k: round(v, 4) for k, v in report.items()}


def pretrain_vision(encoder: nn.Module, spec: Any, *, device: str = "cpu",
                    autocast: AbstractContextManager | None = None, console: Any = None,
                    progress: bool = True) -> dict[str, Any]:
    """Train ``encoder`` in place on ``spec.task`` (a :class:`~vlakit.recipe.train_spec.VisionPretrainSpec`).

    Returns the report: steps, wall time, final training losses and held-out metrics.

    Raises:
        VisionPretrainError: the encoder has no square token grid / ``features``; a loss or gradient
            became non-finite (the step is named; the encoder is left as it was before pre-training).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    grid = _check_encoder(encoder)
    task = spec.task.build()
    targets = task.targets()
    t0 = time.perf_counter()
    train = task.generate(spec.images, grid=grid, seed=spec.seed)
    held_out = task.generate(spec.eval_images, grid=grid, seed=spec.seed, held_out=True) if spec.eval_images else None
    if console is not None:
        console.print(f"[bold]vision pretrain[/]: {len(train)} {spec.task.type} images ({grid}x{grid} labels: "
                      f"{', '.join(t.name for t in targets)}) in {time.perf_counter() - t0:.1f}s")
    generator = torch.Generator().manual_seed(spec.seed)
    width = encoder.feature_width
    heads = nn.ModuleDict({t.name: nn.Linear(width, t.size) for t in targets}).to(device)
    before = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
    params = [p for p in encoder.parameters() if p.requires_grad] + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=spec.lr, betas=(0.9, 0.95), weight_decay=0.0)
    warmup = max(1, spec.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.5 + 0.5 * math.cos(math.pi * min(1.0, s / spec.steps))))
    images = torch.from_numpy(train.images)
    labels = {k: torch.from_numpy(v) for k, v in train.labels.items()}
    autocast = autocast if autocast is not None else nullcontext()
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   TextColumn("{task.fields[loss]}"), disable=not progress, console=console)
    was_training = encoder.training
    encoder.train()
    running: dict[str, float] = {}
    initial: dict[str, float] = {}
    with bar:
        job = bar.add_task("vision pretrain", total=spec.steps, loss="")
        for step in range(1, spec.steps + 1):
            idx = torch.randint(0, len(images), (spec.batch_size,), generator=generator)
            pixels = encoder.preprocess(images[idx].to(device))
            try:
                with autocast:
                    feats = encoder.features(pixels)
            except NotImplementedError as exc:
                raise VisionPretrainError(f"train.vision_pretrain: {exc}") from exc
            losses = _losses(feats, heads, targets, {k: v[idx].to(device) for k, v in labels.items()})
            values = {k: float(v.detach()) for k, v in losses.items()}  # one read per loss and step
            bad = None if all(map(math.isfinite, values.values())) else "loss"
            if bad is None:
                opt.zero_grad(set_to_none=True)
                sum(losses.values()).backward()
                bad = None if torch.isfinite(torch.nn.utils.clip_grad_norm_(params, 1.0)) else "gradient"
            if bad is not None:
                encoder.load_state_dict(before)
                raise VisionPretrainError(f"vision pretraining {bad} became non-finite at step {step} ({values}); "
                                          f"the encoder is left as before pre-training. Lower "
                                          f"train.vision_pretrain.lr (now {spec.lr})")
            opt.step()
            sched.step()
            if step == 1:
                initial = {k: round(v, 4) for k, v in values.items()}
            for k, v in values.items():
                running[k] = 0.9 * running.get(k, v) + 0.1 * v
            if step % 10 == 0 or step == spec.steps:
                bar.update(job, completed=step, loss="  ".join(f"{k} {v:.3f}" for k, v in running.items()))
    encoder.eval()
    report: dict[str, Any] = {"task": spec.task.type, "steps": spec.steps, "images": len(train),
                              "initial_losses": initial, "final_losses": {k: round(v, 4) for k, v in running.items()}}
    if held_out is not None:
        report["held_out"] = _evaluate(encoder, heads, targets, held_out, autocast=autocast, device=device)
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    encoder.train(was_training)  # the caller's mode (Lightning keeps a module's mode through the stages)
    return report
