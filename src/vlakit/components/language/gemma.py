"""``gemma``: a Gemma-1 style decoder stack with experts sharing one joint attention (reference §1.4).

Per layer and per expert: a pre-attention norm, q/k/v/o projections (multi-query attention), a
pre-FFW norm and a GeGLU MLP. The queries, keys and values of all experts are concatenated along
the sequence, rotated with shared RoPE positions and attended jointly; outputs are split back per
expert. Expert 0 owns the token embedding (scaled by sqrt(width)) and the tied LM head; extra
experts (e.g. the flow-matching action expert) have neither, so no parameter is dead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from vlakit.interfaces.language import (
    BackboneOutput,
    ExpertGeometry,
    ExpertRequest,
    LanguageBackbone,
    LanguageBackboneConfig,
)
from vlakit.nn.attention import KVCache, attention_bias, masked_attention
from vlakit.nn.norms import AdaRMSNorm, RMSNorm, gated_residual
from vlakit.nn.rope import rope_cos_sin, rotate
from vlakit.registry import LANGUAGE_BACKBONES

#: variant -> (width, depth, mlp_dim, num_heads, num_kv_heads, head_dim); openpi `gemma.get_config`
VARIANTS: dict[str, tuple[int, int, int, int, int, int]] = {
    "gemma_2b": (2048, 18, 16384, 8, 1, 256),
    "gemma_300m": (1024, 18, 4096, 8, 1, 256),
    "dummy": (64, 4, 128, 8, 1, 16),  # openpi's debug size
    "tiny": (64, 2, 128, 4, 1, 16),
    "tiny_expert": (32, 2, 64, 4, 1, 16),
    # CPU-trainable sizes for the embedded world: full multi-head attention, because at head_dim 16 a
    # single shared key/value head is too narrow to retrieve image content
    "small": (128, 4, 512, 4, 4, 32),
    # openpi's debug size with one key/value head per query head (8 x 16 values per token, not 16)
    "mini": (64, 4, 128, 8, 8, 16),
    "small_expert": (64, 4, 256, 4, 4, 32),
}

GemmaVariant = Literal["gemma_2b", "gemma_300m", "dummy", "tiny", "tiny_expert", "small", "small_expert", "mini"]


def variant_geometry(variant: str) -> ExpertGeometry:
    """The :class:`ExpertGeometry` of a named Gemma variant."""
    if variant not in VARIANTS:
        from vlakit.errors import did_you_mean

        raise ValueError(f"unknown gemma variant {variant!r}. Valid: {', '.join(VARIANTS)}."
                         + did_you_mean(variant, VARIANTS))
    width, depth, mlp, heads, kv, hd = VARIANTS[variant]
    return ExpertGeometry(variant=variant, width=width, depth=depth, mlp_dim=mlp, num_heads=heads,
                          num_kv_heads=kv, head_dim=hd)


class GemmaConfig(LanguageBackboneConfig):
    """Gemma backbone.

    Attributes:
        variant: size of expert 0 (the language model).
        vocab_size: LM vocabulary size (257,152 for PaliGemma). None lets the builder size it to the
            text tokenizer's vocabulary plus the action tokenizer's codes.
        norm_eps: RMSNorm epsilon.
        rope_max_wavelength: RoPE base.
    """

    type: Literal["gemma"] = "gemma"
    variant: GemmaVariant = "gemma_2b"
    vocab_size: int | None = Field(None, ge=2)
    norm_eps: float = Field(1e-6, gt=0)
    rope_max_wavelength: float = Field(10_000.0, gt=0)

    def geometry(self, variant: str | None = None) -> ExpertGeometry:
        return variant_geometry(variant or self.variant)

    def default_vocab_size(self) -> int | None:
        return self.vocab_size

    def build(self, *, vocab_size: int, experts: Sequence[ExpertRequest] = ()) -> GemmaBackbone:
        geometries = [self.geometry()] + [self.geometry(r.variant) for r in experts]
        for req, geo in zip(experts, geometries[1:]):
            if geo.shared() != geometries[0].shared():  # build.py checks first, with recipe paths
                raise ValueError(f"expert {req.variant!r} ({req.owner}) does not match {self.variant!r}: "
                                 f"{geo.shared()} vs {geometries[0].shared()}")
        stacks = [GemmaExpert(geometries[0], adaptive_norms=False, eps=self.norm_eps)]
        stacks += [GemmaExpert(g, adaptive_norms=r.adaptive_norms, eps=self.norm_eps)
                   for r, g in zip(experts, geometries[1:])]
        return GemmaBackbone(embedding=nn.Embedding(vocab_size, geometries[0].width), experts=stacks,
                             rope_max_wavelength=self.rope_max_wavelength)


def _lecun_linear(fan_in: int, fan_out: int) -> nn.Linear:
    layer = nn.Linear(fan_in, fan_out, bias=False)
    nn.init.normal_(layer.weight, std=fan_in ** -0.5)
    return layer


class GemmaBlock(nn.Module):
    """One expert's weights in one layer."""

    def __init__(self, geo: ExpertGeometry, *, adaptive_norms: bool, eps: float) -> None:
        super().__init__()
        d, hd = geo.width, geo.head_dim

        def norm() -> nn.Module:
            return AdaRMSNorm(d, cond_width=d, eps=eps) if adaptive_norms else RMSNorm(d, eps=eps)

        self.pre_attention_norm = norm()
        self.q_proj = _lecun_linear(d, geo.num_heads * hd)
        self.k_proj = _lecun_linear(d, geo.num_kv_heads * hd)
        self.v_proj = _lecun_linear(d, geo.num_kv_heads * hd)
        self.o_proj = _lecun_linear(geo.num_heads * hd, d)
        self.pre_ffw_norm = norm()
        self.gate_proj = _lecun_linear(d, geo.mlp_dim)
        self.up_proj = _lecun_linear(d, geo.mlp_dim)
        self.down_proj = _lecun_linear(geo.mlp_dim, d)

    def mlp(self, x: Tensor) -> Tensor:
        """GeGLU: ``down(gelu_tanh(gate(x)) * up(x))``."""
        return self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


class GemmaExpert(nn.Module):
    """All layers of one expert plus its final norm."""

    def __init__(self, geo: ExpertGeometry, *, adaptive_norms: bool, eps: float) -> None:
        super().__init__()
        self.geometry = geo
        self.adaptive_norms = adaptive_norms
        self.layers = nn.ModuleList(GemmaBlock(geo, adaptive_norms=adaptive_norms, eps=eps)
                                    for _ in range(geo.depth))
        self.final_norm = AdaRMSNorm(geo.width, cond_width=geo.width, eps=eps) if adaptive_norms \
            else RMSNorm(geo.width, eps=eps)


@LANGUAGE_BACKBONES.register
class GemmaBackbone(LanguageBackbone):
    """Gemma stack with experts (see module docstring). Built by :class:`GemmaConfig`."""

    Config = GemmaConfig

    @classmethod
    def test_config(cls) -> GemmaConfig:
        """Small variant for the conformance suite."""
        return GemmaConfig(variant="tiny")

    def __init__(self, *, embedding: nn.Embedding, experts: Sequence[GemmaExpert],
                 rope_max_wavelength: float = 10_000.0) -> None:
        super().__init__()
        self.embedding = embedding
        nn.init.normal_(self.embedding.weight, std=0.01)  # flax nn.initializers.normal() default
        self.experts = nn.ModuleList(experts)
        self.rope_max_wavelength = rope_max_wavelength
        geo = experts[0].geometry
        self.depth, self.num_heads, self.num_kv_heads, self.head_dim = (
            geo.depth, geo.num_heads, geo.num_kv_heads, geo.head_dim)
        if embedding.embedding_dim != geo.width:
            raise ValueError(f"embedding width {embedding.embedding_dim} != expert 0 width {geo.width}")

    @property
    def vocab_size(self) -> int:
        return self.embedding.num_embeddings

    @property
    def expert_widths(self) -> list[int]:
        return [e.geometry.width for e in self.experts]

    def embed(self, token_ids: Tensor) -> Tensor:
        x = self.embedding(token_ids)
        return x * math.sqrt(self.expert_widths[0])

    def logits(self, hidden: Tensor) -> Tensor:
        with torch.autocast(hidden.device.type, enabled=False):  # float32 scores, also under autocast
            return hidden.float() @ self.embedding.weight.float().t()

    def embedding_parameters(self) -> list[nn.Parameter]:
        return list(self.embedding.parameters())

    def expert_parameters(self, index: int) -> list[nn.Parameter]:
        params = list(self.experts[index].parameters())
        return list(self.embedding.parameters()) + params if index == 0 else params

    def forward(self, streams: Sequence[Tensor | None], *, attn_mask: Tensor, positions: Tensor,
                conds: Sequence[Tensor | None] | None = None, cache: KVCache | None = None,
                knowledge_insulation: bool = False) -> BackboneOutput:
        if len(streams) != len(self.experts):
            raise ValueError(f"got {len(streams)} streams for {len(self.experts)} experts")
        conds = list(conds) if conds is not None else [None] * len(self.experts)
        active = [i for i, s in enumerate(streams) if s is not None]
        if not active:
            raise ValueError("every stream is None; nothing to run")
        xs: dict[int, Tensor] = {i: streams[i] for i in active}  # type: ignore[misc]
        lengths = [xs[i].shape[1] for i in active]
        b = xs[active[0]].shape[0]
        past = cache.length if cache is not None else 0
        # with insulation, queries of experts >= 1 see detached keys up to the end of expert 0's tokens
        insulate_at = None
        if knowledge_insulation and torch.is_grad_enabled() and any(i > 0 for i in active):
            insulate_at = past + (lengths[0] if active[0] == 0 else 0)
        n_query0 = lengths[0] if active[0] == 0 else 0
        keys, values = [], []
        bias = attention_bias(attn_mask, self.num_heads)  # one additive mask for every layer
        # and one rotation for every layer; the queries' also carries the 1/sqrt(head_dim) logit scale
        cos, sin = rope_cos_sin(positions, self.head_dim, max_wavelength=self.rope_max_wavelength)
        scale = self.head_dim ** -0.5
        q_cos, q_sin = cos * scale, sin * scale
        for layer in range(self.depth):
            blocks = {i: self.experts[i].layers[layer] for i in active}
            qs, ks, vs, gates = [], [], [], {}
            for i in active:
                h, gates[i] = blocks[i].pre_attention_norm(xs[i], conds[i])
                n = h.shape[1]
                qs.append(blocks[i].q_proj(h).view(b, n, self.num_heads, self.head_dim))
                ks.append(blocks[i].k_proj(h).view(b, n, self.num_kv_heads, self.head_dim))
                vs.append(blocks[i].v_proj(h).view(b, n, self.num_kv_heads, self.head_dim))
            q = torch.cat(qs, dim=1).transpose(1, 2)
            k = rotate(torch.cat(ks, dim=1).transpose(1, 2), cos, sin)
            v = torch.cat(vs, dim=1).transpose(1, 2)
            q = rotate(q, q_cos, q_sin)
            keys.append(k)
            values.append(v)
            if cache is not None:
                k = torch.cat([cache.keys[layer], k], dim=2)
                v = torch.cat([cache.values[layer], v], dim=2)
            if insulate_at is None:
                out = masked_attention(q, k, v, bias=bias)
            else:
                k_ins = torch.cat([k[:, :, :insulate_at].detach(), k[:, :, insulate_at:]], dim=2)
                v_ins = torch.cat([v[:, :, :insulate_at].detach(), v[:, :, insulate_at:]], dim=2)
                out = torch.cat([masked_attention(q[:, :, :n_query0], k, v, bias=bias[:, :, :n_query0]),
                                 masked_attention(q[:, :, n_query0:], k_ins, v_ins, bias=bias[:, :, n_query0:])],
                                dim=1)
            for i, part in zip(active, out.split(lengths, dim=1)):
                blk = blocks[i]
                xs[i] = gated_residual(xs[i], blk.o_proj(part), gates[i])
                h, gate = blk.pre_ffw_norm(xs[i], conds[i])
                xs[i] = gated_residual(xs[i], blk.mlp(h), gate)
        hidden: list[Tensor | None] = [None] * len(self.experts)
        for i in active:
            hidden[i] = self.experts[i].final_norm(xs[i], conds[i])[0]  # the final gate is discarded
        return BackboneOutput(hidden=hidden, keys=keys, values=values)
