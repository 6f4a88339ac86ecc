"""Scripted expert for every task family (used to generate demonstrations).

The expert plans a gripper displacement and a grip command in table space; the embodiment turns
them into its own action (:meth:`Embodiment.action_for`), so one expert drives both embodiments.
Motion saturates at the embodiment's top speed and slows only on the final approach, which keeps
actions smooth and inside [-1, 1].
"""

from __future__ import annotations

import numpy as np

from vlakit.envs.tabletop.embodiments import MAX_SPEED
from vlakit.envs.tabletop.tasks import BIN_SLOTS, Task, push_aligned, push_start
from vlakit.envs.tabletop.world import CONTACT, World

OPEN, CLOSE = -1.0, 1.0
_ARRIVED = 0.012


class ScriptedExpert:
    """Stateless expert: ``act(world, task)`` returns the clean action for the current state."""

    def act(self, world: World, task: Task) -> np.ndarray:
        disp, grip = self.plan(world, task)
        n = float(np.linalg.norm(disp))
        if n > MAX_SPEED:  # same top speed for every embodiment
            disp = disp * (MAX_SPEED / n)
        return world.body.action_for(disp, grip)

    def plan(self, world: World, task: Task) -> tuple[np.ndarray, float]:
        """``(displacement [2], grip)`` for this step."""
        g = world.gripper
        if task.family == "reach":
            return world.positions[task.target] - g, OPEN
        if task.family == "push":
            return self._push(world, task)
        if task.family == "pick_place":
            return self._pick_place(world, task.target, np.asarray(task.scene.zones[task.zone].centre))
        k = task.tidy_next(world)
        slot = np.asarray(task.scene.zones[task.zone].centre) + BIN_SLOTS[k % len(BIN_SLOTS)]
        return self._pick_place(world, k, slot)

    def _pick_place(self, world: World, target: int, goal: np.ndarray) -> tuple[np.ndarray, float]:
        g = world.gripper
        if world.held >= 0 and world.held != target:
            return np.zeros(2), OPEN  # holding the wrong object: drop it
        if world.held == target:
            if np.linalg.norm(goal - g) > _ARRIVED:
                return goal - g, CLOSE
            return np.zeros(2), OPEN
        obj = world.positions[target]
        if world.closed:
            return np.zeros(2), OPEN  # open before approaching (a closed gripper would push)
        if np.linalg.norm(obj - g) > _ARRIVED:
            return obj - g, OPEN
        return np.zeros(2), CLOSE

    def _push(self, world: World, task: Task) -> tuple[np.ndarray, float]:
        g = world.gripper
        d = task.push_direction(world)
        obj = world.positions[task.target]
        if world.held >= 0:
            return np.zeros(2), OPEN
        if push_aligned(world, task.target, d):
            # move along the push line, correcting any sideways error
            behind = obj - d * CONTACT
            lateral = (behind - g) - d * float((behind - g) @ d)
            return d * MAX_SPEED + 0.5 * lateral, CLOSE
        start = push_start(world.positions, task.target, np.asarray(task.scene.zones[task.zone].centre))
        if np.linalg.norm(start - g) > _ARRIVED or world.closed:
            if world.closed and np.linalg.norm(start - g) <= _ARRIVED:
                return np.zeros(2), OPEN
            return start - g, OPEN
        return np.zeros(2), CLOSE
