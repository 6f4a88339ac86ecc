"""Pure-numpy rendering of the tabletop world to RGB images, two cameras.

``overhead`` is fixed and sees the whole table (plus a thin border of floor); ``wrist`` looks
straight down from the gripper with a 0.4-unit field of view, so it moves with the gripper.

Speed: everything static (table, texture, zones, lighting tint) is rendered once per episode into a
background; a frame is a background copy (overhead) or crop (wrist) plus a few sprite blits, so a
step with both cameras at 64x64 costs well under a millisecond.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np

from vlakit.envs.tabletop.scene import COLOURS, OBJECT_RADIUS, Scene, Style, Zone

OVERHEAD_EXTENT = (-0.05, 1.05)  #: world range seen by the overhead camera on both axes
WRIST_FOV = 0.4  #: side of the square the wrist camera sees (table units)
_WRIST_CANVAS = (-0.35, 1.35)  #: world range pre-rendered for wrist crops
_GRIPPER_RGB = np.array([20, 20, 24], np.float64)
_ARM_RGB = np.array([88, 88, 100], np.float64)
_BIN_FILL = np.array([72, 62, 56], np.float64)
_BIN_EDGE = np.array([34, 30, 28], np.float64)


@functools.lru_cache(maxsize=64)
def _noise_grid(name: str) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(name.encode())).uniform(-1, 1, size=(24, 24))


def _texture(style: Style, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Multiplicative brightness pattern of the table surface at world coordinates ``x, y``."""
    if style.texture == "plain":
        return np.ones_like(x)
    if style.texture == "wood":
        return 1.0 + 0.07 * np.sin(2 * np.pi * y / 0.08 + 0.6 * np.sin(2 * np.pi * x / 0.5))
    if style.texture == "checker":
        return np.where((np.floor(x / 0.125) + np.floor(y / 0.125)) % 2 == 0, 1.06, 0.94)
    if style.texture == "noise":
        grid = _noise_grid(style.name)
        gi = np.clip(np.floor(y * 24).astype(int), 0, 23)
        gj = np.clip(np.floor(x * 24).astype(int), 0, 23)
        return 1.0 + 0.08 * grid[gi, gj]
    raise ValueError(f"unknown texture {style.texture!r}")


def _surface(style: Style, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """float32 ``[h, w, 3]``: the textured table over the floor, before zones and tint."""
    xs, ys = x[0], y[:, 0]
    img = np.empty((*x.shape, 3), np.float32)
    img[:] = np.asarray(style.floor, np.float32)
    # the table's pixels are a window of the grid (x and y are monotonic along it): texture only those
    cols, rows = np.flatnonzero((xs >= 0) & (xs <= 1)), np.flatnonzero((ys >= 0) & (ys <= 1))
    if len(cols) and len(rows):
        win = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        texture = _texture(style, x[win], y[win]).astype(np.float32)
        img[win] = np.asarray(style.table, np.float32) * texture[..., None]
    return img


@functools.lru_cache(maxsize=64)
def _grid_surface(style: Style, lo: float, top: float, scale: float, n: int) -> np.ndarray:
    """:func:`_surface` of a fixed ``n x n`` pixel grid (:meth:`Renderer._grid`'s arguments): the
    overhead view, or the wrist camera's pre-rendered canvas. Made once per style and grid (read-only)."""
    x, y = Renderer._grid(lo, top, scale, n)
    img = _surface(style, x, y)
    img.flags.writeable = False
    return img


def _background(scene: Scene, x: np.ndarray, y: np.ndarray, edge: float,
                surface: np.ndarray | None = None) -> np.ndarray:
    """uint8 ``[h, w, 3]`` image of table, floor and zones at pixel-centre world coords ``x, y``
    (a regular grid: ``x`` varies along columns only, ``y`` along rows only). ``surface``: the
    grid's :func:`_surface`, when already made."""
    xs, ys = x[0], y[:, 0]
    img = surface.copy() if surface is not None else _surface(scene.style, x, y)
    for zone in scene.zones:
        # only the pixels inside the zone's bounding box are touched
        cols = np.flatnonzero(np.abs(xs - zone.centre[0]) <= zone.half)
        rows = np.flatnonzero(np.abs(ys - zone.centre[1]) <= zone.half)
        if not len(cols) or not len(rows):
            continue
        sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        dx = np.abs(xs[sl[1]] - zone.centre[0])[None, :]
        dy = np.abs(ys[sl[0]] - zone.centre[1])[:, None]
        border = (dx > zone.half - edge) | (dy > zone.half - edge)
        fill, line = _zone_colours(zone)
        patch = 0.45 * fill.astype(np.float32) + 0.55 * img[sl]
        patch[border] = line
        img[sl] = patch
    img *= np.asarray(scene.style.tint, np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _zone_colours(zone: Zone) -> tuple[np.ndarray, np.ndarray]:
    if zone.colour == "bin":
        return _BIN_FILL / 0.45, _BIN_EDGE  # the bin is dark and opaque-looking
    c = np.asarray(COLOURS[zone.colour], np.float64)
    return c, c


@functools.lru_cache(maxsize=64)
def shape_mask(shape: str, radius_px: float) -> np.ndarray:
    """bool ``[2R+1, 2R+1]`` sprite of ``shape`` with half extent ``radius_px`` (rows point down);
    made once per shape and size (read-only)."""
    mask = _shape_mask(shape, radius_px)
    mask.flags.writeable = False
    return mask


def _shape_mask(shape: str, radius_px: float) -> np.ndarray:
    R = max(1, int(np.ceil(radius_px)))
    r = max(radius_px, 1.0)
    dr, dc = np.mgrid[-R:R + 1, -R:R + 1].astype(np.float64)
    if shape == "cube":
        return (np.abs(dr) <= 0.85 * r) & (np.abs(dc) <= 0.85 * r)
    if shape == "ball":
        return dr ** 2 + dc ** 2 <= r * r
    if shape == "triangle":  # apex up
        frac = (dr + r) / (1.9 * r)
        return (dr >= -r) & (dr <= 0.9 * r) & (np.abs(dc) <= frac * r + 0.5)
    if shape == "cross":
        arm = max(0.34 * r, 0.75)
        return ((np.abs(dc) <= arm) & (np.abs(dr) <= r)) | ((np.abs(dr) <= arm) & (np.abs(dc) <= r))
    raise ValueError(f"unknown shape {shape!r}")


def _blit(img: np.ndarray, mask: np.ndarray, row: int, col: int, colour: np.ndarray) -> None:
    """Paint ``colour`` where ``mask`` (centred at ``row, col``) is True, clipped to ``img``."""
    R = mask.shape[0] // 2
    h, w = img.shape[:2]
    r0, c0 = row - R, col - R
    r1, c1 = r0 + mask.shape[0], c0 + mask.shape[1]
    if r1 <= 0 or c1 <= 0 or r0 >= h or c0 >= w:
        return
    mr0, mc0 = max(0, -r0), max(0, -c0)
    mr1, mc1 = mask.shape[0] - max(0, r1 - h), mask.shape[1] - max(0, c1 - w)
    img[max(r0, 0):min(r1, h), max(c0, 0):min(c1, w)][mask[mr0:mr1, mc0:mc1]] = colour


class Renderer:
    """Renders one scene for both cameras at ``size x size`` pixels."""

    cameras = ("overhead", "wrist")

    def __init__(self, *, size: int = 64, wrist_canvas: bool = True) -> None:
        """``wrist_canvas``: pre-render a large wrist background once per scene (fast steps, for
        episodes); False renders just the crop each frame (fast single frames, e.g. VQA)."""
        if size < 16:
            raise ValueError(f"tabletop image_size must be >= 16 pixels, got {size}")
        self.size = size
        self.wrist_canvas = wrist_canvas
        self.o_scale = size / (OVERHEAD_EXTENT[1] - OVERHEAD_EXTENT[0])
        self.w_scale = size / WRIST_FOV
        self._overhead_bg: np.ndarray | None = None
        self._wrist_bg: np.ndarray | None = None

    @staticmethod
    def _grid(lo: float, top: float, scale: float, n: int) -> tuple[np.ndarray, np.ndarray]:
        """World coordinates of pixel centres of an ``n x n`` image (row 0 at ``y = top``)."""
        centres = (np.arange(n) + 0.5) / scale
        return np.meshgrid(lo + centres, top - centres)

    def set_scene(self, scene: Scene) -> None:
        """Pre-render backgrounds and sprites for ``scene`` (called once per episode)."""
        self.scene = scene
        tint = np.asarray(scene.style.tint)
        grid = (OVERHEAD_EXTENT[0], OVERHEAD_EXTENT[1], self.o_scale, self.size)
        self._overhead_bg = _background(scene, *self._grid(*grid), edge=1.2 / self.o_scale,
                                        surface=_grid_surface(scene.style, *grid))
        if self.wrist_canvas:
            n = int(np.ceil((_WRIST_CANVAS[1] - _WRIST_CANVAS[0]) * self.w_scale))
            grid = (_WRIST_CANVAS[0], _WRIST_CANVAS[1], self.w_scale, n)
            self._wrist_bg = _background(scene, *self._grid(*grid), edge=1.2 / self.w_scale,
                                         surface=_grid_surface(scene.style, *grid))
        self._colours = [np.clip(np.asarray(COLOURS[o.colour]) * tint, 0, 255).astype(np.uint8)
                         for o in scene.objects]
        self._o_masks = [shape_mask(o.shape, OBJECT_RADIUS * self.o_scale) for o in scene.objects]
        self._w_masks = [shape_mask(o.shape, OBJECT_RADIUS * self.w_scale) for o in scene.objects]
        self._gripper_rgb = np.clip(_GRIPPER_RGB * tint, 0, 255).astype(np.uint8)
        self._arm_rgb = np.clip(_ARM_RGB * tint, 0, 255).astype(np.uint8)

    def render(self, *, positions: np.ndarray, gripper: np.ndarray, aperture: float, held: int,
               links: np.ndarray | None) -> dict[str, np.ndarray]:
        """Images ``{"overhead", "wrist"}``, each uint8 ``[size, size, 3]``.

        Args:
            positions: object centres ``[N, 2]``.
            gripper: gripper position ``[2]``.
            aperture: 1 open .. 0 closed.
            held: index of the held object or -1 (drawn last, under the jaws).
            links: arm joint positions ``[K, 2]`` or None.
        """
        if self._overhead_bg is None:
            raise RuntimeError("Renderer.render called before set_scene")
        return {"overhead": self._overhead(positions, gripper, aperture, held, links),
                "wrist": self._wrist(positions, gripper, aperture, held)}

    def _order(self, n: int, held: int) -> list[int]:
        return [i for i in range(n) if i != held] + ([held] if held >= 0 else [])

    def _overhead(self, positions, gripper, aperture, held, links) -> np.ndarray:
        img = self._overhead_bg.copy()
        s, lo, top = self.o_scale, OVERHEAD_EXTENT[0], OVERHEAD_EXTENT[1]
        cols = ((positions[:, 0] - lo) * s).astype(int)
        rows = ((top - positions[:, 1]) * s).astype(int)
        for i in self._order(len(positions), held):
            _blit(img, self._o_masks[i], int(rows[i]), int(cols[i]), self._colours[i])
        if links is not None:
            pts = np.concatenate([np.linspace(links[k], links[k + 1], 24) for k in range(len(links) - 1)])
            pr = np.clip(((top - pts[:, 1]) * s).astype(int), 0, self.size - 1)
            pc = np.clip(((pts[:, 0] - lo) * s).astype(int), 0, self.size - 2)
            img[pr, pc] = self._arm_rgb
            img[pr, pc + 1] = self._arm_rgb
        gr, gc = int((top - gripper[1]) * s), int((gripper[0] - lo) * s)
        self._jaws(img, gr, gc, aperture, s)
        return img

    def _wrist(self, positions, gripper, aperture, held) -> np.ndarray:
        s, half = self.w_scale, self.size // 2
        gr = int((_WRIST_CANVAS[1] - gripper[1]) * s)
        gc = int((gripper[0] - _WRIST_CANVAS[0]) * s)
        if self.wrist_canvas:
            img = self._wrist_bg[gr - half:gr - half + self.size, gc - half:gc - half + self.size].copy()
        else:  # same pixels as the canvas crop, computed directly
            x, y = self._grid(_WRIST_CANVAS[0] + (gc - half) / s, _WRIST_CANVAS[1] - (gr - half) / s, s, self.size)
            img = _background(self.scene, x, y, edge=1.2 / s)
        rel = (positions - gripper) * s
        cols = (half + rel[:, 0]).astype(int)
        rows = (half - rel[:, 1]).astype(int)
        reach = half + OBJECT_RADIUS * s + 1
        for i in self._order(len(positions), held):
            if abs(rows[i] - half) < reach and abs(cols[i] - half) < reach:
                _blit(img, self._w_masks[i], int(rows[i]), int(cols[i]), self._colours[i])
        self._jaws(img, half, half, aperture, s)
        return img

    def _jaws(self, img: np.ndarray, row: int, col: int, aperture: float, scale: float) -> None:
        """Two jaws whose gap shows the aperture."""
        gap = max(1, round((0.012 + 0.03 * aperture) * scale))
        length = max(2, round(0.035 * scale))
        width = max(1, round(0.008 * scale))
        h, w = img.shape[:2]
        r0, r1 = max(row - length, 0), min(row + length + 1, h)
        for c in (col - gap - width, col + gap + 1):
            c0, c1 = max(c, 0), min(c + width, w)
            if c1 > c0 and r1 > r0:
                img[r0:r1, c0:c1] = self._gripper_rgb
