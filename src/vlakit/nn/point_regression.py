"""Regressing table positions (subtask points): the scaling and the masked squared error shared by
the flow head's auxiliary point loss and the policy's point query.

Positions on the unit table are centred and scaled to about unit spread, ``4 (p - 0.5)``, so a
linear read-out starts near the right magnitude; NaN entries of a target mean "no point there".
"""

from __future__ import annotations

import torch
from torch import Tensor


def to_scaled(table: Tensor) -> Tensor:
    """Table coordinates -> the scaled space, ``4 (p - 0.5)`` (NaN stays NaN)."""
    return 4.0 * (table - 0.5)


def to_table(scaled: Tensor) -> Tensor:
    """Scaled predictions -> table coordinates (the inverse of :func:`to_scaled`)."""
    return scaled / 4.0 + 0.5


def point_mse(pred: Tensor, target: Tensor, *, known: Tensor | None = None) -> Tensor:
    """Mean squared error of scaled predictions ``pred`` [B, P] against table-coordinate ``target``
    [B, P] over the entries that are finite and (optionally) ``known`` (bool, broadcastable); zero
    (keeping the graph) when there are none."""
    mask = torch.isfinite(target)
    if known is not None:
        mask = mask & known
    err = (pred - to_scaled(torch.nan_to_num(target))).pow(2) * mask.float()
    return err.sum() / mask.sum().clamp_min(1)
