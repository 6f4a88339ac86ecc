"""Rotary position embedding, Gemma's "half-split" layout, computed in float32 (reference §1.6)."""

from __future__ import annotations

import torch
from torch import Tensor


def apply_rope(x: Tensor, positions: Tensor, *, max_wavelength: float = 10_000.0) -> Tensor:
    """Rotate ``x`` by its positions.

    Args:
        x: ``[B, heads, T, head_dim]`` (head_dim even).
        positions: integer ``[B, T]``.

    Returns:
        ``[B, heads, T, head_dim]`` in x's dtype. With ``x1, x2`` the two halves of the last dim,
        the output is ``[x1 cos - x2 sin, x2 cos + x1 sin]`` with frequencies
        ``max_wavelength ** (-2i / head_dim)``.
    """
    head_dim = x.shape[-1]
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
    half = head_dim // 2
    exponents = torch.arange(half, device=x.device, dtype=torch.float32) * (2.0 / head_dim)
    inv_freq = max_wavelength ** (-exponents)  # [half]
    angles = positions.to(torch.float32)[:, None, :, None] * inv_freq  # [B, 1, T, half]
    sin, cos = torch.sin(angles), torch.cos(angles)
    xf = x.float()
    x1, x2 = xf[..., :half], xf[..., half:]
    out = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
    return out.to(x.dtype)
