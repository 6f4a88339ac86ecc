"""Embodiments of the tabletop world: how actions move the gripper, and what the state says.

Both embodiments end in the same two-jaw gripper (``aperture`` 1 = open, 0 = closed) and share the
world's physics; they differ in how they are driven and therefore in their state/action sizes:

========== ============================================ =========================================
name       state (raw units)                            action (every entry in [-1, 1])
========== ============================================ =========================================
gripper    ``[x, y, aperture, holding]`` (4)            ``[vx, vy, grip]`` (3), velocity control
arm        ``[q1, q2, q3, x, y, aperture, holding]`` (7) ``[dq1, dq2, dq3, grip]`` (4), joint velocity
========== ============================================ =========================================

``grip > 0`` closes the jaws, ``grip <= 0`` opens them. The expert plans in Cartesian space and each
embodiment maps a desired gripper displacement to its own action (:meth:`Embodiment.action_for`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import numpy as np

EmbodimentName = Literal["gripper", "arm"]
EMBODIMENTS: tuple[str, ...] = ("gripper", "arm")

MAX_SPEED = 0.06  #: gripper displacement per step at |action| = 1 (table units)
APERTURE_RATE = 0.5  #: aperture change per step


class Embodiment(ABC):
    """Kinematics of one robot. Holds its own joint state; the world holds objects."""

    name: str
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @abstractmethod
    def reset(self, rng: np.random.Generator) -> None:
        """Sample an initial configuration with the gripper over the table."""

    @property
    @abstractmethod
    def position(self) -> np.ndarray:
        """Gripper position ``[2]`` in table units."""

    @abstractmethod
    def move(self, action: np.ndarray) -> None:
        """Apply the motion part of a clipped action (everything but the last, grip, entry)."""

    @abstractmethod
    def action_for(self, displacement: np.ndarray, grip: float) -> np.ndarray:
        """The action that moves the gripper by about ``displacement`` ``[2]`` this step."""

    @abstractmethod
    def state(self, aperture: float, holding: bool) -> np.ndarray:
        """float32 ``[state_dim]``."""

    def links(self) -> np.ndarray | None:
        """Joint positions ``[K, 2]`` (base first) for drawing an arm, or None."""
        return None


class FreeGripper(Embodiment):
    """A gripper floating over the table, driven by Cartesian velocity."""

    name = "gripper"
    state_names = ("x", "y", "aperture", "holding")
    action_names = ("vx", "vy", "grip")

    def __init__(self) -> None:
        self._pos = np.full(2, 0.5)

    def reset(self, rng: np.random.Generator) -> None:
        self._pos = rng.uniform(0.1, 0.9, size=2)

    @property
    def position(self) -> np.ndarray:
        return self._pos

    def move(self, action: np.ndarray) -> None:
        self._pos = np.clip(self._pos + action[:2] * MAX_SPEED, 0.0, 1.0)

    def action_for(self, displacement: np.ndarray, grip: float) -> np.ndarray:
        v = displacement / MAX_SPEED
        n = float(np.hypot(v[0], v[1]))
        if n > 1.0:
            v = v / n
        return np.array([v[0], v[1], grip], np.float32)

    def state(self, aperture: float, holding: bool) -> np.ndarray:
        return np.array([self._pos[0], self._pos[1], aperture, float(holding)], np.float32)


class PlanarArm(Embodiment):
    """A three-joint planar arm mounted below the near table edge (drawn in the overhead view), driven by
    joint velocity."""

    name = "arm"
    state_names = ("q1", "q2", "q3", "x", "y", "aperture", "holding")
    action_names = ("dq1", "dq2", "dq3", "grip")
    base = np.array([0.5, -0.45])
    lengths = np.array([0.6, 0.5, 0.4])
    max_joint_speed = 0.12  #: rad per step at |action| = 1
    q_low = np.array([-0.2, -2.9, -2.9])
    q_high = np.array([np.pi + 0.2, 2.9, 2.9])
    q_rest = np.array([np.pi / 2 + 0.5, -1.0, -1.0])  #: comfortable posture the redundancy is pulled to

    def __init__(self) -> None:
        self.q = self.q_rest.copy()
        self._pos = self._fk(self.q)

    def reset(self, rng: np.random.Generator) -> None:
        for _ in range(1000):
            q = np.array([rng.uniform(0.8, np.pi - 0.8), rng.uniform(-1.8, 0.0), rng.uniform(-1.8, 0.0)])
            p = self._fk(q)
            if np.all(p > 0.12) and np.all(p < 0.88):
                self.q, self._pos = q, p
                return
        raise RuntimeError("PlanarArm.reset: no valid start posture found")

    def _fk(self, q: np.ndarray) -> np.ndarray:
        th = np.cumsum(q)
        return self.base + np.array([np.dot(self.lengths, np.cos(th)), np.dot(self.lengths, np.sin(th))])

    def _jacobian(self, q: np.ndarray) -> np.ndarray:
        th = np.cumsum(q)
        dx = -self.lengths * np.sin(th)
        dy = self.lengths * np.cos(th)
        # joint j moves every link from j on
        jx = np.cumsum(dx[::-1])[::-1]
        jy = np.cumsum(dy[::-1])[::-1]
        return np.stack([jx, jy])

    @property
    def position(self) -> np.ndarray:
        return self._pos

    def move(self, action: np.ndarray) -> None:
        q = np.clip(self.q + action[:3] * self.max_joint_speed, self.q_low, self.q_high)
        p = self._fk(q)
        if np.all(p >= -0.02) and np.all(p <= 1.02):  # the arm cannot leave the table area
            self.q, self._pos = q, p

    def action_for(self, displacement: np.ndarray, grip: float) -> np.ndarray:
        # damped least squares towards the displacement + null-space pull to the rest posture
        J = self._jacobian(self.q)
        JJt = J @ J.T + 1e-3 * np.eye(2)
        J_pinv = J.T @ np.linalg.inv(JJt)
        dq = J_pinv @ displacement
        # secondary objective: stay near the rest posture and well away from the joint limits
        pull = 0.1 * (self.q_rest - self.q)
        pull += 0.3 * np.clip(self.q_low + 0.6 - self.q, 0, None) - 0.3 * np.clip(self.q - self.q_high + 0.6, 0, None)
        dq = dq + (np.eye(3) - J_pinv @ J) @ pull
        a = dq / self.max_joint_speed
        peak = float(np.max(np.abs(a)))
        if peak > 1.0:
            a = a / peak
        return np.array([a[0], a[1], a[2], grip], np.float32)

    def state(self, aperture: float, holding: bool) -> np.ndarray:
        return np.array([*self.q, self._pos[0], self._pos[1], aperture, float(holding)], np.float32)

    def links(self) -> np.ndarray:
        th = np.cumsum(self.q)
        steps = np.stack([self.lengths * np.cos(th), self.lengths * np.sin(th)], axis=1)
        return np.concatenate([self.base[None], self.base + np.cumsum(steps, axis=0)])


def make_embodiment(name: str) -> Embodiment:
    if name == "gripper":
        return FreeGripper()
    if name == "arm":
        return PlanarArm()
    raise ValueError(f"unknown tabletop embodiment {name!r}; valid: {', '.join(EMBODIMENTS)}")
