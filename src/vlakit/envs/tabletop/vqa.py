"""Question-answer pairs about rendered tabletop scenes (the stand-in for web VQA data).

Questions cover colour, shape, counting, relative position, which zone, object locations as text
and the object nearest the gripper. ``make_vqa(seed, ...)`` is deterministic in its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlakit.components.text.points import SLOTS, point_words
from vlakit.envs.tabletop.embodiments import FreeGripper
from vlakit.envs.tabletop.language import (
    BEHIND_POINT_QUESTION,
    NUMBER_WORDS,
    POINT_QUESTION,
    REGIONS,
    VQA_QUESTIONS,
    ZONE_POINT_QUESTION,
)
from vlakit.envs.tabletop.render import Renderer
from vlakit.envs.tabletop.scene import COLOUR_NAMES, Pairs, Scene, Split, sample_scene
from vlakit.envs.tabletop.tasks import push_start

QUESTION_TYPES: tuple[str, ...] = tuple(VQA_QUESTIONS)
#: pointing questions, asked only with ``points`` (a grid size): ``point`` joins the default types,
#: ``point_zone`` and ``point_behind`` (the spot where a push starts) are asked only where a source lists them
POINT_TYPES: tuple[str, ...] = ("point", "point_zone", "point_behind")
_MIN_SEPARATION = 0.08  #: relative-position questions need objects at least this far apart


@dataclass(frozen=True)
class VQASample:
    images: dict[str, np.ndarray]
    question: str
    answer: str
    kind: str
    #: for pointing questions, where the answer is as ``[object_x, object_y, zone_x, zone_y]`` (the
    #: layout of a ``Batch.subtask_point`` row; NaN where not asked), else None
    point: np.ndarray | None = None


def region_of(xy: np.ndarray) -> str:
    """3x3 grid cell name of a table position (``top`` = far side = top of the overhead image)."""
    col = min(int(xy[0] * 3), 2)
    row = 2 - min(int(xy[1] * 3), 2)
    return REGIONS[row * 3 + col]


def _ask(kind: str, scene: Scene, gripper: np.ndarray, rng: np.random.Generator,
         points: int | None = None) -> tuple[str, str] | tuple[str, str, np.ndarray] | None:
    """(question, answer), with the answer's table position added for pointing questions; None when
    the scene cannot answer this kind of question."""
    objs, pos = scene.objects, scene.positions
    n = len(objs)
    pick = int(rng.integers(n))
    if kind == "point":
        assert points is not None
        return POINT_QUESTION.format(obj=objs[pick].name), point_words(pos[pick], points), pos[pick]
    if kind == "point_zone":
        assert points is not None
        zone = scene.zones[int(rng.integers(len(scene.zones)))]
        return ZONE_POINT_QUESTION.format(zone=zone.name), point_words(zone.centre, points), np.asarray(zone.centre)
    if kind == "point_behind":
        assert points is not None
        zone = scene.zones[int(rng.integers(len(scene.zones)))]
        start = push_start(pos, pick, np.asarray(zone.centre))
        return BEHIND_POINT_QUESTION.format(obj=objs[pick].name, zone=zone.name), point_words(start, points), start
    t = VQA_QUESTIONS[kind]
    if kind == "colour":
        unique = [i for i in range(n) if sum(o.shape == objs[i].shape for o in objs) == 1]
        if not unique:
            return None
        i = unique[int(rng.integers(len(unique)))]
        return t.format(shape=objs[i].shape), objs[i].colour
    if kind == "shape":
        unique = [i for i in range(n) if sum(o.colour == objs[i].colour for o in objs) == 1]
        if not unique:
            return None
        i = unique[int(rng.integers(len(unique)))]
        return t.format(colour=objs[i].colour), objs[i].shape
    if kind == "count_all":
        return t, NUMBER_WORDS[n]
    if kind == "count_colour":
        colour = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
        return t.format(colour=colour), NUMBER_WORDS[sum(o.colour == colour for o in objs)]
    if kind in ("left_right", "above_below"):
        j = int(rng.integers(n - 1))
        j = j + (j >= pick)
        axis = 0 if kind == "left_right" else 1
        delta = pos[pick, axis] - pos[j, axis]
        if abs(delta) < _MIN_SEPARATION:
            return None
        words = ("left", "right") if axis == 0 else ("below", "above")
        return t.format(obj=objs[pick].name, obj2=objs[j].name), words[int(delta > 0)]
    if kind == "zone":
        inside = [z.name for z in scene.zones if z.contains(pos[pick])]
        return t.format(obj=objs[pick].name), inside[0] if inside else "none"
    if kind == "where":
        return t.format(obj=objs[pick].name), region_of(pos[pick])
    if kind == "what_at":
        region = REGIONS[int(rng.integers(len(REGIONS)))]
        there = [o.name for o, p in zip(objs, pos) if region_of(p) == region]
        if len(there) > 1:
            return None
        return t.format(region=region), f"the {there[0]}" if there else "nothing"
    if kind == "closest":
        d = np.linalg.norm(pos - gripper, axis=1)
        order = np.argsort(d)
        if n > 1 and d[order[1]] - d[order[0]] < 0.05:
            return None
        return t, f"the {objs[int(order[0])].name}"
    raise ValueError(f"unknown VQA question type {kind!r}")


def make_vqa(seed: int, *, split: Split, renderer: Renderer, pairs: Pairs = "split",
             points: int | None = None, kinds: tuple[str, ...] | None = None) -> VQASample:
    """One question about one freshly drawn scene, rendered with ``renderer`` (``pairs``: see
    :func:`~vlakit.envs.tabletop.scene.sample_scene`). With ``points`` (a grid size), pointing questions
    ("where is the red cube at?" -> "3 5", see :func:`~vlakit.components.text.points.point_words`) join
    the question types. ``kinds`` restricts the question types asked (default: all of them)."""
    rng = np.random.default_rng([int(seed), 4242])
    scene = sample_scene(rng, split=split, num_objects=int(rng.integers(2, 5)), zone_colours=2, with_bin=False,
                         objects_in_zones=0.3, pairs=pairs)
    gripper = FreeGripper()
    gripper.reset(rng)
    renderer.set_scene(scene)
    images = renderer.render(positions=scene.positions, gripper=gripper.position, aperture=1.0, held=-1,
                             links=None)
    available = QUESTION_TYPES + (("point",) if points is not None else ())
    allowed = QUESTION_TYPES + (POINT_TYPES if points is not None else ())
    if kinds is None:
        kinds = available
    elif not kinds or set(kinds) - set(allowed):
        raise ValueError(f"VQA question kinds {list(kinds)}: choose among {list(allowed)} (pointing needs points)")
    kind = kinds[int(seed) % len(kinds)]
    for _ in range(8):
        qa = _ask(kind, scene, gripper.position, rng, points)
        if qa is not None:
            break
        kind = kinds[int(rng.integers(len(kinds)))]
    else:
        # the last resort: count_all (always fits) for an unrestricted source, else the first type that fits
        for kind in (("count_all",) if tuple(kinds) == available else kinds):
            qa = _ask(kind, scene, gripper.position, rng, points)
            if qa is not None:
                break
        else:
            raise ValueError(f"VQA sample {seed}: none of the question types {list(kinds)} fits its scene")
    assert qa is not None
    point = None
    if len(qa) == 3:
        point = np.full(4, np.nan, np.float32)
        point[SLOTS["zone" if kind == "point_zone" else "object"]] = qa[2]
    return VQASample(images=images, question=qa[0], answer=qa[1], kind=kind, point=point)
