"""``tabletop_scenes``: tabletop images labelled per token cell -- the "web images" of the world.

Each cell of the encoder's grid is labelled with the object whose centre lies in it (its colour, its
shape, and where in the cell the centre is, in [-1, 1]) and with the colour of the zone under the
cell's centre. An encoder that has learned these tells the backbone *what is where*, which is the
grounding a PaliGemma-initialised π0.5 gets from SigLIP/web pre-training.

Like web data, the training scenes show **every colour x shape pair** by default (``pairs: all``),
including the pairs the robot data never shows (they are the world's held-out ``unseen`` pairs);
robot episodes still only show the ``train`` pairs. ``pairs: split`` restricts the scenes to the
training pairs (an ablation). The homes (table styles) are always the training ones; the held-out
evaluation set uses the unseen homes and the unseen pairs.

The images are overhead views; ``wrist: p`` makes a share ``p`` of them wrist views next to an object
(the gripper within ``wrist_near`` of it), labelled the same way on the wrist image's grid, so the
encoder also learns where an object sits relative to the jaws.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from vlakit.config import ComponentConfig
from vlakit.interfaces.vision_task import DenseData, DenseTarget, VisionTask
from vlakit.registry import VISION_TASKS


class TabletopScenesConfig(ComponentConfig):
    """Overhead tabletop scenes with per-cell object/zone labels."""

    type: Literal["tabletop_scenes"] = "tabletop_scenes"
    pairs: Literal["all", "split"] = Field("all", description="colour x shape pairs the training scenes show: "
                                                                "every one (web-style) or the train split's")
    image_size: int = Field(64, ge=16, le=512)
    objects_in_zones: float = Field(0.3, ge=0, le=1, description="probability an object starts inside a zone")
    wrist: float = Field(0.0, ge=0, le=1, description="share of the images seen by the wrist camera instead "
                                                       "of the overhead one, labelled on the same grid")
    wrist_near: float = Field(0.15, gt=0, le=1, description="a wrist image's gripper sits within this of an "
                                                            "object on both axes (table units)")

    def build(self, **context: Any) -> TabletopScenes:
        return TabletopScenes(self)


@VISION_TASKS.register
class TabletopScenes(VisionTask):
    Config = TabletopScenesConfig

    def __init__(self, config: TabletopScenesConfig) -> None:
        from vlakit.envs.tabletop.scene import COLOUR_NAMES, SHAPES

        self.config = config
        self.colours, self.shapes = COLOUR_NAMES, SHAPES

    def targets(self) -> list[DenseTarget]:
        none = 1  # the last class of each categorical target is "nothing here"
        return [DenseTarget("colour", "class", len(self.colours) + none),
                DenseTarget("shape", "class", len(self.shapes) + none),
                DenseTarget("zone", "class", len(self.colours) + none),
                DenseTarget("offset", "regress", 2)]

    def generate(self, num: int, *, grid: int, seed: int, held_out: bool = False) -> DenseData:
        from vlakit.envs.tabletop import scene as sc
        from vlakit.envs.tabletop.embodiments import FreeGripper
        from vlakit.envs.tabletop.render import OVERHEAD_EXTENT, WRIST_FOV, Renderer

        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        split = "unseen" if held_out else "train"
        pairs = "all" if self.config.pairs == "all" and not held_out else "split"
        rng = np.random.default_rng([seed, 1 + held_out])
        renderer = Renderer(size=self.config.image_size, wrist_canvas=False)
        size, cells = self.config.image_size, grid * grid
        images = np.zeros((num, size, size, 3), np.uint8)
        colour = np.full((num, cells), len(self.colours), np.int64)
        shape = np.full((num, cells), len(self.shapes), np.int64)
        zone = np.full((num, cells), len(self.colours), np.int64)
        offset = np.full((num, cells, 2), np.nan, np.float32)
        lo, hi = OVERHEAD_EXTENT
        # cell centres as fractions of the image, row 0 at the top (the far side of the table, +y)
        frac = (np.arange(grid) + 0.5) / grid
        fx, fy = np.meshgrid(frac, frac)
        for i in range(num):
            scene = sc.sample_scene(rng, split=split, num_objects=int(rng.integers(2, 5)), zone_colours=2,
                                    with_bin=False, objects_in_zones=self.config.objects_in_zones, pairs=pairs)
            gripper = FreeGripper()
            gripper.reset(rng)
            renderer.set_scene(scene)
            # (no draw at wrist 0: the overhead-only images stay those of earlier versions)
            wrist = self.config.wrist > 0 and bool(rng.random() < self.config.wrist)
            if wrist:  # looking down next to an object, as before a grasp or a push
                near = scene.positions[int(rng.integers(len(scene.positions)))]
                at = np.clip(near + rng.uniform(-self.config.wrist_near, self.config.wrist_near, size=2), 0.0, 1.0)
                images[i] = renderer.render(positions=scene.positions, gripper=at, aperture=float(rng.uniform()),
                                            held=-1, links=None)["wrist"]
                left, top, extent = at[0] - WRIST_FOV / 2, at[1] + WRIST_FOV / 2, WRIST_FOV
            else:
                images[i] = renderer.render(positions=scene.positions, gripper=gripper.position, aperture=1.0,
                                            held=-1, links=None)["overhead"]
                left, top, extent = lo, hi, hi - lo
            cx, cy = left + fx * extent, top - fy * extent
            for z in scene.zones:
                inside = ((np.abs(cx - z.centre[0]) <= z.half) & (np.abs(cy - z.centre[1]) <= z.half)).ravel()
                zone[i, inside] = self.colours.index(z.colour)
            best = np.full(cells, np.inf)
            for obj, (x, y) in zip(scene.objects, scene.positions):
                u, v = (x - left) / extent * grid, (top - y) / extent * grid
                if not (0 <= u < grid and 0 <= v < grid):
                    continue  # outside the image (a wrist image shows part of the table)
                col, row = int(u), int(v)
                k = row * grid + col
                du, dv = (u - col - 0.5) * 2, (v - row - 0.5) * 2
                if du * du + dv * dv < best[k]:  # two centres in one cell: label the one nearer its centre
                    best[k] = du * du + dv * dv
                    colour[i, k], shape[i, k] = self.colours.index(obj.colour), self.shapes.index(obj.shape)
                    offset[i, k] = (du, dv)
        return DenseData(images=images, labels={"colour": colour, "shape": shape, "zone": zone, "offset": offset})
