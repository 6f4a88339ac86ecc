"""Grid points in text: where a subtask happens, written as grid numbers (``"... at 3 5 to 7 2"``).

The grammar is shared by the data (tabletop sources with ``subtask_points``), the env's oracle
subtasks and the policy's point query (``model.point_query``), which writes its regressed points
into a predicted subtask with :func:`fill_points`. Positions are on the unit square, ``x`` to the
right and ``y`` to the far side; each number is one token of the shipped tokenizer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

#: a subtask point is ``[object_x, object_y, zone_x, zone_y]``
POINT_DIM = 4
#: where each slot sits in a subtask point
SLOTS: dict[str, slice] = {"object": slice(0, 2), "zone": slice(2, 4)}
#: the word before each slot's grid numbers in text
_SLOT_OF_WORD = {"at": "object", "to": "zone"}
#: ``" at I J"`` (the object) and ``" to I J"`` (the zone) as :func:`pointed_subtask` writes them
_POINT_RE = re.compile(r" (at|to) (\d+) (\d+)(?=\s|$)")


def point_words(xy: Sequence[float], bins: int) -> str:
    """A position as two grid numbers ``"col row"`` on a ``bins x bins`` grid of the unit square
    (values outside ``[0, 1]`` are clamped to the border cells)."""
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    i, j = (min(max(int(float(v) * bins), 0), bins - 1) for v in (xy[0], xy[1]))
    return f"{i} {j}"


def pointed_subtask(subtask: str, point: Sequence[float], bins: int) -> str:
    """``subtask`` with where it happens: `` at`` the object's grid point and/or `` to`` the zone's.

    ``point`` is ``[object_x, object_y, zone_x, zone_y]`` (negative where the subtask has no object
    or no zone), e.g. ``"push the red cube into the blue zone at 3 5 to 7 2"``.
    """
    out = subtask
    if point[0] >= 0:
        out += " at " + point_words(point[:2], bins)
    if point[2] >= 0:
        out += " to " + point_words(point[2:], bins)
    return out


def fill_points(text: str, point: Sequence[float], bins: int) -> str:
    """``text`` with each `` at I J`` replaced by ``point[:2]`` and each `` to I J`` by ``point[2:4]``
    (on the same grid); a slot whose point is NaN keeps its numbers, and text without grid numbers
    is returned unchanged."""
    if len(point) < POINT_DIM:
        raise ValueError(f"a subtask point has {POINT_DIM} values [object_x, object_y, zone_x, zone_y], "
                         f"got {len(point)}")

    def sub(m: re.Match[str]) -> str:
        xy = point[SLOTS[_SLOT_OF_WORD[m.group(1)]]]
        if any(math.isnan(float(v)) for v in xy):
            return m.group(0)
        return f" {m.group(1)} {point_words(xy, bins)}"

    return _POINT_RE.sub(sub, text)


def point_slots(text: str) -> set[str]:
    """Which grid points ``text`` writes: ``"object"`` for `` at I J``, ``"zone"`` for `` to I J``."""
    return {_SLOT_OF_WORD[m.group(1)] for m in _POINT_RE.finditer(text)}
