"""Shared layers: attention with KV cache, RMS/adaRMS norms, RoPE, time embedding, segments and masks."""

from vlakit.nn.attention import KVCache, attention_bias, masked_attention
from vlakit.nn.norms import AdaRMSNorm, RMSNorm, gated_residual
from vlakit.nn.rope import apply_rope
from vlakit.nn.segments import Segment, attention_mask, positions, split_outputs, streams_by_expert
from vlakit.nn.time_embedding import posemb_sincos

__all__ = [
           "AdaRMSNorm",
           "KVCache",
           "RMSNorm",
           "Segment",
           "apply_rope",
           "attention_bias",
           "attention_mask",
           "gated_residual",
           "masked_attention",
           "posemb_sincos",
           "positions",
           "split_outputs",
           "streams_by_expert",
]
