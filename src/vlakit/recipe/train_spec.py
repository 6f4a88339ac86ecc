"""The ``train:`` section: ordered stages, optimizer, schedule, EMA, precision and strategy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vlakit.config import FrozenModel


class OptimizerSpec(FrozenModel):
    """AdamW as in openpi (betas 0.9/0.95, tiny weight decay) with global-norm gradient clipping."""

    lr: float = Field(2.5e-5, gt=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 1e-10
    grad_clip: float | None = Field(1.0, gt=0)


class ScheduleSpec(FrozenModel):
    """Linear warmup then cosine decay to ``final_lr_ratio * lr`` over the stage."""

    warmup_steps: int = Field(1000, ge=0)
    final_lr_ratio: float = Field(0.1, ge=0, le=1)


class StageSpec(FrozenModel):
    """One training stage. ``losses`` maps loss names (head names, ``text``) to weights."""

    name: str
    steps: int = Field(ge=1)
    losses: dict[str, float] = Field(min_length=1)
    #: parts to train: "all" or a list among vision, language, expert, heads
    trainable: Literal["all"] | list[str] = "all"
    optimizer: OptimizerSpec | None = None
    schedule: ScheduleSpec | None = None


class TrainSpec(FrozenModel):
    stages: list[StageSpec] = Field(min_length=1)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    ema_decay: float | None = Field(None, ge=0, lt=1)
    seed: int = 42
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true"] = "auto"
    strategy: Literal["auto", "ddp", "fsdp", "single"] = "auto"
    devices: int | Literal["auto"] = 1
    num_nodes: int = Field(1, ge=1)
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(500, ge=1)
