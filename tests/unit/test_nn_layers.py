"""Shared layers: RMSNorm/adaRMSNorm, RoPE, sincos time embedding, masked attention."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vlakit.nn.attention import attention_bias, masked_attention
from vlakit.nn.norms import AdaRMSNorm, RMSNorm, gated_residual
from vlakit.nn.rope import apply_rope, rope_cos_sin, rotate
from vlakit.nn.time_embedding import posemb_sincos


def test_rmsnorm_uses_one_plus_scale_and_fp32_statistics():
    torch.manual_seed(0)
    norm = RMSNorm(16)
    x = torch.randn(2, 5, 16) * 3
    y, gate = norm(x)
    assert gate is None
    assert torch.allclose(y.pow(2).mean(-1), torch.ones(2, 5), atol=1e-4)  # zero scale: unit RMS
    with torch.no_grad():
        norm.scale.fill_(0.5)
    y2, _ = norm(x)
    assert torch.allclose(y2, 1.5 * y, atol=1e-6)
    # bf16 input: statistics in fp32, result cast back to bf16
    xb = x.to(torch.bfloat16)
    yb, _ = norm(xb)
    assert yb.dtype == torch.bfloat16
    ref = xb.float() * torch.rsqrt(xb.float().pow(2).mean(-1, keepdim=True) + 1e-6) * 1.5
    assert torch.equal(yb, ref.to(torch.bfloat16))


def test_adarmsnorm_scale_shift_gate_from_zero_initialised_linear():
    torch.manual_seed(0)
    norm = AdaRMSNorm(8, cond_width=4)
    assert torch.count_nonzero(norm.modulation.weight) == 0
    x, cond = torch.randn(3, 5, 8), torch.randn(3, 4)
    with torch.no_grad():
        norm.modulation.weight.normal_()
    y, gate = norm(x, cond)
    mod = norm.modulation(cond)
    scale, shift, g = mod[:, :8], mod[:, 8:16], mod[:, 16:]
    normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    assert torch.allclose(y, normed * (1 + scale[:, None]) + shift[:, None], atol=1e-5)
    assert torch.allclose(gate, g[:, None], atol=1e-6)
    assert torch.allclose(gated_residual(x, y, gate), x + y * g[:, None], atol=1e-6)
    with pytest.raises(ValueError, match="conditioning"):
        norm(x)


def _rope_reference(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Half-split rotation written out per frequency pair (x[i] with x[i + d/2])."""
    d = x.shape[-1]
    out = np.empty_like(x)
    for i in range(d // 2):
        theta = pos * 10_000.0 ** (-2 * i / d)
        a, b = x[..., i], x[..., i + d // 2]
        out[..., i] = a * np.cos(theta) - b * np.sin(theta)
        out[..., i + d // 2] = b * np.cos(theta) + a * np.sin(theta)
    return out


def test_rope_half_split_matches_pairwise_rotation_and_is_relative():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 6, 8, dtype=torch.float64)
    pos = torch.tensor([[0, 1, 2, 5, 9, 40]])
    out = apply_rope(x, pos)
    ref = _rope_reference(x.numpy(), pos.numpy()[:, None, :])
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)
    assert torch.allclose(out[:, :, 0], x[:, :, 0])  # position 0 is the identity
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    dots = [(apply_rope(q, torch.tensor([[m]])) * apply_rope(k, torch.tensor([[m - 3]]))).sum() for m in (3, 10, 77)]
    assert torch.allclose(torch.stack(dots), dots[0].expand(3), atol=1e-4)
    cos, sin = rope_cos_sin(pos, 8)  # one rotation shared by layers (as gemma does) is the same rotation
    torch.testing.assert_close(rotate(x, cos, sin), out)
    scale = 8 ** -0.5  # gemma folds the query scale into the rotation: the same as scaling after it
    torch.testing.assert_close(rotate(x, cos * scale, sin * scale), apply_rope(x, pos) * scale)
    with pytest.raises(ValueError, match="head_dim 8 applied to head_dim 4"):
        rotate(x[..., :4], cos, sin)


def test_posemb_sincos_layout_and_periods():
    t = torch.tensor([0.0, 0.25, 1.0])
    emb = posemb_sincos(t, 8)
    assert emb.shape == (3, 8) and emb.dtype == torch.float32
    periods = 4e-3 * (4.0 / 4e-3) ** np.linspace(0, 1, 4)
    angle = 2 * math.pi * t.numpy().astype(np.float64)[:, None] / periods[None]
    np.testing.assert_allclose(emb.numpy(), np.concatenate([np.sin(angle), np.cos(angle)], 1), atol=1e-6)
    with pytest.raises(ValueError, match="even"):
        posemb_sincos(t, 7)


def test_masked_attention_matches_naive_mqa_and_stays_finite_on_empty_rows():
    torch.manual_seed(0)
    b, n, k, t, s, hd = 2, 4, 1, 3, 5, 8
    q, key, v = torch.randn(b, n, t, hd), torch.randn(b, k, s, hd), torch.randn(b, k, s, hd)
    mask = torch.rand(b, t, s) > 0.3
    mask[:, :, 0] = True
    mask[1, 2] = False  # a fully masked (padding) query row
    out = masked_attention(q, key, v, mask)
    logits = torch.einsum("bntd,bsd->bnts", q, key[:, 0]).masked_fill(~mask[:, None], float("-inf"))
    naive = torch.einsum("bnts,bsd->bntd", torch.softmax(logits, -1), v[:, 0]).transpose(1, 2).reshape(b, t, n * hd)
    assert torch.allclose(out[0], naive[0], atol=1e-5)
    assert torch.allclose(out[1, :2], naive[1, :2], atol=1e-5)
    assert torch.isfinite(out).all()


def test_masked_attention_logits_are_float32_under_bf16_autocast():
    # logits 100 and 100.25 from bf16 inputs: bf16 logits would round both to 100 (equal weights)
    q = torch.tensor([16.0, 1.0]).view(1, 1, 1, 2).to(torch.bfloat16)
    key = torch.tensor([[6.25, 0.0], [6.25, 0.25]]).view(1, 1, 2, 2).to(torch.bfloat16)
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 1, 2, 2).to(torch.bfloat16)
    mask = torch.ones(1, 1, 2, dtype=torch.bool)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = masked_attention(q, key, v, mask)
    expected = torch.softmax(torch.tensor([100.0, 100.25], dtype=torch.float64), -1)  # [0.438, 0.562]
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out[0, 0].double(), expected, atol=4e-3)


def test_attention_bias_shared_by_layers_equals_the_boolean_mask():
    torch.manual_seed(1)
    b, n, k, t, s, hd = 2, 4, 2, 3, 5, 8
    q, key, v = torch.randn(b, n, t, hd), torch.randn(b, k, s, hd), torch.randn(b, k, s, hd)
    mask = torch.rand(b, t, s) > 0.4
    mask[:, :, 0] = True
    bias = attention_bias(mask, n)
    assert bias.shape == (b, n, t, s) and bias.dtype == torch.float32
    assert torch.equal(masked_attention(q, key, v, bias=bias), masked_attention(q, key, v, mask))
    # grouped: query heads 0-1 read key/value head 0, heads 2-3 head 1
    per_group = [masked_attention(q[:, 2 * i:2 * i + 2], key[:, i:i + 1], v[:, i:i + 1], mask) for i in range(2)]
    assert torch.allclose(masked_attention(q, key, v, mask), torch.cat(
        [per_group[0].view(b, t, 2, hd), per_group[1].view(b, t, 2, hd)], dim=2).view(b, t, n * hd), atol=1e-6)
    with pytest.raises(ValueError, match="exactly one"):
        masked_attention(q, key, v, mask, bias=bias)
    with pytest.raises(ValueError, match=r"bias must be \[B, N, T, S\]"):
        masked_attention(q, key, v, bias=bias[:, :2])
    with pytest.raises(ValueError, match="bool"):
        attention_bias(mask.float(), n)
