"""On-policy corrections (``dagger:`` stages): rollouts, expert relabelling, the mixture, resume."""

from __future__ import annotations

import json
from types import SimpleNamespace

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

import vlakit.training.dagger as dagger
from vlakit.data.generate import is_complete
from vlakit.data.lerobot_reader import LeRobotDataset
from vlakit.envs.tabletop import TabletopConfig, TabletopEnv
from vlakit.errors import VlakitError
from vlakit.recipe.load import load_recipe
from vlakit.recipe.train_spec import DaggerSpec
from vlakit.training.run import train_recipe

QUIET = Console(file=open("/dev/null", "w"))
DAGGER_STAGES = ("train.stages=[{name: pretrain, steps: 2, losses: {fast_autoregressive: 1.0, text: 1.0}}, "
                 "{name: posttrain, steps: 2, losses: {text: 1.0, flow_matching: 10.0}}, "
                 "{name: dagger, steps: 4, losses: {text: 1.0, flow_matching: 10.0}, "
                 "dagger: {episodes: 3, states_per_episode: 2, batch_size: 2}}]")


class _RightwardPolicy:
    """Stands in for a LoadedPolicy: every chunk moves the gripper right with the jaws open."""

    def __init__(self, horizon: int = 10) -> None:
        self.horizon = horizon
        self.calls = 0

    def infer_batch(self, observations, robot_type=None, camera_map=None):
        self.calls += 1
        n = len(observations)
        actions = np.tile(np.array([1.0, 0.0, -1.0], np.float32), (n, self.horizon, 1))
        return SimpleNamespace(actions=actions, valid=np.ones(n, bool), errors=[None] * n, subtask=None)


def test_rollouts_fork_the_visited_states_and_the_expert_finishes_from_there():
    envs = [TabletopEnv(TabletopConfig(families=("reach",))) for _ in range(2)]
    starts = [env.reset(seed=s).state[:2].copy() for env, s in zip(envs, (5, 6))]
    visited, success = dagger._rollouts(_RightwardPolicy(), envs, seeds=[5, 6], replan_every=3)
    assert len(success) == 2
    for forks, start in zip(visited, starts):
        assert forks, "a rollout that runs past its first chunk visits states"
        for k, fork in enumerate(forks, start=1):  # a fork after k chunks of 3 rightward steps
            x = min(start[0] + 3 * k * 0.06, 1.0)
            assert fork.world.gripper[0] == pytest.approx(x)
            assert fork.world.gripper[1] == pytest.approx(start[1])
    fork = visited[0][0]
    before = fork.world.gripper.copy()
    twin = fork.fork()
    twin.step(np.array([-1.0, 0.0, -1.0]))
    assert np.array_equal(fork.world.gripper, before)  # independent copies
    assert twin._steps == 1 and twin._limit == twin.max_episode_steps  # a fresh step budget
    ep = dagger._continue(fork, seed=[0, 1], noise=0.1)
    assert ep is not None and ep["family"] == "reach"
    np.testing.assert_allclose(ep["state"][0][:2], before)
    np.testing.assert_allclose(ep["action"][0], fork.expert_action())  # the expert's clean label


def test_collect_writes_a_dataset_leaves_training_rng_alone_and_is_reused(tmp_path, monkeypatch):
    spec = DaggerSpec(episodes=3, states_per_episode=2, batch_size=2, env={"type": "tabletop", "families": ["reach"]})
    args = dagger.collection_args(spec, stage="d", step=7)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    policy = _RightwardPolicy()
    report = dagger.collect(policy, spec, tmp_path / "d", args=args, progress=False)
    assert torch.equal(torch.rand(3), expected)  # the rollouts drew from their own stream
    assert policy.calls > 0 and report.rollouts == 3 and 0 < report.episodes <= report.states <= 6
    assert is_complete(tmp_path / "d", args)
    ds = LeRobotDataset(tmp_path / "d")
    assert ds.num_episodes == report.episodes and len(ds) == report.frames
    assert set(ds.strings("subtask")) <= {f"move to the {o}" for o in _object_names()}

    def _must_not_run(*a, **k):
        raise AssertionError("collected again although the dataset was complete")

    monkeypatch.setattr(dagger, "_collect", _must_not_run)
    again = dagger.collect(policy, spec, tmp_path / "d", args=args, progress=False)
    assert again.reused and again.episodes == report.episodes and again.rollouts == 3
    with pytest.raises(AssertionError, match="collected again"):  # other arguments: not reused
        dagger.collect(policy, spec, tmp_path / "d", args={**args, "step": 8}, progress=False)


def _object_names():
    from vlakit.envs.tabletop.scene import COLOUR_NAMES, SHAPES

    return [f"{c} {s}" for c in COLOUR_NAMES for s in SHAPES]


def test_corrections_take_their_share_and_keep_the_rest_in_proportion():
    data = load_recipe("pi05_tabletop_tiny").data
    spec = dagger.with_corrections(data, name="dagger_a", path="/x", weight=0.25, like="robot")
    weights = {n: s.weight for n, s in spec.sources.items()}
    assert weights["dagger_a"] == pytest.approx(0.25)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["robot"] / weights["vqa"] == pytest.approx(data.sources["robot"].weight / data.sources["vqa"].weight)
    assert spec.sources["dagger_a"].type == "tabletop_episodes" and spec.sources["dagger_a"].path == "/x"
    with pytest.raises(VlakitError, match="'nope'"):
        dagger.with_corrections(data, name="dagger_a", path="/x", weight=0.25, like="nope")
    with pytest.raises(VlakitError, match="cannot read a dataset folder"):
        dagger.with_corrections(data, name="dagger_a", path="/x", weight=0.25, like="vqa")


def test_an_env_without_a_forkable_expert_is_refused():
    with pytest.raises(VlakitError, match="fork"):
        dagger.check_env(SimpleNamespace(expert_action=lambda: None))


class _Sources(pl.Callback):
    def __init__(self):
        self.by_stage = {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.by_stage.setdefault(module.stage.name, set()).update(batch[0].source)


class _Kill(pl.Callback):
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if module.stage.name == "dagger" and trainer.global_step == 2:
            raise RuntimeError("simulated kill")


def test_dagger_stage_trains_on_its_corrections_and_resumes_exactly(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    recipe = load_recipe("pi05_tabletop_tiny", [f"data.cache_dir={cache}", "backend.type=cpu", DAGGER_STAGES,
                                                "train.vision_pretrain=null"])
    seen = _Sources()
    full = train_recipe(recipe, out_dir=tmp_path / "a", console=QUIET, progress=False, extra_callbacks=[seen])
    assert "dagger_dagger" in seen.by_stage["dagger"]
    assert not any(s.startswith("dagger_") for s in seen.by_stage["posttrain"])
    folder = tmp_path / "a" / "dagger" / "02-dagger"
    assert is_complete(folder, dagger.collection_args(recipe.train.stages[2].dagger, stage="dagger", step=4))
    summary = json.loads((tmp_path / "a" / "train_summary.json").read_text())
    assert summary["dagger"]["dagger"]["rollouts"] == 3 and summary["dagger"]["dagger"]["episodes"] >= 1

    with pytest.raises(RuntimeError, match="simulated kill"):
        train_recipe(recipe, out_dir=tmp_path / "b", console=QUIET, progress=False, extra_callbacks=[_Kill()])

    def _must_not_run(*a, **k):
        raise AssertionError("collected again on resume")

    monkeypatch.setattr(dagger, "_collect", _must_not_run)
    resumed = train_recipe(recipe, out_dir=tmp_path / "b", resume=True, console=QUIET, progress=False)
    a = load_file(str(full.policy_dir / "model.safetensors"))
    b = load_file(str(resumed.policy_dir / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)

    # a stage that has started cannot be given corrections collected by other weights
    import shutil

    shutil.rmtree(tmp_path / "b" / "dagger")
    (tmp_path / "b" / "checkpoints" / "02-dagger" / "done.json").unlink()
    with pytest.raises(VlakitError, match="cannot be collected again"):
        train_recipe(recipe, out_dir=tmp_path / "b", resume=True, console=QUIET, progress=False)
