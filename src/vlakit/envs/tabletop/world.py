"""Physics of the tabletop world: objects, the gripper's jaws, grasping, pushing and releasing.

Rules (chosen to be simple and learnable):

* An **open** gripper hovers above the table: it passes over objects without touching them.
* **Closing** the jaws (``grip > 0``) while an object's centre is within :data:`GRASP_RADIUS` of the
  gripper grasps the nearest such object; it then moves with the gripper until the jaws open.
* A **closed, empty** gripper is lowered onto the table and pushes every object it touches
  (object centres are kept at least ``GRIPPER_RADIUS + OBJECT_RADIUS`` away).
"""

from __future__ import annotations

import numpy as np

from vlakit.envs.tabletop.embodiments import APERTURE_RATE, Embodiment
from vlakit.envs.tabletop.scene import GRIPPER_RADIUS, OBJECT_RADIUS, Scene

GRASP_RADIUS = 0.045
CONTACT = GRIPPER_RADIUS + OBJECT_RADIUS


class World:
    """Mutable state of one episode: object positions, the embodiment, jaws and the held object."""

    def __init__(self, scene: Scene, body: Embodiment) -> None:
        self.scene = scene
        self.body = body
        self.positions = scene.positions.astype(np.float64).copy()
        self.aperture = 1.0
        self.held = -1

    @property
    def gripper(self) -> np.ndarray:
        return self.body.position

    @property
    def closed(self) -> bool:
        return self.aperture <= 0.5

    def step(self, action: np.ndarray) -> None:
        """Apply one action (already clipped to [-1, 1]; last entry is the grip command)."""
        self.body.move(action)
        closing = bool(action[-1] > 0)
        was_open = not self.closed
        self.aperture = float(np.clip(self.aperture + (-APERTURE_RATE if closing else APERTURE_RATE), 0.0, 1.0))
        g = self.body.position
        if self.held >= 0:
            if closing:
                self.positions[self.held] = g
            else:
                self.held = -1  # released where it is
            return
        if not self.closed:
            return
        d = np.linalg.norm(self.positions - g, axis=1)
        if was_open:  # the jaws just closed: grasp the nearest object in reach
            i = int(np.argmin(d)) if len(d) else -1
            if i >= 0 and d[i] <= GRASP_RADIUS:
                self.held = i
                self.positions[i] = g
                return
        for i in np.nonzero(d < CONTACT)[0]:
            offset = self.positions[i] - g
            n = float(np.linalg.norm(offset))
            direction = offset / n if n > 1e-9 else np.array([0.0, 1.0])
            self.positions[i] = np.clip(g + direction * CONTACT, OBJECT_RADIUS, 1.0 - OBJECT_RADIUS)

    def state(self) -> np.ndarray:
        return self.body.state(self.aperture, self.held >= 0)
