"""The ``tabletop`` environment: a registered :class:`~vlakit.interfaces.env.Env`.

Evaluation episodes are enumerated by seed: ``reset(seed=k)`` deterministically picks the task
family ``families[k % len(families)]`` and draws the scene and task from a generator seeded by
``(k, split)``. Episodes ``0..n-1`` are therefore balanced over families and identical across runs.
Dataset generation uses seeds >= 1,000,000 (see :mod:`vlakit.data.generate`), so generated
training scenes never coincide with evaluation episodes.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from vlakit.config import ComponentConfig
from vlakit.envs.tabletop.embodiments import EMBODIMENTS, make_embodiment
from vlakit.envs.tabletop.expert import ScriptedExpert
from vlakit.envs.tabletop.render import Renderer
from vlakit.envs.tabletop.scene import SPLITS
from vlakit.envs.tabletop.tasks import FAMILIES, MAX_STEPS, SINGLE_STEP_FAMILIES, Task, sample_task
from vlakit.envs.tabletop.world import World
from vlakit.interfaces.env import Env, EnvObservation
from vlakit.registry import ENVS

_SPLIT_SALT = {"train": 11, "unseen": 29}


class TabletopConfig(ComponentConfig):
    """The embedded 2D tabletop world (pure numpy, deterministic, no display)."""

    type: Literal["tabletop"] = "tabletop"
    split: Literal["train", "unseen"] = "train"
    embodiment: Literal["gripper", "arm"] = "gripper"
    families: tuple[Literal["reach", "push", "pick_place", "tidy"], ...] = Field(
        default=SINGLE_STEP_FAMILIES, min_length=1)
    image_size: int = Field(64, ge=16, le=512, description="square RGB size of both cameras")
    max_steps: int | None = Field(None, ge=1, description="step limit; None = per-family default")
    #: stop the episode (terminated=True) as soon as the task succeeds
    terminate_on_success: bool = True

    @field_validator("families")
    @classmethod
    def _unique(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"families must be unique, got {list(v)}")
        return v

    def build(self, **context: Any) -> TabletopEnv:
        return TabletopEnv(self)


@ENVS.register
class TabletopEnv(Env):
    """Gymnasium-style tabletop env. Observations carry ``overhead`` and ``wrist`` images."""

    Config = TabletopConfig

    def __init__(self, config: TabletopConfig | None = None) -> None:
        self.config = config or TabletopConfig()
        assert self.config.split in SPLITS and self.config.embodiment in EMBODIMENTS
        self.renderer = Renderer(size=self.config.image_size)
        self._probe = make_embodiment(self.config.embodiment)
        self.world: World | None = None
        self.task: Task | None = None
        self._steps = 0
        self._limit = 0

    # -- static facts ---------------------------------------------------------------------------
    @property
    def cameras(self) -> list[str]:
        return list(Renderer.cameras)

    @property
    def state_dim(self) -> int:
        return self._probe.state_dim

    @property
    def action_dim(self) -> int:
        return self._probe.action_dim

    @property
    def state_names(self) -> tuple[str, ...]:
        return self._probe.state_names

    @property
    def action_names(self) -> tuple[str, ...]:
        return self._probe.action_names

    @property
    def robot_type(self) -> str:
        return f"tabletop_{self.config.embodiment}"

    @property
    def max_episode_steps(self) -> int:
        if self.config.max_steps is not None:
            return self.config.max_steps
        if self.task is not None:
            return MAX_STEPS[self.task.family]
        return max(MAX_STEPS[f] for f in self.config.families)

    def task_family(self) -> str:
        if self.task is None:
            raise RuntimeError("task_family() called before reset()")
        return self.task.family

    # -- episode --------------------------------------------------------------------------------
    def reset(self, *, seed: int, options: dict[str, Any] | None = None) -> EnvObservation:
        """Start episode ``seed``. ``options={"family": name}`` forces a family (must be one of
        the configured families)."""
        options = dict(options or {})
        families = self.config.families
        family = options.pop("family", families[seed % len(families)])
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; valid: family")
        if family not in FAMILIES:
            raise ValueError(f"unknown tabletop task family {family!r}; valid: {', '.join(FAMILIES)}")
        rng = np.random.default_rng([int(seed), _SPLIT_SALT[self.config.split], FAMILIES.index(family)])
        self.task = sample_task(rng, family=family, split=self.config.split)
        body = make_embodiment(self.config.embodiment)
        body.reset(rng)
        target = self.task.scene.positions[self.task.target]
        for _ in range(100):  # a reach must not start solved
            if family != "reach" or np.linalg.norm(body.position - target) >= 0.25:
                break
            body.reset(rng)
        self.world = World(self.task.scene, body)
        self.renderer.set_scene(self.task.scene)
        self._steps = 0
        self._limit = self.max_episode_steps
        return self._observe()

    def step(self, action: np.ndarray) -> tuple[EnvObservation, float, bool, bool, dict[str, Any]]:
        if self.world is None or self.task is None:
            raise RuntimeError("step() called before reset()")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape[0] != self.action_dim:
            raise ValueError(f"tabletop {self.config.embodiment} expects an action of {self.action_dim} dims "
                             f"({', '.join(self.action_names)}), got shape {np.shape(action)}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"non-finite action {a.tolist()}")
        self.world.step(np.clip(a, -1.0, 1.0))
        self._steps += 1
        success = self.task.success(self.world)
        terminated = success and self.config.terminate_on_success
        truncated = (not terminated) and self._steps >= self._limit
        obs = self._observe()
        info = {"success": success, "subtask": obs.info["subtask"], "family": self.task.family,
                "steps": self._steps}
        return obs, float(success), terminated, truncated, info

    def expert_action(self, expert: ScriptedExpert | None = None) -> np.ndarray:
        """The scripted expert's clean action for the current state (float32 ``[action_dim]``)."""
        if self.world is None or self.task is None:
            raise RuntimeError("expert_action() called before reset()")
        return (expert or _EXPERT).act(self.world, self.task)

    def subtask(self) -> str:
        assert self.world is not None and self.task is not None
        return self.task.subtask(self.world)

    def fork(self) -> TabletopEnv:
        """An independent copy of this episode at its current state, with a fresh step budget: the
        scripted expert can then finish the task from a state a policy reached (DAgger relabelling)."""
        if self.world is None or self.task is None:
            raise RuntimeError("fork() called before reset()")
        # the renderer's per-scene arrays are only read after set_scene, and set_scene replaces them, so a
        # shallow copy is independent of this env's next reset and costs no image memory
        twin = copy.deepcopy(self, memo={id(self.renderer): copy.copy(self.renderer)})
        twin._steps = 0
        twin._limit = twin.max_episode_steps
        return twin

    def observation(self) -> EnvObservation:
        """The observation of the current state (what the last ``reset``/``step`` returned)."""
        if self.world is None or self.task is None:
            raise RuntimeError("observation() called before reset()")
        return self._observe()

    def _observe(self) -> EnvObservation:
        w = self.world
        assert w is not None and self.task is not None
        images = self.renderer.render(positions=w.positions, gripper=w.gripper, aperture=w.aperture,
                                      held=w.held, links=w.body.links())
        return EnvObservation(images=images, state=w.state(), prompt=self.task.instruction,
                              info={"subtask": self.task.subtask(w), "subtask_point": self.task.subtask_point(w),
                                    "family": self.task.family,
                                    "style": self.task.scene.style.name})


_EXPERT = ScriptedExpert()
