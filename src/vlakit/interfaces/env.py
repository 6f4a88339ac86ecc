"""Environment interface: gymnasium-style reset/step with VLA observations and a success signal."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass
class EnvObservation:
    """One unbatched observation.

    Attributes:
        images: camera name -> uint8 ``[h, w, 3]``.
        state: float32 ``[state_dim]`` in raw (unnormalised) units.
        prompt: the task instruction.
    """

    images: dict[str, np.ndarray]
    state: np.ndarray
    prompt: str
    info: dict[str, Any] = field(default_factory=dict)


class Env(ABC):
    """A closed-loop environment. Deterministic given the seed passed to :meth:`reset`.

    ``step`` returns ``(obs, reward, terminated, truncated, info)`` like gymnasium; ``info`` holds
    ``"success": bool`` and, where known, ``"subtask": str``.
    """

    Config: ClassVar[type]

    @property
    @abstractmethod
    def cameras(self) -> list[str]: ...

    @property
    @abstractmethod
    def state_dim(self) -> int: ...

    @property
    @abstractmethod
    def action_dim(self) -> int: ...

    @property
    @abstractmethod
    def max_episode_steps(self) -> int: ...

    @abstractmethod
    def reset(self, *, seed: int, options: dict[str, Any] | None = None) -> EnvObservation: ...

    @abstractmethod
    def step(self, action: np.ndarray) -> tuple[EnvObservation, float, bool, bool, dict[str, Any]]: ...

    def task_family(self) -> str:
        """Name of the current task family (for per-family success rates)."""
        return "default"

    @property
    def robot_type(self) -> str:
        """Normalisation-stats key of this env's embodiment: the ``robot_type`` of the datasets a
        policy for it is trained on (e.g. ``tabletop_gripper``). Used by
        ``vlakit.data.ObservationTransform.for_env``."""
        raise NotImplementedError(f"{type(self).__name__} does not declare `robot_type`; pass the stats key "
                                  "to ObservationTransform(robot_type=...) explicitly")
