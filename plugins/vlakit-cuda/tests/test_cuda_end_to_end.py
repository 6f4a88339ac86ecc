"""The real pipeline on a GPU at test size: train (bf16 mixed) -> save -> load on GPU and CPU -> act ->
evaluate, and kill-and-resume. Skipped without a CUDA GPU (CI has none; run on a GPU machine)."""

from __future__ import annotations

import json

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from vlakit.evaluation import PolicyActor, evaluate
from vlakit.policy_io import load_policy
from vlakit.recipe.load import load_recipe
from vlakit.training.run import train_recipe

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
QUIET = Console(file=open("/dev/null", "w"))


def tiny(cache, *extra):
    return load_recipe("pi05_tabletop_tiny", [f"data.cache_dir={cache}", "backend.type=cuda", *extra])


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("data_cache")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache):
    return train_recipe(tiny(cache), out_dir=tmp_path_factory.mktemp("run"), console=QUIET, progress=False)


def test_gpu_training_runs_in_bf16_and_saves_cpu_loadable_weights(trained):
    summary = json.loads((trained.out_dir / "train_summary.json").read_text())
    assert "cuda" in summary["backend"] and "bf16" in summary["backend"]
    records = [json.loads(x) for x in (trained.out_dir / "metrics.jsonl").read_text().splitlines()]
    assert records and all(np.isfinite(r["loss"]) for r in records)
    saved = load_file(str(trained.policy_dir / "model.safetensors"))
    assert all(t.device.type == "cpu" for t in saved.values())
    assert summary["vision_pretrain"]["task"] == "tabletop_scenes"


def test_gpu_and_cpu_inference_agree_on_the_same_noise(trained):
    """fp32 on both sides (TF32 off): the same observation and noise give the same action chunk."""
    from vlakit.envs.tabletop import TabletopConfig

    obs_raw = TabletopConfig().build().reset(seed=3)
    tf32_before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        chunks, subtasks = {}, {}
        for backend in ("cpu", "cuda"):
            loaded = load_policy(trained.policy_dir, backend=backend, precision="32-true")
            torch.backends.cuda.matmul.allow_tf32 = False  # the backend turns TF32 on when it is built
            assert next(loaded.policy.parameters()).device.type == backend
            noise = torch.randn(1, loaded.recipe.model.horizon, loaded.recipe.model.max_action_dim,
                                generator=torch.Generator().manual_seed(0)).to(loaded.backend.device)
            result = loaded.infer_batch([obs_raw], noise=noise)
            assert result.valid.all()
            chunks[backend] = torch.from_numpy(result.actions)
            subtasks[backend] = result.subtask
        assert subtasks["cuda"] == subtasks["cpu"]  # greedy subtask decoding picks the same tokens
        torch.testing.assert_close(chunks["cuda"], chunks["cpu"], rtol=1e-3, atol=1e-4)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32_before


def test_gpu_policy_evaluates_closed_loop(trained, tmp_path):
    loaded = load_policy(trained.policy_dir, backend="cuda")
    assert loaded.backend.precision == "bf16-mixed"
    report = evaluate(make_actor=lambda: PolicyActor(loaded), env_spec=loaded.recipe.eval.env,
                      splits=["train", "unseen"], episodes=2, replan_every=5, seed=0, max_steps=10,
                      out_dir=tmp_path / "eval")
    assert {g.split for g in report.stats} == {"train", "unseen"}
    assert all(e.length == 10 or e.success for e in report.episodes)
    assert (tmp_path / "eval" / "episodes.png").is_file()


class _Kill(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.stage.name == "posttrain" and trainer.global_step == 2:
            raise RuntimeError("simulated kill")


def test_gpu_kill_and_resume_ends_where_the_uninterrupted_run_ends(trained, cache, tmp_path):
    """Same optimizer, scheduler, RNG and data position after resume. GPU kernels may reduce in another
    order from run to run, so the check is closeness, not bitwise equality as on the CPU."""
    recipe = tiny(cache)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train_recipe(recipe, out_dir=tmp_path, console=QUIET, progress=False, extra_callbacks=[_Kill()])
    resumed = train_recipe(recipe, out_dir=tmp_path, resume=True, console=QUIET, progress=False)
    a = load_file(str(trained.policy_dir / "model.safetensors"))
    b = load_file(str(resumed.policy_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    worst = max((b[k].float() - a[k].float()).abs().max().item() for k in a)
    print(f"largest weight difference resumed vs uninterrupted: {worst:.3g}")
    assert worst < 1e-3
