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
    cos, sin = rope_cos_sin(positions, x.shape[-1], max_wavelength=max_wavelength)
    return rotate(x, cos, sin)


def rope_cos_sin(positions: Tensor, head_dim: int, *, max_wavelength: float = 10_000.0) -> tuple[Tensor, Tensor]:
    """The rotation of every position, computed once and shared by the layers of a forward pass.

    Args:
        positions: integer ``[B, T]``.
        head_dim: the rotated (even) last dimension.

    Returns:
        ``(cos, sin)``, float32 ``[B, 1, T, head_dim // 2]``, for :func:`rotate`.
    """
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
    half = head_dim // 2
    exponents = torch.arange(half, device=positions.device, dtype=torch.float32) * (2.0 / head_dim)
    inv_freq = max_wavelength ** (-exponents)  # [half]
    angles = positions.to(torch.float32)[:, None, :, None] * inv_freq  # [B, 1, T, half]
    return torch.cos(angles), torch.sin(angles)


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """:func:`apply_rope` with the rotation from :func:`rope_cos_sin`: ``x`` ``[B, heads, T, head_dim]``."""
    half = x.shape[-1] // 2
    if cos.shape[-1] != half:
        raise ValueError(f"rotation for head_dim {2 * cos.shape[-1]} applied to head_dim {x.shape[-1]}")
    xf = x.float()
    x1, x2 = xf[..., :half], xf[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)
