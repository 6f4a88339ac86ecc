"""Staged training with a fake policy: trainable parts, losses, EMA, checkpoints, kill-and-resume equality."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from rich.console import Console

sys.path.insert(0, str(Path(__file__).parent))
from training_fakes import FakeLoader, FakePolicy

from vlakit.backends import select_backend
from vlakit.errors import VlakitError
from vlakit.recipe.train_spec import TrainSpec
from vlakit.training.data import DataFeed
from vlakit.training.module import NonFiniteLossError
from vlakit.training.stages import run_stages

CONSOLE = Console(file=open("/dev/null", "w"))


def spec(**over) -> TrainSpec:
    data = {"stages": [{"name": "pre", "steps": 6, "losses": {"text": 1.0}, "trainable": ["vision", "heads"]},
                       {"name": "post", "steps": 7, "losses": {"text": 1.0, "flow_matching": 10.0}}],
            "optimizer": {"lr": 1e-2}, "schedule": {"warmup_steps": 2}, "ema_decay": 0.9, "log_every": 2,
            "checkpoint_every": 2}
    data.update(over)
    return TrainSpec.model_validate(data)


def run(policy, out, *, train=None, resume=False, callbacks=None):
    return run_stages(policy=policy, train=train or spec(), feed=DataFeed(lambda rank, world_size: FakeLoader()),
                      out_dir=out, backend=select_backend("cpu", precision="32-true"), resume=resume,
                      console=CONSOLE, progress=False, extra_callbacks=callbacks)


class Crash(pl.Callback):
    """Stands in for a kill: aborts after ``step`` optimizer steps of stage ``stage``."""

    def __init__(self, stage: str, step: int) -> None:
        self.stage, self.step = stage, step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.stage.name == self.stage and trainer.global_step == self.step:
            raise RuntimeError("simulated kill")


def weights(policy) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}


@pytest.mark.parametrize("crash,lr_scale", [(("pre", 5), None), (("post", 3), None), (("post", 4), None),
                                            (("post", 3), {"heads": 3.0})])
def test_killed_and_resumed_run_ends_with_identical_weights(tmp_path, crash, lr_scale):
    train = spec(optimizer={"lr": 1e-2, "lr_scale": lr_scale}) if lr_scale else None  # parameter groups
    torch.manual_seed(0)
    ref = FakePolicy()
    ref_result = run(ref, tmp_path / "ref", train=train)

    torch.manual_seed(0)
    first = FakePolicy()
    with pytest.raises(RuntimeError, match="simulated kill"):
        run(first, tmp_path / "run", train=train, callbacks=[Crash(*crash)])
    torch.manual_seed(123)  # a fresh process: different RNG and fresh weights
    resumed = FakePolicy()
    result = run(resumed, tmp_path / "run", train=train, resume=True)

    for k, v in weights(ref).items():
        torch.testing.assert_close(weights(resumed)[k], v, rtol=0, atol=0, msg=k)
    for k, v in ref_result.ema.shadow.items():
        torch.testing.assert_close(result.ema.shadow[k], v, rtol=0, atol=0)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    ref_records = [json.loads(line) for line in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [r["step"] for r in ref_records]
    assert [r["loss"] for r in records] == pytest.approx([r["loss"] for r in ref_records], rel=1e-6)


def test_stage_trains_only_its_parts_and_weights_its_losses(tmp_path):
    torch.manual_seed(0)
    policy = FakePolicy()
    before = weights(policy)
    train = spec(stages=[{"name": "heads_only", "steps": 3, "losses": {"text": 1.0}, "trainable": ["heads"]}],
                 ema_decay=None)
    run(policy, tmp_path / "out", train=train)
    after = weights(policy)
    assert torch.equal(before["vision.weight"], after["vision.weight"])
    assert not torch.equal(before["text_head.weight"], after["text_head.weight"])
    # flow matching has weight 0 here: its head gets no gradient and stays put
    assert torch.equal(before["head.weight"], after["head.weight"])
    records = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert set(records[-1]) >= {"text", "loss", "lr", "samples_per_s"} and "flow_matching" not in records[-1]


def test_unknown_trainable_group_is_named(tmp_path):
    train = spec(stages=[{"name": "s", "steps": 2, "losses": {"text": 1.0}, "trainable": ["langauge"]}])
    with pytest.raises(VlakitError, match=r"langauge.*heads"):
        run(FakePolicy(), tmp_path / "out", train=train)


def test_loss_the_policy_does_not_produce_is_an_error(tmp_path):
    train = spec(stages=[{"name": "s", "steps": 2, "losses": {"fast_autoregressive": 1.0}}])
    with pytest.raises(VlakitError, match="fast_autoregressive"):
        run(FakePolicy(), tmp_path / "out", train=train)


def test_non_finite_loss_names_step_sources_and_last_checkpoint(tmp_path):
    policy = FakePolicy(nan_at_call=9)  # stage "pre" has 6 steps; call 9 is step 3 of "post"
    with pytest.raises(NonFiniteLossError) as info:
        run(policy, tmp_path / "out")
    text = str(info.value)
    assert "'post' at step 9 (stage step 3)" in text and "robot x3" in text and "vqa x1" in text
    assert str(tmp_path / "out" / "checkpoints" / "01-post" / "last.ckpt") in text


def test_existing_run_without_resume_is_refused(tmp_path):
    run(FakePolicy(), tmp_path / "out", train=spec(stages=[{"name": "s", "steps": 2, "losses": {"text": 1.0}}]))
    with pytest.raises(VlakitError, match="--resume"):
        run(FakePolicy(), tmp_path / "out")


def test_ema_is_an_average_not_the_raw_weights(tmp_path):
    torch.manual_seed(0)
    policy = FakePolicy()
    start = weights(policy)
    result = run(policy, tmp_path / "out")
    w = policy.head.weight.detach()
    shadow = result.ema.shadow["head.weight"]
    assert not torch.equal(shadow, w)
    # an average of the trajectory lies between the start and the end (on balance)
    assert (shadow - w).norm() < (start["head.weight"] - w).norm()


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_fused_adamw_trains_with_gradient_clipping(tmp_path, monkeypatch, precision):
    """Lightning's mixed-precision plugin refuses gradient clipping with any fused optimizer; the
    stage module clips a fused AdamW's gradients itself (nothing scales them in bf16 or fp32)."""
    import vlakit.training.module as module

    clips = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *a, **k):
        clips.append(max_norm)
        return real_clip(params, max_norm, *a, **k)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    fused = []
    real_build = module.build_adamw
    monkeypatch.setattr(module, "build_adamw", lambda *a, **k: fused.append(real_build(*a, **k)) or fused[-1])
    torch.manual_seed(0)
    policy = FakePolicy()
    before = weights(policy)
    train = spec(optimizer={"lr": 1e-2, "grad_clip": 0.5}, ema_decay=None)
    run_stages(policy=policy, train=train, feed=DataFeed(lambda rank, world_size: FakeLoader()), out_dir=tmp_path,
               backend=select_backend("cpu", precision=precision), resume=False, console=CONSOLE, progress=False)
    assert fused and all(opt.defaults["fused"] for opt in fused)
    assert clips.count(0.5) == 6 + 7  # every step of both stages clipped
    assert any(not torch.equal(before[k], v) for k, v in weights(policy).items())


def test_fused_adamw_is_refused_with_clipping_of_scaled_gradients():
    from vlakit.recipe.train_spec import OptimizerSpec
    from vlakit.training.module import build_adamw

    params = [torch.nn.Parameter(torch.zeros(3))]
    with pytest.raises(VlakitError, match="implementation: fused cannot be combined with gradient clipping"):
        build_adamw(params, OptimizerSpec(implementation="fused"), scaled_gradients=True)
    assert not build_adamw(params, OptimizerSpec(), scaled_gradients=True).defaults["fused"]  # auto: not fused
    assert not build_adamw(params, OptimizerSpec(), sharded=True).defaults["fused"]  # FSDP clips its own way
    assert build_adamw(params, OptimizerSpec(implementation="fused", grad_clip=None),
                       scaled_gradients=True).defaults["fused"]


def test_lr_scale_gives_a_part_its_own_learning_rate_under_the_schedule(tmp_path, monkeypatch):
    """``optimizer.lr_scale`` multiplies one part's learning rate; warmup/cosine scale every part alike,
    frozen parts stay out, and the logged ``lr`` is the schedule's base rate."""
    import json

    import vlakit.training.module as module

    built = []
    real_build = module.build_adamw
    monkeypatch.setattr(module, "build_adamw", lambda *a, **k: built.append(real_build(*a, **k)) or built[-1])
    policy = FakePolicy()
    train = spec(optimizer={"lr": 1e-2, "lr_scale": {"heads": 4.0}})
    run(policy, tmp_path / "out", train=train)
    for opt in built:  # one optimizer per stage; both stages train vision and heads
        groups = {g.get("part", "rest"): g for g in opt.param_groups}
        assert set(groups) == {"rest", "heads"}
        assert {id(p) for p in groups["heads"]["params"]} == {id(p) for p in policy.trainable_groups()["heads"]}
        assert {id(p) for p in groups["rest"]["params"]} == {id(p) for p in policy.vision.parameters()}
        assert groups["heads"]["lr"] == pytest.approx(4.0 * groups["rest"]["lr"])  # after the schedule
    logged = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    last_post = [r for r in logged if r["stage"] == "post"][-1]
    last_groups = {g.get("part", "rest"): g for g in built[-1].param_groups}
    assert last_post["lr"] == pytest.approx(last_groups["rest"]["lr"])  # the base, not the scaled rate


def test_base_lr_undoes_the_first_groups_scale():
    from vlakit.training.callbacks import base_lr

    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    scaled_first = torch.optim.AdamW([{"params": [a], "lr": 3e-2, "lr_scale": 3.0},
                                      {"params": [b], "lr": 1e-2, "lr_scale": 1.0}])
    assert base_lr(scaled_first) == pytest.approx(1e-2)
    assert base_lr(torch.optim.AdamW([b], lr=5e-3)) == pytest.approx(5e-3)  # groups from before lr_scale


def test_lr_scale_for_a_part_the_policy_lacks_is_named(tmp_path):
    named = r"lr_scale names part\(s\) \['expert'\].*its parts are \['heads', 'vision'\]"
    with pytest.raises(VlakitError, match=named):
        run(FakePolicy(), tmp_path / "out", train=spec(optimizer={"lr": 1e-2, "lr_scale": {"expert": 3.0}}))
    with pytest.raises(ValueError, match="multipliers must be > 0"):
        spec(optimizer={"lr_scale": {"heads": 0.0}})
    with pytest.raises(ValueError, match="lr_scale"):
        spec(optimizer={"lr_scale": {"decoder": 2.0}})
