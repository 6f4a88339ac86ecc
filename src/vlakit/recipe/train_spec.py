"""The ``train:`` section: ordered stages, optimizer, schedule, EMA, precision and strategy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from vlakit.config import FrozenModel
from vlakit.recipe.fields import Component


class OptimizerSpec(FrozenModel):
    """AdamW as in openpi (betas 0.9/0.95, tiny weight decay) with global-norm gradient clipping."""

    lr: float = Field(2.5e-5, gt=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 1e-10
    grad_clip: float | None = Field(1.0, gt=0)
    implementation: Literal["auto", "fused", "foreach", "loop"] = Field(
        "auto", description="AdamW's kernels: `fused` (one kernel per parameter; on cpu 4.6 -> 0.9 ms per step for "
                            "the default's 121 tensors), `foreach`, or a Python `loop`; `auto` takes `fused` where "
                            "every trainable parameter is a floating tensor on cpu or cuda, else torch's default")
    lr_scale: dict[Literal["vision", "language", "expert", "heads"], float] = Field(
        default_factory=dict, description="learning-rate multipliers per part of the policy (the parts of "
                                          "`trainable`), e.g. `{expert: 3.0}`; parts not named keep `lr`. "
                                          "The schedule scales every part alike")

    @field_validator("lr_scale")
    @classmethod
    def _positive_scales(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: s for k, s in v.items() if not s > 0}
        if bad:
            raise ValueError(f"learning-rate multipliers must be > 0, got {bad}")
        return v


class ScheduleSpec(FrozenModel):
    """Linear warmup then cosine decay to ``final_lr_ratio * lr`` over the stage."""

    warmup_steps: int = Field(1000, ge=0)
    final_lr_ratio: float = Field(0.1, ge=0, le=1)


class DaggerSpec(FrozenModel):
    """On-policy corrections (DAgger) collected before a stage: the policy as trained so far (its EMA
    weights, as deployed) drives ``episodes`` rollouts in ``env``; from ``states_per_episode`` of the
    states it visits, the env's scripted expert finishes the task, and those expert continuations
    (clean labels, ``noise`` on the executed actions as in the generated demonstrations) join the
    data mixture from this stage on with share ``weight``. See :mod:`vlakit.training.dagger`."""

    env: Component("envs", default_type="tabletop") = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"type": "tabletop"}, validate_default=True)
    episodes: int = Field(600, ge=1, description="policy rollouts")
    states_per_episode: int = Field(6, ge=1, description="visited states relabelled per rollout (at replans)")
    replan_every: int = Field(5, ge=1, description="actions executed per chunk in the rollouts")
    noise: float = Field(0.1, ge=0, le=1, description="std of noise on the expert's executed actions")
    weight: float = Field(0.3, gt=0, lt=1, description="share of the mixture the collected data gets; the "
                                                        "other sources keep their proportions in the rest")
    batch_size: int = Field(32, ge=1, description="episodes rolled out together (one batched policy call)")
    #: the data source whose options (e.g. subtask text format) the collected episodes are read with
    like: str = "robot"
    seed: int = 0


class StageSpec(FrozenModel):
    """One training stage. ``losses`` maps loss names (head names, ``text``) to weights."""

    name: str
    steps: int = Field(ge=1)
    losses: dict[str, float] = Field(min_length=1)
    #: parts to train: "all" or a list among vision, language, expert, heads
    trainable: Literal["all"] | list[str] = "all"
    optimizer: OptimizerSpec | None = None
    schedule: ScheduleSpec | None = None
    #: collect on-policy corrections before this stage (they stay in the mixture for later stages)
    dagger: DaggerSpec | None = None
    #: source weights for this stage only, e.g. ``{reach: 1.0, robot: 0}`` (a curriculum, or pi0.5's
    #: different pre- and post-training mixtures); sources not named keep their ``data.sources`` weight,
    #: 0 leaves a source out. Norm stats and the action tokenizer still come from every source.
    mixture: dict[str, float] | None = None

    @field_validator("mixture")
    @classmethod
    def _mixture_weights(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        bad = {k: w for k, w in v.items() if not w >= 0}
        if bad:
            raise ValueError(f"mixture weights must be >= 0, got {bad}")
        return v

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, v: str) -> str:
        if not v or not all(c.isalnum() or c in "_-." for c in v):
            raise ValueError(f"stage name {v!r} must be non-empty letters, digits, '_', '-' or '.' "
                             "(it names the stage's checkpoint folder)")
        return v

    @field_validator("losses")
    @classmethod
    def _non_negative(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: w for k, w in v.items() if w < 0}
        if bad:
            raise ValueError(f"loss weights must be >= 0, got {bad}")
        if not any(w > 0 for w in v.values()):
            raise ValueError(f"at least one loss weight must be > 0, got {v}")
        return v


class InitSpec(FrozenModel):
    """Start training from existing weights (e.g. a pre-trained VLM) instead of a fresh init.

    Every policy tensor whose name starts with one of ``include`` and none of ``exclude`` must be in
    the file with the same shape, or training refuses to start -- never a silent random init.
    """

    #: a policy folder (its ``model.safetensors``) or a ``.safetensors`` file; relative paths are
    #: resolved against the working directory
    path: str
    include: list[str] = Field(default_factory=lambda: ["vision.", "language."], min_length=1)
    exclude: list[str] = Field(default_factory=list)


class VisionPretrainSpec(FrozenModel):
    """Dense pre-training of the vision encoder before the first stage: one linear probe per target
    of ``task`` on the encoder's token features (the stand-in for a pre-trained SigLIP; see
    :mod:`vlakit.training.vision_pretrain`). Labelled images are generated in memory."""

    task: Component("vision_tasks")  # type: ignore[valid-type]
    images: int = Field(8000, ge=1, description="training images generated")
    eval_images: int = Field(500, ge=0, description="held-out images the report is measured on")
    steps: int = Field(1500, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2.0e-3, gt=0)
    seed: int = 0


class TrainSpec(FrozenModel):
    stages: list[StageSpec] = Field(min_length=1)
    #: initial weights for a fresh run (ignored on --resume, where the checkpoint has them)
    init: InitSpec | None = None
    #: dense vision pre-training run once before the stages of a fresh run (after ``init``)
    vision_pretrain: VisionPretrainSpec | None = None
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
    #: camera -> probability that a training sample hides it (image mask off, as if the camera were
    #: missing), drawn per sample and step. Makes the policy use every view, e.g. the overhead one
    #: rather than only the wrist one; never applied at inference.
    camera_dropout: dict[str, float] = Field(default_factory=dict)

    @field_validator("camera_dropout")
    @classmethod
    def _probabilities(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: p for k, p in v.items() if not 0.0 <= p < 1.0}
        if bad:
            raise ValueError(f"camera_dropout probabilities must be in [0, 1), got {bad}")
        return v

    @field_validator("stages")
    @classmethod
    def _unique_stage_names(cls, v: list[StageSpec]) -> list[StageSpec]:
        names = [s.name for s in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"stage names must be unique, repeated: {dup}")
        return v
