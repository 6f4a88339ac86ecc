"""Masked multi-query attention with float32 logits and softmax, and the prefix KV cache.

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


def attention_bias(mask: Tensor, num_heads: int) -> Tensor:
    """The additive float32 form of a boolean attention mask, expanded over the query heads.

    Computed once per forward pass and shared by every layer (``masked_attention(bias=...)``): the
    logits are then one fused ``baddbmm`` instead of a product followed by a masked fill.

    Args:
        mask: bool ``[B, T, S]``, True where query t may attend key s.
        num_heads: query heads N.

    Returns:
        float32 ``[B, N, T, S]``: 0 where allowed, :data:`MASK_FILL` where masked.
    """
    if mask.dim() != 3 or mask.dtype != torch.bool:
        raise ValueError(f"attention mask must be a bool [B, T, S] tensor, got {mask.dtype} {tuple(mask.shape)}")
    b, t, s = mask.shape
    bias = torch.zeros(b, 1, t, s, dtype=torch.float32, device=mask.device).masked_fill_(~mask[:, None], MASK_FILL)
    return bias.expand(b, num_heads, t, s).contiguous()


def masked_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, *,
                     bias: Tensor | None = None) -> Tensor:
    """Grouped-query attention with float32 logits and softmax, also under autocast.

    Args:
        q: ``[B, N, T, hd]`` queries, already rotated and scaled by ``hd ** -0.5``.
        k, v: ``[B, K, S, hd]`` with ``N % K == 0`` (K = 1 is multi-query attention).
        mask: bool ``[B, T, S]``, True where query t may attend key s.
        bias: instead of ``mask``, its :func:`attention_bias` (``[B, N, T, S]``), when several
            layers share one mask.

    Returns:
        ``[B, T, N * hd]`` in v's dtype. Logits and softmax are float32, also under autocast, which
        would otherwise compute the logits in bf16; the probabilities are cast to v's dtype for the
        weighted sum (reference §1.4: openpi's ``preferred_element_type=float32`` logits).
    """
    b, n, t, hd = q.shape
    kh, s = k.shape[1], k.shape[2]
    if n % kh:
        raise ValueError(f"{n} query heads cannot be grouped over {kh} key/value heads")
    if (mask is None) == (bias is None):
        raise ValueError("give exactly one of mask and bias")
    if bias is None:
        assert mask is not None
        if mask.shape != (b, t, s):
            raise ValueError(f"attention mask must be [B, T, S] = {(b, t, s)}, got {tuple(mask.shape)}")
        bias = attention_bias(mask, n)
    elif bias.shape != (b, n, t, s):
        raise ValueError(f"attention bias must be [B, N, T, S] = {(b, n, t, s)}, got {tuple(bias.shape)}")
    g = n // kh
    with torch.autocast(q.device.type, enabled=False):
        # [B*K, G*T, hd] x [B*K, hd, S]: the heads of one key/value group share one product. Products
        # of bf16 values are exact in float32, so these are bf16 inputs with float32 logits.
        logits = torch.baddbmm(bias.reshape(b * kh, g * t, s), q.reshape(b * kh, g * t, hd).float(),
                               k.reshape(b * kh, s, hd).float().transpose(1, 2))
        probs = torch.softmax(logits, dim=-1).to(v.dtype)
        out = torch.bmm(probs, v.reshape(b * kh, s, hd))  # [B*K, G*T, hd]
    return out.view(b, n, t, hd).transpose(1, 2).reshape(b, t, n * hd)


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
