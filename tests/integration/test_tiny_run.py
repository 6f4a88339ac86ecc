"""End to end at test size with the real model, data and world: train -> save -> load -> evaluate,
plus kill-and-resume equality of the real pipeline."""

from __future__ import annotations

import json

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from vlakit.errors import VlakitError
from vlakit.evaluation import PolicyActor, evaluate
from vlakit.policy_io import PolicyLoadError, load_policy
from vlakit.recipe.load import load_recipe
from vlakit.training.run import train_recipe

QUIET = Console(file=open("/dev/null", "w"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("data_cache")


def tiny(cache, *extra):
    return load_recipe("pi05_tabletop_tiny", [f"data.cache_dir={cache}", "backend.type=cpu", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("run")
    result = train_recipe(tiny(cache), out_dir=out, console=QUIET, progress=False)
    return result


def test_train_writes_policy_folder_and_artefacts(trained):
    out = trained.out_dir
    for name in ("metrics.csv", "metrics.jsonl", "loss_curve.png", "recipe.yaml", "train_summary.json",
                 "assets/norm_stats.json", "assets/action_tokenizer/DONE"):
        assert (out / name).is_file(), name
    folder = trained.policy_dir
    for name in ("model.safetensors", "recipe.yaml", "norm_stats.json", "vlakit_policy.json", "README.md",
                 "text_tokenizer", "action_tokenizer"):
        assert (folder / name).exists(), name
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pt"))
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 7))
    assert "flow_matching" not in records[0] and "flow_matching" in records[-1]
    assert trained.total_steps == 6
    # where the time went, in order, in the result and the summary (each part measured, none left out)
    recipe = tiny(".")
    stages = [s.name for s in recipe.train.stages]
    expected = ["data", "norm stats + tokenizer", "vision pretrain", *stages, "saving"]
    assert list(trained.phases_s) == expected
    summary = json.loads((out / "train_summary.json").read_text())
    assert list(summary["phases_s"]) == expected
    assert all(v >= 0 for v in trained.phases_s.values())
    assert sum(trained.phases_s.values()) <= trained.wall_s <= summary["train_wall_s"] + 0.1
    assert trained.describe_phases().startswith("data ") and trained.describe_phases().endswith("s")


def test_saved_weights_are_the_ema_and_load_back_exactly(trained):
    loaded = load_policy(trained.policy_dir, backend="cpu", precision="32-true")
    saved = load_file(str(trained.policy_dir / "model.safetensors"))
    state = loaded.policy.state_dict()
    for k, v in saved.items():
        torch.testing.assert_close(state[k].cpu(), v, rtol=0, atol=0)
    ckpt = torch.load(trained.out_dir / "checkpoints" / "01-posttrain" / "last.ckpt", weights_only=False)
    shadow = ckpt["vlakit"]["ema"]["shadow"]
    name = next(iter(shadow))
    torch.testing.assert_close(saved[name].float(), shadow[name])
    raw = ckpt["state_dict"][f"policy.{name}"]
    assert not torch.equal(raw, shadow[name])  # EMA, not the raw weights, is what was saved


def test_loaded_policy_acts_and_evaluates(trained):
    loaded = load_policy(trained.policy_dir, backend="cpu")
    spec = loaded.recipe.eval
    report = evaluate(make_actor=lambda: PolicyActor(loaded), env_spec=spec.env, splits=["train", "unseen"],
                      episodes=2, replan_every=5, seed=0, max_steps=10, out_dir=trained.out_dir / "eval_test")
    assert {g.split for g in report.stats} == {"train", "unseen"}
    assert all(e.length == 10 or e.success for e in report.episodes)
    assert (trained.out_dir / "eval_test" / "episodes.png").is_file()
    from vlakit.envs.tabletop import TabletopConfig

    env = TabletopConfig().build()
    result = loaded.infer(env.reset(seed=0))
    assert result["actions"].shape == (loaded.recipe.model.horizon, env.action_dim)
    assert np.isfinite(result["actions"]).all()


def test_batched_inference_equals_one_observation_at_a_time(trained):
    """What batched evaluation and DAgger rollouts rely on: prompts of different lengths, states and
    subtasks in one batch give each row what it gets alone (same noise)."""
    from vlakit.envs.tabletop import TabletopConfig, TabletopEnv

    loaded = load_policy(trained.policy_dir, backend="cpu", precision="32-true")
    obs = []
    for seed in range(5):
        env = TabletopEnv(TabletopConfig(split="unseen"))
        ob = env.reset(seed=seed)
        for _ in range(seed):  # different states, some with the jaws closed
            ob = env.step(np.array([0.3, -0.2, 1.0 if seed % 2 else -1.0]))[0]
        obs.append(ob)
    assert len({o.prompt for o in obs}) > 1
    h, a = loaded.recipe.model.horizon, loaded.recipe.model.max_action_dim
    noise = torch.randn(len(obs), h, a)
    together = loaded.infer_batch(obs, noise=noise)
    for i, ob in enumerate(obs):
        alone = loaded.infer_batch([ob], noise=noise[i:i + 1])
        assert alone.subtask[0] == together.subtask[i]
        np.testing.assert_allclose(alone.actions[0], together.actions[i], atol=1e-5)


def test_broken_policy_folder_fails_loudly(trained, tmp_path):
    import shutil

    broken = tmp_path / "policy"
    shutil.copytree(trained.policy_dir, broken)
    (broken / "norm_stats.json").unlink()
    with pytest.raises(PolicyLoadError, match="norm_stats.json"):
        load_policy(broken)
    shutil.copy(trained.policy_dir / "norm_stats.json", broken / "norm_stats.json")
    weights = load_file(str(broken / "model.safetensors"))
    weights.pop(next(iter(weights)))
    from safetensors.torch import save_file

    save_file(weights, str(broken / "model.safetensors"))
    with pytest.raises(PolicyLoadError, match="missing"):
        load_policy(broken)
    with pytest.raises(PolicyLoadError, match="does not exist"):
        load_policy(tmp_path / "nowhere")


class _Kill(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.stage.name == "posttrain" and trainer.global_step == 2:
            raise RuntimeError("simulated kill")


def test_real_pipeline_kill_and_resume_matches_uninterrupted(trained, cache, tmp_path):
    recipe = tiny(cache)
    with pytest.raises(RuntimeError, match="simulated kill"):
        train_recipe(recipe, out_dir=tmp_path, console=QUIET, progress=False, extra_callbacks=[_Kill()])
    with pytest.raises(VlakitError, match="--resume"):
        train_recipe(recipe, out_dir=tmp_path, console=QUIET, progress=False)
    with pytest.raises(VlakitError, match="recipe differs"):
        train_recipe(tiny(cache, "train.optimizer.lr=0.5"), out_dir=tmp_path, resume=True, console=QUIET,
                     progress=False)
    resumed = train_recipe(recipe, out_dir=tmp_path, resume=True, console=QUIET, progress=False)
    a = load_file(str(trained.policy_dir / "model.safetensors"))
    b = load_file(str(resumed.policy_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("name", ["pi0_tabletop_tiny", "pi0_fast_tabletop_tiny"])
def test_other_tabletop_recipes_train_save_load_and_act(name, cache, tmp_path):
    recipe = load_recipe(name, [f"data.cache_dir={cache}", "backend.type=cpu"])
    result = train_recipe(recipe, out_dir=tmp_path, console=QUIET, progress=False)
    loaded = load_policy(result.policy_dir, backend="cpu")
    report = evaluate(make_actor=lambda: PolicyActor(loaded), env_spec=recipe.eval.env, splits=["unseen"],
                      episodes=1, replan_every=5, seed=0, max_steps=10)
    ep = report.episodes[0]
    # an undecodable FAST chunk (likely this early) ends the episode as a counted failure, never as zeros
    assert ep.length == 10 or ep.success or (ep.failure is not None and ep.length % 5 == 0)


def test_train_init_starts_from_another_policys_vlm(trained, cache, tmp_path):
    """train.init: the new run starts from the trained run's vision + language weights (step-0
    weights equal the source), and a bad path stops the run before anything is written."""
    from vlakit.recipe.build import build_policy

    seen = {}

    class _Grab(pl.Callback):
        def on_train_start(self, trainer, module):
            if not seen:  # the first stage's start: step 0
                seen.update({k: v.detach().clone() for k, v in module.policy.state_dict().items()})

    recipe = tiny(cache, f"train.init={{path: {trained.policy_dir}, exclude: [language.experts.1.]}}", "train.seed=123",
                  "train.vision_pretrain=null")  # else pre-training would move the vision weights on
    train_recipe(recipe, out_dir=tmp_path / "b", console=QUIET, progress=False, extra_callbacks=[_Grab()])
    source = load_file(str(trained.policy_dir / "model.safetensors"))
    fresh = build_policy(recipe)  # what the new run would have started from without init
    vision = [k for k in seen if k.startswith("vision.")]
    assert vision and all(torch.equal(seen[k], source[k]) for k in vision)
    expert = [k for k in seen if k.startswith("language.experts.1.")]
    assert expert and any(not torch.equal(seen[k], source[k]) for k in expert)
    assert set(seen) == set(fresh.state_dict())
    with pytest.raises(PolicyLoadError, match="does not exist"):
        train_recipe(tiny(cache, f"train.init={{path: {tmp_path / 'nope'}}}"), out_dir=tmp_path / "c", console=QUIET,
                     progress=False)
    assert not (tmp_path / "c" / "policy").exists()
    with pytest.raises(VlakitError, match="is not set; give the section as a whole"):
        tiny(cache, "train.init.path=x")


def test_vision_pretrain_runs_before_the_stages_and_is_not_redone_after_a_crash(trained, cache, tmp_path, monkeypatch):
    """The run's step-0 vision weights are the pre-trained ones saved under assets/, the report reaches
    the summary and the policy card; a run that crashed after pre-training reuses them, unless the
    pre-training settings changed."""
    import shutil

    import vlakit.training.vision_pretrain as vp

    assets = trained.out_dir / "assets"
    weights = load_file(str(assets / "vision_pretrain.safetensors"))
    summary = json.loads((trained.out_dir / "train_summary.json").read_text())
    card = json.loads((trained.policy_dir / "vlakit_policy.json").read_text())
    assert summary["vision_pretrain"]["task"] == "tabletop_scenes" and "held_out" in summary["vision_pretrain"]
    assert "vision_pretrain" in json.dumps(card)

    seen = {}

    class _Grab(pl.Callback):
        def on_train_start(self, trainer, module):
            if not seen:
                seen.update({k: v.detach().clone() for k, v in module.policy.vision.state_dict().items()})

    (tmp_path / "assets").mkdir()
    for name in ("vision_pretrain.safetensors", "vision_pretrain.json"):
        shutil.copy(assets / name, tmp_path / "assets" / name)

    def _must_not_run(*a, **k):
        raise AssertionError("pre-training ran again although its result was on disk")

    monkeypatch.setattr(vp, "pretrain_vision", _must_not_run)
    train_recipe(tiny(cache), out_dir=tmp_path, console=QUIET, progress=False, extra_callbacks=[_Grab()])
    assert set(seen) == set(weights) and all(torch.equal(seen[k], weights[k]) for k in weights)
    # other pre-training settings or starting weights: the saved result is not reused
    (tmp_path / "again").mkdir()
    shutil.copytree(tmp_path / "assets", tmp_path / "again" / "assets")
    changed = ("train.vision_pretrain={task: {type: tabletop_scenes}, images: 32, eval_images: 16, steps: 2, "
               "batch_size: 8}")
    for other in (changed, "train.seed=5"):  # other task settings, or other starting weights
        with pytest.raises(AssertionError, match="pre-training ran again"):
            train_recipe(tiny(cache, other), out_dir=tmp_path / "again", console=QUIET, progress=False)


def test_cli_eval_with_oracle_subtasks_conditions_on_the_envs_labels(trained, tmp_path):
    from typer.testing import CliRunner

    from vlakit.cli.main import app

    result = CliRunner().invoke(app, ["eval", str(trained.policy_dir), "--subtasks", "oracle", "-n", "2",
                                      "--split", "train", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval_report.json").read_text())
    assert report["subtasks"] == "oracle" and len(report["episodes"]) == 2
    from vlakit.envs.tabletop import TabletopConfig

    loaded = load_policy(trained.policy_dir, backend="cpu", precision="32-true")
    obs = TabletopConfig().build().reset(seed=0)
    noise = torch.randn(1, loaded.recipe.model.horizon, loaded.recipe.model.max_action_dim)
    oracle = loaded.infer_batch([obs], noise=noise, subtask=[obs.info["subtask"]])
    assert oracle.subtask == [obs.info["subtask"]]
    predicted = loaded.infer_batch([obs], noise=noise)
    if predicted.subtask != oracle.subtask:  # an untrained model's own text: other actions
        assert not np.allclose(predicted.actions, oracle.actions)


def test_cli_eval_noise_scale_overrides_the_recipes_for_that_evaluation(trained, tmp_path):
    from typer.testing import CliRunner

    from vlakit.cli.main import app

    saved = (trained.policy_dir / "recipe.yaml").read_bytes()
    assert load_policy(trained.policy_dir).recipe.model.inference.noise_scale == 0.0  # the default recipe's
    for scale, out in (("1", "unit"), (None, "recipe")):
        extra = ["--noise-scale", scale] if scale else []
        result = CliRunner().invoke(app, ["eval", str(trained.policy_dir), "-n", "1", "--split", "train",
                                          "--out", str(tmp_path / out), *extra])
        assert result.exit_code == 0, result.output
        report = json.loads((tmp_path / out / "eval_report.json").read_text())
        assert report["noise_scale"] == (1.0 if scale else 0.0)
    assert (trained.policy_dir / "recipe.yaml").read_bytes() == saved


def test_point_query_policy_trains_saves_loads_and_fills_its_subtasks(cache, tmp_path):
    """model.point_query end to end: the point loss trains (its stage weight is logged), the query's
    weights load back exactly, and the loaded policy writes its points into the subtask it predicts."""
    recipe = tiny(cache, "model.point_query={bins: 10}", "data.sources.robot.subtask_points=10",
                  "data.sources.subtasks.subtask_points=10", "model.max_target_tokens=20",
                  "train.stages=[{name: pretrain, steps: 3, losses: {text: 1.0, point: 1.0}}, "
                  "{name: posttrain, steps: 3, losses: {text: 1.0, flow_matching: 10.0, point: 1.0}}]")
    result = train_recipe(recipe, out_dir=tmp_path, console=QUIET, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("point" in r and np.isfinite(r["point"]) and r["point"] > 0 for r in rows)
    saved = load_file(str(result.policy_dir / "model.safetensors"))
    assert {"point_query.query", "point_query.head.weight"} <= set(saved)
    loaded = load_policy(result.policy_dir, backend="cpu", precision="32-true")
    torch.testing.assert_close(loaded.policy.point_query.query.detach(), saved["point_query.query"])
    from vlakit.components.text.points import fill_points
    from vlakit.envs.tabletop import TabletopConfig

    obs = TabletopConfig().build().reset(seed=0)
    out = loaded.infer_batch([obs])
    assert out.points is not None and out.points.shape == (1, 4) and np.isfinite(out.points).all()
    # whatever the tiny model decodes, its grid numbers (if any) are the query's
    assert out.subtask == [fill_points(out.subtask[0], out.points[0].tolist(), 10)]
    # and when it decodes numbers, the loaded policy replaces them with the query's
    decoded = "move to the red cube at 0 0 to 9 9"
    tok = loaded.policy.text_tokenizer
    original, tok.decode = tok.decode, lambda ids: [decoded]
    try:
        filled = loaded.infer_batch([obs])
    finally:
        tok.decode = original
    assert filled.subtask == [fill_points(decoded, filled.points[0].tolist(), 10)]
    np.testing.assert_allclose(filled.points, out.points, rtol=0, atol=1e-6)
