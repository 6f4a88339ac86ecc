"""Who acts in a rollout: a trained policy, a uniform random policy, or the environment's scripted expert."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from vlakit.errors import VlakitError
from vlakit.interfaces.env import Env, EnvObservation

#: where a policy actor's subtask comes from: its own prediction, or the env's label
SUBTASK_MODES: tuple[str, ...] = ("predicted", "oracle")


@dataclass
class ActorStep:
    """One decision: an action chunk ``[h, action_dim]`` in env units, executed open-loop.

    ``valid`` False means the chunk must not be executed (``error`` says why).
    """

    actions: np.ndarray
    subtask: str | None = None
    valid: bool = True
    error: str | None = None


class Actor(ABC):
    """Maps an observation to an action chunk. ``reset`` is called at the start of each episode."""

    name: str = "actor"
    #: True when the actor keeps no per-episode state, so one call may decide for several episodes
    batchable: bool = False

    def reset(self, env: Env, *, seed: int) -> None:
        """Prepare for a new episode of ``env``."""

    @abstractmethod
    def act(self, obs: EnvObservation) -> ActorStep: ...

    def act_batch(self, observations: list[EnvObservation]) -> list[ActorStep]:
        """One decision per observation (of different episodes when ``batchable``)."""
        return [self.act(obs) for obs in observations]


class PolicyActor(Actor):
    """A loaded policy (:class:`vlakit.policy_io.LoadedPolicy`): subtask + chunk as the recipe says.

    ``subtasks="oracle"`` gives the policy the env's own subtask label (``obs.info["subtask"]``)
    instead of letting it predict one: the low-level policy under a perfect high-level one (π0.5's
    evaluation with expert high-level commands). The label is formatted like the recipe's robot data:
    with its grid points (``obs.info["subtask_point"]``) when a data source sets ``subtask_points``.
    """

    name = "policy"
    batchable = True  # its only state, the robot type, is the same for every episode of one env

    def __init__(self, loaded: Any, *, camera_map: dict[str, str] | None = None,
                 subtasks: str = "predicted") -> None:
        if subtasks not in SUBTASK_MODES:
            raise VlakitError(f"subtasks must be one of {', '.join(SUBTASK_MODES)}, got {subtasks!r}")
        if subtasks == "oracle" and not loaded.recipe.model.inference.predict_subtask:
            raise VlakitError(f"subtasks=oracle: policy {loaded.recipe.name!r} does not condition its actions on a "
                              "subtask (model.inference.predict_subtask is false)")
        self.loaded = loaded
        self.camera_map = camera_map
        self.subtasks = subtasks
        self.points = subtask_points(loaded.recipe) if subtasks == "oracle" else None
        self.robot_type: str | None = None

    def reset(self, env: Env, *, seed: int) -> None:
        # the env names its embodiment when it has several; otherwise the stats must hold just one
        self.robot_type = getattr(env, "robot_type", None)

    def act(self, obs: EnvObservation) -> ActorStep:
        return self.act_batch([obs])[0]

    def act_batch(self, observations: list[EnvObservation]) -> list[ActorStep]:
        extra = {"subtask": [self._label(o) for o in observations]} if self.subtasks == "oracle" else {}
        result = self.loaded.infer_batch(list(observations), robot_type=self.robot_type, camera_map=self.camera_map,
                                         **extra)
        return [ActorStep(actions=result.actions[i], valid=bool(result.valid[i]), error=result.errors[i],
                          subtask=result.subtask[i] if result.subtask is not None else None)
                for i in range(len(observations))]


    def _label(self, obs: EnvObservation) -> str:
        text = obs.info.get("subtask")
        if not isinstance(text, str) or not text:
            raise VlakitError("subtasks=oracle needs an env that labels its subtasks (observation info['subtask']); "
                              f"this observation's info has keys {sorted(obs.info)}")
        if self.points is None:
            return text
        from vlakit.components.text.points import pointed_subtask

        point = obs.info.get("subtask_point")
        if point is None:
            raise VlakitError("subtasks=oracle: the policy's data gave subtasks grid points (subtask_points: "
                              f"{self.points}), but the env's observation info has no 'subtask_point'")
        return pointed_subtask(text, np.asarray(point), self.points)


def subtask_points(recipe: Any) -> int | None:
    """The grid size of the subtask points the recipe's data appends to subtask texts (None: plain text)."""
    sizes = {getattr(s, "subtask_points", None) for s in (recipe.data.sources.values() if recipe.data else [])}
    sizes.discard(None)
    if len(sizes) > 1:
        raise VlakitError(f"the recipe's data sources format subtask points on different grids {sorted(sizes)}; "
                          "an oracle subtask cannot match them all")
    return sizes.pop() if sizes else None


class RandomActor(Actor):
    """Uniform random actions in ``[low, high]`` per dimension (the env's ``action_bounds`` if it has them)."""

    name = "random"

    def __init__(self, *, horizon: int, seed: int = 0) -> None:
        self.horizon = horizon
        self.rng = np.random.default_rng(seed)
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None

    def reset(self, env: Env, *, seed: int) -> None:
        bounds = getattr(env, "action_bounds", None)
        if callable(bounds):
            bounds = bounds()
        if bounds is None:
            self.low, self.high = -np.ones(env.action_dim), np.ones(env.action_dim)
        else:
            self.low, self.high = (np.asarray(b, dtype=np.float64) for b in bounds)
        self.rng = np.random.default_rng([seed, 7])

    def act(self, obs: EnvObservation) -> ActorStep:
        assert self.low is not None and self.high is not None, "reset() first"
        return ActorStep(actions=self.rng.uniform(self.low, self.high, (self.horizon, len(self.low)))
                         .astype(np.float32))


class ExpertActor(Actor):
    """The environment's scripted expert (``env.expert_action()``), one action per call."""

    name = "expert"

    def __init__(self) -> None:
        self.env: Env | None = None

    def reset(self, env: Env, *, seed: int) -> None:
        if not callable(getattr(env, "expert_action", None)):
            raise VlakitError(f"environment {type(env).__name__} has no scripted expert (expert_action())")
        self.env = env

    def act(self, obs: EnvObservation) -> ActorStep:
        assert self.env is not None, "reset() first"
        action = np.asarray(self.env.expert_action(), dtype=np.float32)  # type: ignore[attr-defined]
        subtask = obs.info.get("subtask") if isinstance(obs.info, dict) else None
        return ActorStep(actions=action[None], subtask=subtask)
