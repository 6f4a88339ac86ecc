"""Task families of the tabletop world: instruction, per-step subtask label and success test.

=========== =============================================== ==========================================
family      success                                         subtasks (in order)
=========== =============================================== ==========================================
reach       gripper within ``OBJECT_RADIUS + 0.025`` of it  move to the X
push        X's centre >= 0.03 inside the zone, not held    move behind the X (jaws open), push the X into Z
                                                            (jaws closed, nothing held)
pick_place  X's centre >= 0.02 inside the zone, released    pick up the X, place the X in Z
tidy        every object inside the bin, none held          pick up / place in the bin, per object
=========== =============================================== ==========================================

Subtasks are computed from the world state (not from the expert), so a policy's rollout gets the
same labels as the demonstrations. A push's two phases follow the jaws, which the robot state
shows, rather than whether the gripper is lined up behind the object to within 2.5 % of the
table's width, which a 64-pixel image barely shows: with labels by alignment, trained policies
closed their jaws next to the object, predicted "push" and drove to the zone without it (README:
Results, item 13).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from vlakit.envs.tabletop.language import INSTRUCTIONS, SUBTASKS
from vlakit.envs.tabletop.scene import GRIPPER_RADIUS, OBJECT_RADIUS, Scene, Split, sample_scene
from vlakit.envs.tabletop.world import CONTACT, GRASP_RADIUS, World

Family = Literal["reach", "push", "pick_place", "tidy"]
FAMILIES: tuple[str, ...] = ("reach", "push", "pick_place", "tidy")
SINGLE_STEP_FAMILIES: tuple[str, ...] = ("reach", "push", "pick_place")

#: default episode step limits (the expert needs well under half of these)
MAX_STEPS: dict[str, int] = {"reach": 40, "push": 80, "pick_place": 80, "tidy": 200}

REACH_TOLERANCE = OBJECT_RADIUS + 0.025
#: a subtask point's value where the subtask has no object / no zone (off the unit table)
NO_POINT = -1.0
PUSH_MARGIN = 0.03
#: how far (sideways) off the push line a closed gripper may be and still push, steering as it goes
PUSH_ACROSS = 0.06
PLACE_MARGIN = 0.02
#: where the tidy expert drops the k-th object, relative to the bin centre
BIN_SLOTS = np.array([[-0.06, -0.06], [0.06, 0.06], [-0.06, 0.06], [0.06, -0.06]])


@dataclass(frozen=True)
class Task:
    """One episode's task. ``target`` is an object index, ``zone`` an index into ``scene.zones``."""

    family: str
    scene: Scene
    instruction: str
    target: int
    zone: int

    def obj(self, i: int | None = None) -> str:
        return self.scene.objects[self.target if i is None else i].name

    def zone_name(self) -> str:
        return self.scene.zones[self.zone].name

    # -- success -------------------------------------------------------------------------------
    def success(self, world: World) -> bool:
        pos = world.positions
        if self.family == "reach":
            return bool(np.linalg.norm(world.gripper - pos[self.target]) <= REACH_TOLERANCE)
        zone = self.scene.zones[self.zone]
        if self.family == "push":
            return world.held != self.target and zone.contains(pos[self.target], margin=PUSH_MARGIN)
        if self.family == "pick_place":
            return world.held != self.target and zone.contains(pos[self.target], margin=PLACE_MARGIN)
        if self.family == "tidy":
            return world.held < 0 and all(zone.contains(p, margin=PLACE_MARGIN) for p in pos)
        raise ValueError(f"unknown task family {self.family!r}")

    # -- subtasks ------------------------------------------------------------------------------
    def subtask(self, world: World) -> str:
        """The label of what should happen now (world-state based)."""
        if self.family == "reach":
            return SUBTASKS["reach"].format(obj=self.obj())
        if self.family == "push":
            key = "push" if _pushing(world) else "approach"
            return SUBTASKS[key].format(obj=self.obj(), zone=self.zone_name())
        if self.family == "pick_place":
            key = "place" if world.held == self.target else "pick"
            return SUBTASKS[key].format(obj=self.obj(), zone=self.zone_name())
        k = self.tidy_next(world)
        key = "place" if world.held == k else "pick"
        return SUBTASKS[key].format(obj=self.obj(k), zone="the bin")

    def subtask_point(self, world: World) -> np.ndarray:
        """Where the current subtask happens: float32 ``[object_x, object_y, zone_x, zone_y]`` -- the
        object to go to or move (``-1, -1`` when it is held: "place") and the zone to bring it to
        (``-1, -1`` for "move to" and "pick up"; "move behind" has it, since behind is the side away
        from the zone). The table is ``[0, 1]^2``, so -1 is
        off it; a sentinel rather than NaN keeps datasets comparable and their statistics finite.
        (Pointing at the spot behind the object instead, where the push starts, was tried and lost:
        README: Results, item 14.)"""
        none = np.full(2, NO_POINT)
        if self.family == "reach":
            obj, zone = self.target, None
        elif self.family == "push":
            # "move behind" needs the zone too: behind is the side away from it
            obj, zone = self.target, self.zone
        else:
            obj = self.tidy_next(world) if self.family == "tidy" else self.target
            placing = world.held == obj
            obj, zone = (None, self.zone) if placing else (obj, None)
        xy_obj = world.positions[obj] if obj is not None else none
        xy_zone = np.asarray(self.scene.zones[zone].centre) if zone is not None else none
        return np.concatenate([xy_obj, xy_zone]).astype(np.float32)

    def push_direction(self, world: World) -> np.ndarray:
        return push_direction(world.positions[self.target], np.asarray(self.scene.zones[self.zone].centre))

    def tidy_next(self, world: World) -> int:
        """The object being tidied: the held one, else the first one outside the bin."""
        if world.held >= 0:
            return world.held
        zone = self.scene.zones[self.zone]
        for i, p in enumerate(world.positions):
            if not zone.contains(p, margin=PLACE_MARGIN):
                return i
        return len(world.positions) - 1


def _pushing(world: World) -> bool:
    """A push's second phase: the jaws are closed on nothing (the robot state shows it)."""
    return bool(world.closed and world.held < 0)


def push_direction(obj: np.ndarray, zone: np.ndarray) -> np.ndarray:
    """Unit vector from an object to the zone it is pushed into."""
    d = np.asarray(zone, dtype=np.float64) - np.asarray(obj, dtype=np.float64)
    n = float(np.linalg.norm(d))
    return d / n if n > 1e-9 else np.array([0.0, 1.0])


def push_start(positions: np.ndarray, target: int, zone: np.ndarray) -> np.ndarray:
    """Where a push of object ``target`` into the zone centred at ``zone`` starts: behind the object on
    the line away from the zone, at contact distance plus the smallest standoff (0.03-0.12) where
    closing the jaws grasps no other object (it may lie off the table; the gripper then stops at the
    edge). The scripted expert closes its jaws here; the pointing question "where is behind the X to
    push it into Z?" (``point_behind``) answers it."""
    positions = np.asarray(positions, dtype=np.float64)
    obj = positions[target]
    d = push_direction(obj, zone)
    others = np.delete(positions, target, axis=0)
    extra = 0.03
    for candidate in (0.03, 0.06, 0.09, 0.12):
        p = obj - d * (CONTACT + candidate)
        if len(others) == 0 or np.min(np.linalg.norm(others - p, axis=1)) > GRASP_RADIUS + 0.02:
            extra = candidate
            break
    return obj - d * (CONTACT + extra)


def push_aligned(world: World, target: int, direction: np.ndarray) -> bool:
    """True when the closed, empty gripper sits behind ``target`` on the push line, within
    :data:`PUSH_ACROSS` of it: the expert then pushes and steers; otherwise it opens and lines up again."""
    if not world.closed or world.held >= 0:
        return False
    rel = world.positions[target] - world.gripper
    along = float(rel @ direction)
    across = abs(float(rel[0] * direction[1] - rel[1] * direction[0]))
    return across < PUSH_ACROSS and 0.0 < along < CONTACT + 0.13


def sample_task(rng: np.random.Generator, *, family: str, split: Split) -> Task:
    """Draw a scene and a task of ``family`` for ``split``."""
    if family == "tidy":
        scene = sample_scene(rng, split=split, num_objects=int(rng.integers(2, 4)), zone_colours=0, with_bin=True)
        template = INSTRUCTIONS["tidy"][int(rng.integers(len(INSTRUCTIONS["tidy"])))]
        return Task(family, scene, template, target=0, zone=len(scene.zones) - 1)
    if family not in FAMILIES:
        raise ValueError(f"unknown tabletop task family {family!r}; valid: {', '.join(FAMILIES)}")
    scene = sample_scene(rng, split=split, num_objects=int(rng.integers(2, 5)), zone_colours=2, with_bin=False)
    target = int(rng.integers(len(scene.objects)))
    zone = int(rng.integers(len(scene.zones)))
    templates = INSTRUCTIONS[family]
    text = templates[int(rng.integers(len(templates)))].format(obj=scene.objects[target].name,
                                                                zone=scene.zones[zone].name)
    return Task(family, scene, text, target=target, zone=zone)


__all__ = [
    "FAMILIES",
    "GRIPPER_RADIUS",
    "MAX_STEPS",
    "PUSH_ACROSS",
    "SINGLE_STEP_FAMILIES",
    "Family",
    "Task",
    "push_aligned",
    "push_direction",
    "push_start",
    "sample_task",
]
