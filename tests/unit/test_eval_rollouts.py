"""Evaluator on a tiny registered fake environment: rollouts, replanning, per-family stats, reports."""

from __future__ import annotations

import json
from typing import Any, Literal

import numpy as np
import pytest
from PIL import Image

from vlakit.config import ComponentConfig
from vlakit.errors import VlakitError
from vlakit.evaluation import Actor, ActorStep, ExpertActor, RandomActor, evaluate, make_env, wilson_interval
from vlakit.interfaces.env import Env, EnvObservation
from vlakit.registry import ENVS


class LineConfig(ComponentConfig):
    type: Literal["test_line"] = "test_line"
    split: Literal["train", "unseen"] = "train"

    def build(self) -> LineEnv:
        return LineEnv(self)


class LineEnv(Env):
    """Reach a goal on a line. Family = side of the goal; unseen goals are farther out."""

    Config = LineConfig

    def __init__(self, cfg: LineConfig) -> None:
        self.cfg = cfg
        self.pos = 0.0
        self.goal = 0.0
        self.steps = 0

    cameras = property(lambda self: ["cam"])
    state_dim = property(lambda self: 1)
    action_dim = property(lambda self: 1)
    max_episode_steps = property(lambda self: 30)

    def _obs(self) -> EnvObservation:
        img = np.zeros((8, 8, 3), np.uint8)
        img[:, int(np.clip((self.pos + 1) * 3.5, 0, 7))] = 255
        return EnvObservation(images={"cam": img}, state=np.array([self.pos], np.float32),
                              prompt=f"go {'left' if self.goal < 0 else 'right'}", info={"subtask": "move"})

    def reset(self, *, seed: int, options: dict[str, Any] | None = None) -> EnvObservation:
        rng = np.random.default_rng([seed, self.cfg.split == "unseen"])
        scale = 0.9 if self.cfg.split == "unseen" else 0.5
        self.goal, self.pos, self.steps = float(rng.choice([-1, 1]) * scale), 0.0, 0
        return self._obs()

    def step(self, action: np.ndarray):
        self.pos += float(np.clip(action[0], -0.1, 0.1))
        self.steps += 1
        success = abs(self.pos - self.goal) < 0.05
        return self._obs(), float(success), success, self.steps >= 30, {"success": success}

    def task_family(self) -> str:
        return "left" if self.goal < 0 else "right"

    def expert_action(self) -> np.ndarray:
        return np.array([np.clip(self.goal - self.pos, -0.1, 0.1)], np.float32)

    def action_bounds(self):
        return np.array([-0.1]), np.array([0.1])


@pytest.fixture(autouse=True)
def line_env():
    ENVS.register(LineEnv)
    yield
    ENVS.unregister("test_line")


class CountingActor(Actor):
    """Moves right; records how many policy calls it gets."""

    name = "counting"

    def __init__(self, horizon: int, *, invalid_after: int | None = None) -> None:
        self.horizon, self.calls, self.invalid_after = horizon, 0, invalid_after

    def reset(self, env: Env, *, seed: int) -> None:
        self.calls = 0

    def act(self, obs: EnvObservation) -> ActorStep:
        self.calls += 1
        if self.invalid_after is not None and self.calls > self.invalid_after:
            return ActorStep(actions=np.full((self.horizon, 1), np.nan), valid=False, error="undecodable tokens")
        return ActorStep(actions=np.full((self.horizon, 1), 0.1, np.float32), subtask="go right")


def test_wilson_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for k, n in [(0, 10), (7, 10), (10, 10), (31, 50), (1, 3)]:
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-6)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 3)


def test_expert_beats_random_and_stats_are_per_family(tmp_path):
    spec = ENVS.config_class("test_line")()
    expert = evaluate(make_actor=ExpertActor, env_spec=spec, splits=["train", "unseen"], episodes=12,
                      replan_every=1, seed=0, out_dir=tmp_path)
    rnd = evaluate(make_actor=lambda: RandomActor(horizon=5, seed=0), env_spec=spec, splits=["train", "unseen"],
                   episodes=12, replan_every=5, seed=0)
    assert expert.rate("train") == 1.0 and expert.rate("unseen") == 1.0
    assert rnd.rate("unseen") < 0.5
    families = {(g.split, g.family) for g in expert.stats}
    assert families == {(s, f) for s in ("train", "unseen") for f in ("left", "right", "all")}
    # unseen goals are farther: the expert needs more steps there
    assert expert.stats[-1].mean_length > expert.stats[0].mean_length
    report = json.loads((tmp_path / "eval_report.json").read_text())
    assert len(report["episodes"]) == 24 and report["summary"][0]["split"] == "train"
    assert Image.open(tmp_path / "episodes.png").size[0] > 0
    gif = Image.open(tmp_path / "episodes.gif")
    assert gif.n_frames > 1


def test_chunk_runs_open_loop_for_replan_every_steps():
    spec = ENVS.config_class("test_line")()
    for replan, horizon in [(1, 5), (3, 5), (5, 5), (8, 5)]:
        actor = CountingActor(horizon)
        report = evaluate(make_actor=lambda a=actor: a, env_spec=spec, splits=["train"], episodes=1,
                          replan_every=replan, seed=3, max_steps=12)
        ep = report.episodes[0]
        per_call = min(replan, horizon)
        assert actor.calls == ep.chunks == -(-ep.length // per_call)


def test_invalid_chunk_ends_episode_as_counted_failure():
    spec = ENVS.config_class("test_line")()
    report = evaluate(make_actor=lambda: CountingActor(2, invalid_after=1), env_spec=spec, splits=["train"],
                      episodes=2, replan_every=2, seed=0)
    assert all(not e.success and "undecodable" in e.failure and e.length == 2 for e in report.episodes)
    assert report.stats[-1].failures == 2


class StatelessExpert(Actor):
    """Batchable: reads each observation's goal side from its prompt and heads there."""

    name = "stateless"
    batchable = True

    def __init__(self) -> None:
        self.batches: list[int] = []

    def act(self, obs: EnvObservation) -> ActorStep:
        return self.act_batch([obs])[0]

    def act_batch(self, observations):
        self.batches.append(len(observations))
        return [ActorStep(actions=np.full((3, 1), -0.1 if "left" in o.prompt else 0.1, np.float32))
                for o in observations]


def test_batched_rollouts_give_the_episodes_of_one_at_a_time(tmp_path):
    spec = ENVS.config_class("test_line")()
    kwargs = dict(env_spec=spec, splits=["train", "unseen"], episodes=7, replan_every=2, seed=4, strip_episodes=2)
    single, batched = StatelessExpert(), StatelessExpert()
    one = evaluate(make_actor=lambda: single, **kwargs)
    many = evaluate(make_actor=lambda: batched, batch_size=3, out_dir=tmp_path, **kwargs)
    key = [(e.split, e.seed, e.success, e.length, e.chunks, e.family) for e in one.episodes]
    assert [(e.split, e.seed, e.success, e.length, e.chunks, e.family) for e in many.episodes] == key
    assert set(single.batches) == {1} and max(batched.batches) == 3  # 7 = 3 + 3 + 1 per split
    assert len(batched.batches) < len(single.batches)
    assert json.loads((tmp_path / "eval_report.json").read_text())["batch_size"] == 3
    # an actor with per-episode state is still rolled out one episode at a time
    counting = CountingActor(2)
    report = evaluate(make_actor=lambda: counting, env_spec=spec, splits=["train"], episodes=3, replan_every=2,
                      seed=0, batch_size=3, max_steps=6)
    assert [e.chunks for e in report.episodes] == [3, 3, 3]
    with pytest.raises(VlakitError, match="one at a time"):
        from vlakit.evaluation.rollout import run_episodes

        run_episodes([make_env(spec, split="train")] * 2, counting, seeds=[0, 1], split="train", replan_every=1)


def test_env_without_splits_only_accepts_default():
    class NoSplitConfig(ComponentConfig):
        type: Literal["test_nosplit"] = "test_nosplit"

        def build(self):
            return LineEnv(LineConfig())

    with pytest.raises(VlakitError, match="no scene splits"):
        make_env(NoSplitConfig(), split="unseen")
    assert isinstance(make_env(NoSplitConfig(), split="default"), LineEnv)
    with pytest.raises(Exception, match="split"):
        make_env(LineConfig(), split="valid")


class _RecordingPolicy:
    """Stands in for a LoadedPolicy: records the subtasks it is given, moves nowhere."""

    def __init__(self, recipe: Any) -> None:
        self.recipe = recipe
        self.given: list[list[str] | None] = []

    def infer_batch(self, observations, robot_type=None, camera_map=None, subtask=None):
        from types import SimpleNamespace

        self.given.append(subtask)
        n = len(observations)
        return SimpleNamespace(actions=np.zeros((n, 3, 3), np.float32), valid=np.ones(n, bool), errors=[None] * n,
                               subtask=subtask)


def test_oracle_subtasks_give_the_policy_the_envs_label_formatted_like_its_data():
    from vlakit.envs.tabletop import TabletopConfig, TabletopEnv
    from vlakit.evaluation import PolicyActor
    from vlakit.recipe.load import load_recipe

    env = TabletopEnv(TabletopConfig(families=("pick_place",)))
    obs = env.reset(seed=3)
    target = env.world.positions[env.task.target]
    plain_text = ["model.point_query=null", "model.heads.flow_matching.point_input=false",
                  "data.sources.robot.subtask_points=null", "data.sources.subtasks.subtask_points=null"]
    plain = _RecordingPolicy(load_recipe("pi05_tabletop_tiny", plain_text))
    step = PolicyActor(plain, subtasks="oracle").act(obs)
    assert plain.given == [[env.subtask()]] and step.subtask == env.subtask()
    pointed = _RecordingPolicy(load_recipe("pi05_tabletop_tiny"))  # the default's data: grid points on a 10 grid
    PolicyActor(pointed, subtasks="oracle").act(obs)
    col, row = int(target[0] * 10), int(target[1] * 10)
    assert pointed.given == [[f"{env.subtask()} at {col} {row}"]]  # "pick up the X": the object's grid cell
    predicted = _RecordingPolicy(load_recipe("pi05_tabletop_tiny"))
    PolicyActor(predicted).act(obs)
    assert predicted.given == [None]  # nothing given: the policy predicts its own

    with pytest.raises(VlakitError, match="predict_subtask is false"):
        no_subtask = ["model.inference.predict_subtask=false", "model.heads.flow_matching.point_input=false"]
        PolicyActor(_RecordingPolicy(load_recipe("pi05_tabletop_tiny", no_subtask)), subtasks="oracle")
    unlabelled = EnvObservation(images=obs.images, state=obs.state, prompt=obs.prompt, info={})
    with pytest.raises(VlakitError, match=r"info\['subtask'\]"):
        PolicyActor(plain, subtasks="oracle").act(unlabelled)
    with pytest.raises(VlakitError, match="subtasks must be one of"):
        PolicyActor(plain, subtasks="human")
