"""Scene content of the tabletop world: palettes, shapes, styles ("homes"), splits and sampling.

Coordinates: the table is the unit square ``[0, 1]^2``; ``x`` grows to the right of the overhead
image, ``y`` grows towards its top. Sizes are in table units.

Splits. ``train`` and ``unseen`` use disjoint *styles* (table/floor colours, texture, lighting tint)
and disjoint *colour x shape combinations*. Every colour and every shape of the unseen split is
also seen in training -- only the pairings (and the homes) are new, which keeps the held-out test a
generalisation test rather than an impossible one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Split = Literal["train", "unseen"]
#: which colour x shape pairs a scene's objects come from: its split's, or all of them (web-style data)
Pairs = Literal["split", "all"]
SPLITS: tuple[str, ...] = ("train", "unseen")

#: object / zone colours (name -> RGB); chosen to be far apart and far from every table colour
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "green": (30, 175, 55),
    "blue": (35, 75, 230),
    "yellow": (240, 215, 30),
    "purple": (150, 50, 205),
    "orange": (245, 125, 20),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
SHAPES: tuple[str, ...] = ("cube", "ball", "triangle", "cross")

OBJECT_RADIUS = 0.06  #: half extent of every object
GRIPPER_RADIUS = 0.04  #: contact radius of the (closed) gripper
ZONE_HALF = 0.11  #: half side of a target zone
BIN_HALF = 0.14  #: half side of the tidy-up bin
OBJECT_MARGIN = 0.14  #: objects start at least this far from the table edge
MIN_OBJECT_GAP = 0.17  #: minimum centre distance between two objects at reset


def _held_out(colour_index: int, shape_index: int) -> bool:
    # One held-out shape per colour, and every shape keeps >= 4 training colours.
    return (colour_index + shape_index) % 4 == 0


def combos(split: Split) -> list[tuple[str, str]]:
    """The ``(colour, shape)`` pairs objects of ``split`` are drawn from."""
    out = []
    for ci, colour in enumerate(COLOUR_NAMES):
        for si, shape in enumerate(SHAPES):
            if _held_out(ci, si) == (split == "unseen"):
                out.append((colour, shape))
    return out


@dataclass(frozen=True)
class Style:
    """A "home": how the table looks. Colours are RGB 0-255, ``tint`` multiplies every pixel."""

    name: str
    table: tuple[int, int, int]
    floor: tuple[int, int, int]
    texture: Literal["plain", "wood", "checker", "noise"]
    tint: tuple[float, float, float]


TRAIN_STYLES: tuple[Style, ...] = (
    Style("kitchen", (200, 188, 165), (92, 80, 68), "wood", (1.0, 1.0, 1.0)),
    Style("office", (168, 168, 172), (58, 60, 70), "plain", (0.95, 0.97, 1.05)),
    Style("workshop", (150, 118, 88), (70, 62, 52), "wood", (1.05, 1.0, 0.92)),
    Style("lab", (214, 214, 214), (118, 120, 130), "checker", (1.0, 1.0, 1.0)),
    Style("study", (132, 110, 96), (40, 36, 34), "noise", (1.0, 0.98, 0.95)),
    Style("classroom", (186, 196, 182), (84, 96, 88), "plain", (0.97, 1.03, 0.97)),
    Style("garage", (120, 122, 126), (44, 44, 48), "noise", (0.92, 0.95, 1.0)),
    Style("bakery", (222, 200, 176), (120, 96, 80), "checker", (1.06, 1.0, 0.94)),
)
UNSEEN_STYLES: tuple[Style, ...] = (
    Style("loft", (112, 136, 150), (52, 60, 72), "noise", (0.9, 0.96, 1.1)),
    Style("cabin", (176, 146, 116), (64, 46, 36), "wood", (1.1, 0.98, 0.86)),
    Style("sunroom", (230, 216, 196), (150, 140, 110), "checker", (1.08, 1.04, 0.9)),
)


def styles(split: Split) -> tuple[Style, ...]:
    if split == "train":
        return TRAIN_STYLES
    if split == "unseen":
        return UNSEEN_STYLES
    raise ValueError(f"unknown tabletop split {split!r}; valid: {', '.join(SPLITS)}")


@dataclass(frozen=True)
class SceneObject:
    colour: str
    shape: str

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Zone:
    """A square target area. ``colour`` is a :data:`COLOURS` key, or ``"bin"`` for the tidy bin."""

    colour: str
    centre: tuple[float, float]
    half: float

    @property
    def name(self) -> str:
        return "the bin" if self.colour == "bin" else f"the {self.colour} zone"

    def contains(self, xy: np.ndarray | tuple[float, float], margin: float = 0.0) -> bool:
        return bool(abs(xy[0] - self.centre[0]) <= self.half - margin
                    and abs(xy[1] - self.centre[1]) <= self.half - margin)


@dataclass(frozen=True)
class Scene:
    """Static content of one episode plus the objects' initial positions ``[N, 2]``."""

    style: Style
    objects: tuple[SceneObject, ...]
    positions: np.ndarray
    zones: tuple[Zone, ...]


def sample_scene(rng: np.random.Generator, *, split: Split, num_objects: int, zone_colours: int,
                 with_bin: bool, objects_in_zones: float = 0.0, pairs: Pairs = "split") -> Scene:
    """Draw a scene: a style of ``split``, ``num_objects`` distinct objects of ``split``'s combos,
    ``zone_colours`` coloured zones and optionally the bin, placed without overlap.

    Objects start outside every zone unless ``objects_in_zones`` (a probability per object, used by
    the VQA generator) puts them inside one. ``pairs="all"`` draws the objects from every colour x
    shape pair instead (web-style data: the homes stay ``split``'s).
    """
    style = styles(split)[int(rng.integers(len(styles(split))))]
    pool = combos(split) if pairs == "split" else [(c, s) for c in COLOUR_NAMES for s in SHAPES]
    picks = rng.choice(len(pool), size=num_objects, replace=False)
    objects = tuple(SceneObject(*pool[int(i)]) for i in picks)
    for _attempt in range(200):
        zones = _place_zones(rng, zone_colours=zone_colours, with_bin=with_bin)
        positions = _place_objects(rng, num_objects, zones, objects_in_zones)
        if positions is not None:
            return Scene(style=style, objects=objects, positions=positions, zones=zones)
    raise RuntimeError("could not place tabletop scene after 200 attempts (geometry constants too tight)")


def _place_zones(rng: np.random.Generator, *, zone_colours: int, with_bin: bool) -> tuple[Zone, ...]:
    colours = [COLOUR_NAMES[int(i)] for i in rng.choice(len(COLOUR_NAMES), size=zone_colours, replace=False)]
    halves = [ZONE_HALF] * zone_colours + ([BIN_HALF] if with_bin else [])
    names = colours + (["bin"] if with_bin else [])
    zones: list[Zone] = []
    for name, half in zip(names, halves):
        for _ in range(100):
            c = rng.uniform(half + 0.03, 1.0 - half - 0.03, size=2)
            if all(max(abs(c[0] - z.centre[0]), abs(c[1] - z.centre[1])) > half + z.half + 0.06 for z in zones):
                zones.append(Zone(name, (float(c[0]), float(c[1])), half))
                break
        else:
            return ()  # caller retries
    return tuple(zones)


def _place_objects(rng: np.random.Generator, n: int, zones: tuple[Zone, ...],
                   in_zone_prob: float) -> np.ndarray | None:
    if not zones and n:
        return None
    pos = np.zeros((n, 2), np.float64)
    placed: list[tuple[float, float]] = []  # the same float64 arithmetic as numpy, without its per-call cost
    for i in range(n):
        inside = zones[int(rng.integers(len(zones)))] if rng.random() < in_zone_prob else None
        for _ in range(200):
            if inside is not None:
                p = np.asarray(inside.centre) + rng.uniform(-1, 1, size=2) * (inside.half - OBJECT_RADIUS)
            else:
                p = rng.uniform(OBJECT_MARGIN, 1.0 - OBJECT_MARGIN, size=2)
            px, py = float(p[0]), float(p[1])
            if inside is None and any(z.contains((px, py), margin=-(OBJECT_RADIUS + 0.03)) for z in zones):
                continue
            if any(math.sqrt((qx - px) * (qx - px) + (qy - py) * (qy - py)) < MIN_OBJECT_GAP for qx, qy in placed):
                continue
            pos[i] = p
            placed.append((px, py))
            break
        else:
            return None
    return pos
