"""Masked multi-query attention with float32 logits/softmax, and the prefix KV cache.

The language backbone concatenates the queries, keys and values of every expert along the
sequence and calls :func:`masked_attention` once per layer ("joint attention", reference §1.4).
Masked logits are filled with a large finite negative number, not ``-inf``, so fully masked rows
(padding queries) stay finite; their outputs are never read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

#: the fill openpi uses for masked logits (finite, so fully masked rows do not produce NaN)
MASK_FILL = -2.3819763e38


def masked_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """Grouped-query attention.

    Args:
        q: ``[B, N, T, hd]`` queries, already rotated and scaled by ``hd ** -0.5``.
        k, v: ``[B, K, S, hd]`` with ``N % K == 0`` (K = 1 is multi-query attention).
        mask: bool ``[B, T, S]``, True where query t may attend key s.

    Returns:
        ``[B, T, N * hd]`` in v's dtype. Logits and softmax are float32.
    """
    b, n, t, hd = q.shape
    kh, s = k.shape[1], k.shape[2]
    if n % kh:
        raise ValueError(f"{n} query heads cannot be grouped over {kh} key/value heads")
    if mask.shape != (b, t, s):
        raise ValueError(f"attention mask must be [B, T, S] = {(b, t, s)}, got {tuple(mask.shape)}")
    qg = q.reshape(b, kh, n // kh, t, hd).float()
    logits = torch.einsum("bkgtd,bksd->bkgts", qg, k.float())
    logits = logits.masked_fill(~mask[:, None, None, :, :], MASK_FILL)
    probs = torch.softmax(logits, dim=-1).to(v.dtype)
    out = torch.einsum("bkgts,bksd->bkgtd", probs, v)  # [B, K, G, T, hd]
    return out.reshape(b, n, t, hd).transpose(1, 2).reshape(b, t, n * hd)


@dataclass
class KVCache:
    """Keys and values of already-processed tokens, for every layer.

    Attributes:
        keys, values: one ``[B, K, S, hd]`` tensor per layer (rotated keys).
        valid: bool ``[B, S]`` -- which cached tokens later queries may attend.
        next_position: long ``[B]`` -- RoPE position of the next valid token.
    """

    keys: list[Tensor]
    values: list[Tensor]
    valid: Tensor
    next_position: Tensor

    @property
    def length(self) -> int:
        return int(self.valid.shape[1])

    def extended(self, *, keys: list[Tensor], values: list[Tensor], valid: Tensor) -> KVCache:
        """A new cache with ``keys``/``values`` (``[B, K, T, hd]`` per layer) appended; self is unchanged."""
        if len(keys) != len(self.keys):
            raise ValueError(f"cache has {len(self.keys)} layers, got keys for {len(keys)}")
        return KVCache(
            keys=[torch.cat([a, b], dim=2) for a, b in zip(self.keys, keys)],
            values=[torch.cat([a, b], dim=2) for a, b in zip(self.values, values)],
            valid=torch.cat([self.valid, valid], dim=1),
            next_position=self.next_position + valid.sum(dim=1),
        )
