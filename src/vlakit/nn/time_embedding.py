"""Sine-cosine embedding of the flow-matching time (reference §1.7)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def posemb_sincos(t: Tensor, width: int, *, min_period: float = 4e-3, max_period: float = 4.0) -> Tensor:
    """Embed scalar times.

    Args:
        t: float ``[B]``.
        width: even output width ``D``.

    Returns:
        float32 ``[B, D]``: ``[sin(2 pi t / period), cos(2 pi t / period)]`` (sin half first) with
        periods spaced geometrically from ``min_period`` to ``max_period``.
    """
    if width % 2:
        raise ValueError(f"time embedding width must be even, got {width}")
    if t.ndim != 1:
        raise ValueError(f"time must be a 1-D tensor [B], got shape {tuple(t.shape)}")
    fraction = torch.linspace(0.0, 1.0, width // 2, device=t.device, dtype=torch.float64)
    period = min_period * (max_period / min_period) ** fraction
    angle = (2 * math.pi / period)[None, :] * t.to(torch.float64)[:, None]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1).to(torch.float32)
