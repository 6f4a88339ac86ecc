"""Normalisation as an input/output pair, with statistics computed exactly and saved as JSON.

Modes (the recipe's ``data.normalization``):

* ``quantile``: ``y = 2 (x - q01) / (q99 - q01) - 1``, clipped to ``[-1, 1]`` (clipped values are
  counted); inverse ``x = (y + 1) (q99 - q01) / 2 + q01``. As LeRobot/openpi, but clipped.
* ``mean_std``: ``y = (x - mean) / (std + 1e-8)``; no clipping.

A dimension with no spread (``q99 == q01`` or ``std == 0``, e.g. a flag that never changes)
normalises to 0 and unnormalises to its constant value.

Statistics are kept per *robot type* (the stats key: LeRobot's ``robot_type``, e.g.
``tabletop_gripper``), because embodiments differ in state/action sizes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from vlakit.data.errors import NormStatsError
from vlakit.io import atomic_write_text

Mode = Literal["quantile", "mean_std"]
_FORMAT = "vlakit.norm_stats/1"
_STAT_NAMES = ("mean", "std", "min", "max", "q01", "q99")


@dataclass(frozen=True)
class FeatureStats:
    """Exact statistics of one feature over ``count`` frames; every array is float64 ``[D]``."""

    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    q01: np.ndarray
    q99: np.ndarray
    count: int

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def from_array(cls, x: np.ndarray, *, where: str) -> FeatureStats:
        """Exact stats of ``x`` ``[N, D]`` (``np.quantile``, linear interpolation)."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise NormStatsError(f"{where}: need a non-empty [N, D] array to compute stats, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            bad = np.argwhere(~np.isfinite(x))[0]
            raise NormStatsError(f"{where}: non-finite value at frame {bad[0]}, dim {bad[1]}")
        q01, q99 = np.quantile(x, [0.01, 0.99], axis=0)
        return cls(mean=x.mean(0), std=x.std(0), min=x.min(0), max=x.max(0), q01=q01, q99=q99, count=len(x))

    def to_json(self) -> dict:
        return {**{k: getattr(self, k).tolist() for k in _STAT_NAMES}, "count": self.count}

    @classmethod
    def from_json(cls, data: dict, *, where: str) -> FeatureStats:
        missing = [k for k in (*_STAT_NAMES, "count") if k not in data]
        if missing:
            raise NormStatsError(f"{where}: missing stats {', '.join(missing)}")
        arrays = {}
        for k in _STAT_NAMES:
            a = np.asarray(data[k], np.float64).reshape(-1)
            if not np.all(np.isfinite(a)):
                raise NormStatsError(f"{where}.{k}: non-finite value(s) {a.tolist()}")
            arrays[k] = a
        dims = {k: a.shape[0] for k, a in arrays.items()}
        if len(set(dims.values())) != 1:
            raise NormStatsError(f"{where}: stats have mismatched sizes {dims}")
        return cls(**arrays, count=int(data["count"]))


@dataclass
class ClipCounter:
    """Counts values clipped by quantile normalisation (per stats key and feature)."""

    clipped: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, clipped: int, total: int) -> None:
        self.clipped[key] = self.clipped.get(key, 0) + int(clipped)
        self.total[key] = self.total.get(key, 0) + int(total)

    def fractions(self) -> dict[str, float]:
        return {k: self.clipped[k] / max(self.total[k], 1) for k in self.total}


def _spread(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = hi - lo
    flat = width <= 1e-8
    return np.where(flat, 1.0, width), flat


def normalize(x: np.ndarray, stats: FeatureStats, mode: Mode) -> tuple[np.ndarray, int]:
    """Normalise ``x`` ``[..., D]``; returns ``(y float32, number of clipped values)``."""
    x = np.asarray(x, np.float64)
    if x.shape[-1] != stats.dim:
        raise NormStatsError(f"cannot normalise a {x.shape[-1]}-dim feature with {stats.dim}-dim stats")
    if mode == "quantile":
        width, flat = _spread(stats.q01, stats.q99)
        y = 2.0 * (x - stats.q01) / width - 1.0
        y = np.where(flat, 0.0, y)
        n_clipped = int(np.count_nonzero(np.abs(y) > 1.0))
        return np.clip(y, -1.0, 1.0).astype(np.float32), n_clipped
    if mode == "mean_std":
        flat = stats.std <= 1e-8
        y = np.where(flat, 0.0, (x - stats.mean) / (stats.std + 1e-8))
        return y.astype(np.float32), 0
    raise NormStatsError(f"unknown normalization mode {mode!r}; valid: quantile, mean_std")


def unnormalize(y: np.ndarray, stats: FeatureStats, mode: Mode) -> np.ndarray:
    """Inverse of :func:`normalize` (float32, same shape)."""
    y = np.asarray(y, np.float64)
    if y.shape[-1] != stats.dim:
        raise NormStatsError(f"cannot unnormalise a {y.shape[-1]}-dim feature with {stats.dim}-dim stats")
    if mode == "quantile":
        width, flat = _spread(stats.q01, stats.q99)
        x = np.where(flat, stats.q01, (y + 1.0) * width / 2.0 + stats.q01)
    elif mode == "mean_std":
        x = np.where(stats.std <= 1e-8, stats.mean, y * (stats.std + 1e-8) + stats.mean)
    else:
        raise NormStatsError(f"unknown normalization mode {mode!r}; valid: quantile, mean_std")
    return x.astype(np.float32)


@dataclass(frozen=True)
class NormStats:
    """Per-robot-type statistics of ``state`` and ``actions`` plus the normalisation mode."""

    mode: Mode
    entries: dict[str, dict[str, FeatureStats]]

    def get(self, robot_type: str, feature: Literal["state", "actions"]) -> FeatureStats:
        if robot_type not in self.entries:
            raise NormStatsError(f"no normalisation stats for robot type {robot_type!r}; the stats cover: "
                                 f"{', '.join(sorted(self.entries)) or '(none)'}")
        entry = self.entries[robot_type]
        if feature not in entry:
            raise NormStatsError(f"no {feature!r} stats for robot type {robot_type!r}")
        return entry[feature]

    def to_json(self) -> dict:
        return {"format": _FORMAT, "mode": self.mode,
                "entries": {k: {f: s.to_json() for f, s in v.items()} for k, v in sorted(self.entries.items())}}

    def save(self, path: str | Path) -> None:
        """Write JSON atomically."""
        atomic_write_text(path, json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> NormStats:
        path = Path(path)
        if not path.is_file():
            raise NormStatsError(f"normalisation stats file {path} does not exist")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise NormStatsError(f"{path}: not valid JSON ({exc})") from None
        if data.get("format") != _FORMAT:
            raise NormStatsError(f"{path}: field 'format' is {data.get('format')!r}, expected {_FORMAT!r}")
        if data.get("mode") not in ("quantile", "mean_std"):
            raise NormStatsError(f"{path}: field 'mode' is {data.get('mode')!r}; valid: quantile, mean_std")
        entries = {k: {f: FeatureStats.from_json(s, where=f"{path}: entries.{k}.{f}") for f, s in v.items()}
                   for k, v in data.get("entries", {}).items()}
        return cls(mode=data["mode"], entries=entries)
