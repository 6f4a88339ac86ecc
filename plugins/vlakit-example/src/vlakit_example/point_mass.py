"""A point-mass reaching environment: the smallest closed loop a vlakit policy can be evaluated in."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from vlakit.config import ComponentConfig
from vlakit.interfaces.env import Env, EnvObservation

_COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230)}


class PointMassConfig(ComponentConfig):
    type: Literal["example_point_mass"] = "example_point_mass"
    image_size: int = Field(32, ge=8)
    max_steps: int = Field(40, ge=1)
    tolerance: float = Field(0.08, gt=0)
    split: str = "train"

    def build(self, **_: object) -> PointMassEnv:
        return PointMassEnv(self)


class PointMassEnv(Env):
    """Move a dot (velocity control, action ``[dx, dy]`` in [-1, 1]) onto the named coloured target."""

    Config = PointMassConfig

    def __init__(self, config: PointMassConfig | None = None) -> None:
        self.config = config or PointMassConfig()
        self._rng = np.random.default_rng(0)
        self._pos = np.zeros(2)
        self._targets: dict[str, np.ndarray] = {}
        self._goal = "red"
        self._t = 0

    @property
    def cameras(self) -> list[str]:
        return ["overhead"]

    @property
    def state_dim(self) -> int:
        return 2

    @property
    def action_dim(self) -> int:
        return 2

    @property
    def max_episode_steps(self) -> int:
        return self.config.max_steps

    def reset(self, *, seed: int, options: dict[str, Any] | None = None) -> EnvObservation:
        self._rng = np.random.default_rng(seed)
        self._pos = self._rng.uniform(0.1, 0.9, size=2)
        self._targets = {name: self._rng.uniform(0.1, 0.9, size=2) for name in _COLOURS}
        self._goal = str(self._rng.choice(list(_COLOURS)))
        self._t = 0
        return self._observe()

    def step(self, action: np.ndarray) -> tuple[EnvObservation, float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[:2], -1.0, 1.0)
        self._pos = np.clip(self._pos + 0.05 * action, 0.0, 1.0)
        self._t += 1
        success = bool(np.linalg.norm(self._pos - self._targets[self._goal]) < self.config.tolerance)
        truncated = self._t >= self.config.max_steps and not success
        info = {"success": success, "subtask": f"move to the {self._goal} target"}
        return self._observe(), float(success), success, truncated, info

    def task_family(self) -> str:
        return "reach"

    def expert_action(self) -> np.ndarray:
        """A scripted expert (proportional controller) -- handy for tests."""
        delta = (self._targets[self._goal] - self._pos) / 0.05
        return np.clip(delta, -1.0, 1.0)

    def _observe(self) -> EnvObservation:
        size = self.config.image_size
        img = np.full((size, size, 3), 235, dtype=np.uint8)
        for name, pos in self._targets.items():
            self._dot(img, pos, _COLOURS[name], radius=2)
        self._dot(img, self._pos, (0, 0, 0), radius=1)
        return EnvObservation(images={"overhead": img}, state=self._pos.astype(np.float32),
                              prompt=f"move to the {self._goal} target")

    @staticmethod
    def _dot(img: np.ndarray, pos: np.ndarray, colour: tuple[int, int, int], radius: int) -> None:
        size = img.shape[0]
        cy, cx = int(pos[1] * (size - 1)), int(pos[0] * (size - 1))
        img[max(cy - radius, 0): cy + radius + 1, max(cx - radius, 0): cx + radius + 1] = colour
