"""Orthonormal DCT-II / DCT-III along time, batched as one matrix product.

``dct_matrix(H) @ x`` equals ``scipy.fft.dct(x, type=2, axis=0, norm="ortho")`` and the matrix is
orthogonal, so its transpose is the exact inverse (DCT-III, ``idct(..., norm="ortho")``).
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=32)
def dct_matrix(horizon: int) -> np.ndarray:
    """float64 ``[H, H]`` orthonormal DCT-II matrix (row k = frequency k). Read-only, cached."""
    k = np.arange(horizon, dtype=np.float64)[:, None]
    n = np.arange(horizon, dtype=np.float64)[None, :]
    m = np.sqrt(2.0 / horizon) * np.cos(np.pi * (2.0 * n + 1.0) * k / (2.0 * horizon))
    m[0] /= np.sqrt(2.0)
    m.setflags(write=False)
    return m


def dct_time(x: np.ndarray) -> np.ndarray:
    """float ``[B, H, A]`` -> DCT-II coefficients ``[B, H, A]`` (frequency along axis 1).

    One GEMM over the whole batch: ``[H, H] @ [H, B*A]``.
    """
    b, h, a = x.shape
    flat = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(h, b * a)
    return (dct_matrix(h) @ flat).reshape(h, b, a).transpose(1, 0, 2)


def idct_time(c: np.ndarray) -> np.ndarray:
    """Inverse of :func:`dct_time` (DCT-III): coefficients ``[B, H, A]`` -> signal ``[B, H, A]``."""
    b, h, a = c.shape
    flat = np.ascontiguousarray(c.transpose(1, 0, 2)).reshape(h, b * a)
    return (dct_matrix(h).T @ flat).reshape(h, b, a).transpose(1, 0, 2)
