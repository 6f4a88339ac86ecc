"""The gemma backbone: experts in one joint attention, KV cache, tied LM head, knowledge insulation."""

from __future__ import annotations

import math

import pytest
import torch

from vlakit.interfaces.language import ExpertRequest
from vlakit.nn.runner import SequenceRunner
from vlakit.nn.segments import Segment
from vlakit.registry import LANGUAGE_BACKBONES


def backbone(adaptive: bool = True):
    torch.manual_seed(0)
    cfg = LANGUAGE_BACKBONES.config_class("gemma")(variant="tiny")
    return cfg.build(vocab_size=50, experts=[ExpertRequest("test", "tiny_expert", adaptive)])


def segments(bb, *, seed: int = 0, suffix_scale: float = 1.0) -> list[Segment]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 50, (2, 6), generator=g)
    valid = torch.ones(2, 6, dtype=torch.bool)
    valid[1, 4:] = False  # right padding in the prefix
    suffix = torch.randn(2, 3, 32, generator=g) * suffix_scale
    return [Segment("prefix", bb.embed(ids), valid, expert=0, attention="prefix"),
            Segment("text", bb.embed(ids[:, :2]), torch.ones(2, 2, dtype=torch.bool), expert=0, attention="causal"),
            Segment("suffix", suffix, torch.ones(2, 3, dtype=torch.bool), expert=1, attention="block")]


def test_embedding_scaled_and_lm_head_tied():
    bb = backbone()
    ids = torch.tensor([[3, 7]])
    assert torch.allclose(bb.embed(ids), bb.embedding.weight[ids] * math.sqrt(64))
    h = torch.randn(1, 2, 64)
    assert torch.allclose(bb.logits(h), h @ bb.embedding.weight.t(), atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the LM head's scores stay float32 under autocast
        scores = bb.logits(h)
    assert scores.dtype == torch.float32 and torch.allclose(scores, h @ bb.embedding.weight.t(), atol=1e-5)
    names = [n for n, _ in bb.named_parameters()]
    assert sum("embedding" in n for n in names) == 1  # the expert has no embedding or LM head
    assert not any(n.startswith("experts.1.") and "embed" in n for n in names)


def test_kv_cached_suffix_equals_full_sequence():
    bb = backbone()
    runner = SequenceRunner(bb)
    cond = {1: torch.randn(2, 32)}
    segs = segments(bb)
    with torch.no_grad():
        full = runner.run(segs, conds=cond).hidden
        cache = runner.run(segs[:2]).context()
        cached = runner.run(segs[2:], context=cache, conds=cond).hidden
        uncached = runner.run(segs[2:], context=segs[:2], conds=cond).hidden
    assert cache.length == 8 and cache.next_position.tolist() == [8, 6]
    assert torch.allclose(full["suffix"], cached["suffix"], atol=1e-5)
    assert torch.allclose(full["suffix"], uncached["suffix"], atol=1e-6)


def test_prefix_outputs_do_not_depend_on_the_suffix():
    bb = backbone()
    runner = SequenceRunner(bb)
    cond = {1: torch.randn(2, 32)}
    with torch.no_grad():
        a = runner.run(segments(bb, suffix_scale=1.0), conds=cond).hidden
        b = runner.run(segments(bb, suffix_scale=5.0), conds=cond).hidden
    valid = segments(bb)[0].valid  # padding rows are fully masked: finite garbage, never read
    assert torch.equal(a["prefix"][valid], b["prefix"][valid]) and torch.equal(a["text"], b["text"])
    assert not torch.allclose(a["suffix"], b["suffix"])


def _expert0_grad_norm(insulate: bool) -> tuple[float, float, torch.Tensor]:
    bb = backbone()
    runner = SequenceRunner(bb, knowledge_insulation=insulate)
    out = runner.run(segments(bb), conds={1: torch.randn(2, 32)}).hidden["suffix"]
    out.pow(2).sum().backward()
    g0 = sum(float(p.grad.abs().sum()) for p in bb.expert_parameters(0) if p.grad is not None)
    g1 = sum(float(p.grad.abs().sum()) for p in bb.expert_parameters(1) if p.grad is not None)
    return g0, g1, out.detach()


def test_knowledge_insulation_stops_expert_gradients_into_expert0_without_changing_values():
    g0_on, g1_on, out_on = _expert0_grad_norm(True)
    g0_off, g1_off, out_off = _expert0_grad_norm(False)
    assert g0_off > 0 and g1_off > 0 and g1_on > 0
    assert g0_on == 0.0
    assert torch.allclose(out_on, out_off, atol=1e-6)


def test_expert_without_adaptive_norms_rejects_a_condition():
    bb = backbone(adaptive=False)
    with pytest.raises(ValueError, match="no conditioning"):
        SequenceRunner(bb).run(segments(bb), conds={1: torch.randn(2, 32)})


def test_unknown_variant_and_geometry_mismatch():
    cfg = LANGUAGE_BACKBONES.config_class("gemma")(variant="tiny")
    with pytest.raises(ValueError, match="Did you mean 'tiny_expert'"):
        cfg.geometry("tiny_expertt")
    with pytest.raises(ValueError, match="does not match"):
        cfg.build(vocab_size=10, experts=[ExpertRequest("model.heads.x", "gemma_300m", False)])


def test_mini_is_the_debug_size_with_one_kv_head_per_query_head():
    """'mini' = 'dummy' with full multi-head attention: only the key/value projections grow."""
    cfg = LANGUAGE_BACKBONES.config_class("gemma")
    sizes = {}
    for variant in ("dummy", "mini"):
        bb = cfg(variant=variant).build(vocab_size=50, experts=[])
        sizes[variant] = sum(p.numel() for p in bb.parameters())
        layer = bb.experts[0].layers[0]
        assert layer.k_proj.out_features == layer.v_proj.out_features
    heads, head_dim, width, depth = 8, 16, 64, 4
    assert bb.experts[0].layers[0].k_proj.out_features == heads * head_dim
    assert sizes["mini"] - sizes["dummy"] == depth * 2 * width * (heads - 1) * head_dim
